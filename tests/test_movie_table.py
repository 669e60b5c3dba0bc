"""The catalogue every recommender carries: its movie ids and titles."""

import pytest

from pipelines.movie_table import catalogue


def test_a_catalogue_defaults_to_the_indices_and_refuses_lists_of_another_length():
    assert catalogue(3) == ([0, 1, 2], ["movie 0", "movie 1", "movie 2"])
    assert catalogue(2, [10, 7]) == ([10, 7], ["movie 10", "movie 7"])
    with pytest.raises(ValueError, match=r"must have num_movies \(3\) entries, got 2 and 2"):
        catalogue(3, [1, 2])
    with pytest.raises(ValueError, match="num_movies must be at least 1"):
        catalogue(0)
