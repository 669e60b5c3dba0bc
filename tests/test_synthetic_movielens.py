"""The synthetic MovieLens release of the benchmarks: readable by the package, and shaped like GroupLens'."""

import numpy as np
import pytest

from benchmarks import synthetic_movielens
from pipelines import movielens


@pytest.mark.parametrize("fmt, release", [("ml-1m", "ml-1m"), ("csv", "ml-25m")])
def test_a_synthetic_release_reads_back_with_distinct_movies_and_twenty_ratings_a_user(tmp_path, fmt, release):
    written = synthetic_movielens.generate(tmp_path, fmt, num_users=300, num_movies=2000, num_ratings=30_000)
    release = movielens.get_release(release)
    ratings = movielens.load_ratings(tmp_path, release)
    assert len(ratings) == written
    assert abs(written - 30_000) <= 30
    counts = ratings.groupby("user").size()
    assert len(counts) == 300 and counts.min() >= 20 and counts.max() <= 1000
    # heavy-tailed: the busiest tenth of the users give far more than a tenth of the ratings
    assert counts.nlargest(30).sum() > 0.25 * written
    assert not ratings.duplicated(["user", "movie"]).any()
    assert set(np.unique(ratings["rating"])) <= set(release.allowed_ratings)
    assert (ratings["rating"] % 1 != 0).any() == release.half_stars
    assert len(movielens.load_titles(tmp_path, release)) == 2000


def test_popular_movies_get_most_ratings_and_the_draw_is_seeded(tmp_path):
    synthetic_movielens.generate(tmp_path / "a", "csv", num_users=500, num_movies=1000, num_ratings=40_000)
    synthetic_movielens.generate(tmp_path / "b", "csv", num_users=500, num_movies=1000, num_ratings=40_000)
    assert (tmp_path / "a" / "ratings.csv").read_bytes() == (tmp_path / "b" / "ratings.csv").read_bytes()
    ratings = movielens.load_ratings(tmp_path / "a", movielens.get_release("ml-25m"))
    per_movie = ratings.groupby("movie").size().sort_values(ascending=False).to_numpy()
    # Zipf-like: the top 5% of the movies hold a large share of the ratings
    assert per_movie[:50].sum() > 0.2 * len(ratings)


def test_zipf_ranks_follow_the_zipf_popularity():
    rng = np.random.default_rng(0)
    ranks = synthetic_movielens.zipf_ranks(rng, 200_000, 50)
    observed = np.bincount(ranks, minlength=50) / len(ranks)
    np.testing.assert_allclose(observed, synthetic_movielens.zipf_popularity(50), atol=0.003)
