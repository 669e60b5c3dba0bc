"""The records builder's grouping of ratings into per-user examples, against a by-hand reference."""

import numpy as np
import pandas as pd
import pytest

from pipelines import movielens
from pipelines import movielens_records as records


def table(rows):
    return pd.DataFrame(rows, columns=list(movielens.RATING_COLUMNS)).astype(
        {"user": np.int32, "movie": np.int32, "rating": np.float32})


def by_hand(parts, user, movie_ids):
    """A user's movies (as indices), labels and ratings: each part's rows of the user in row order, in turn."""
    rows = pd.concat([part[part["user"] == user] for part in parts])
    return {"movies": np.searchsorted(movie_ids, rows["movie"]).astype(np.int32),
            "labels": movielens.like_labels(rows["rating"]),
            "ratings": rows["rating"].to_numpy(np.float32)}


def generate(input_parts, targets, movie_ids):
    index = records._MovieIndex(movie_ids)
    group = lambda part: records._UserRows.group(part, movielens.like_labels(part["rating"]), index)  # noqa: E731
    return dict(records.MovieLensRatings._generate_examples(
        None, [group(part) for part in input_parts], group(targets)))


@pytest.mark.parametrize("movie_ids", [np.array([3, 7, 10, 42, 900]), np.array([-4, 7, 10, 42, 2**30])],
                         ids=["lookup_table", "search"])
def test_test_examples_take_fit_then_validation_ratings_as_input(movie_ids):
    m = movie_ids
    # users out of order, as a file need not be sorted; user 9 has no training ratings at all,
    # user 5 has no validation ratings, user 2 no fit ratings
    fit = table([(5, m[1], 4, 1), (1, m[0], 2, 1), (5, m[0], 5, 1), (1, m[3], 3, 1), (1, m[4], 1, 1)])
    validation = table([(1, m[2], 5, 1), (2, m[4], 4, 1), (1, m[1], 1, 1)])
    test = table([(9, m[2], 2, 1), (1, m[4], 4, 1), (5, m[2], 3, 1), (2, m[0], 5, 1), (1, m[2], 3, 1)])
    examples = generate([fit, validation], test, movie_ids)
    assert sorted(examples) == [1, 2, 5, 9]
    for user, example in examples.items():
        assert example["user_id"] == user
        for side, parts in (("input", [fit, validation]), ("target", [test])):
            want = by_hand(parts, user, movie_ids)
            for name, values in want.items():
                got = example[f"{side}_{name}"]
                assert got.dtype == values.dtype, (user, side, name)
                np.testing.assert_array_equal(got, values, err_msg=f"user {user} {side}_{name}")


def test_train_examples_are_each_users_ratings_in_file_order():
    rng = np.random.default_rng(0)
    rows = [(int(rng.integers(1, 30)), int(movie), float(rng.integers(1, 6)), 1)
            for movie in rng.integers(1, 200, 500)]
    fit = table(rows)
    movie_ids = np.unique(fit["movie"])
    examples = generate([fit], fit, movie_ids)
    assert sorted(examples) == sorted(set(fit["user"]))
    for user, example in examples.items():
        want = by_hand([fit], user, movie_ids)
        for name in want:
            np.testing.assert_array_equal(example[f"input_{name}"], want[name])
            np.testing.assert_array_equal(example[f"target_{name}"], want[name])
