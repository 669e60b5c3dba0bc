"""The MovieLens TFDS builder and its tf.data reader: what is written is what is read back."""

import numpy as np
import pytest
import tensorflow as tf

from pipelines import datasets
from pipelines import movielens
from pipelines import records

ML100K = movielens.get_release("ml-100k")


def prepare(raw_dir, data_dir, config):
    builder = records.MovieLensRatings(config=config, data_dir=str(data_dir))
    builder.download_and_prepare(download_config=records.manual_download_config(raw_dir))
    return builder


def dense(table, movie_ids, threshold=3.0):
    """{user: float vector with -1 where missing} from a ratings table, by hand."""
    result = {}
    for user, group in table.groupby("user"):
        vector = np.full(len(movie_ids), -1.0, np.float32)
        vector[np.searchsorted(movie_ids, group["movie"])] = group["rating"] >= threshold
        result[user] = vector
    return result


def read_all(builder, split):
    rows = {}
    for batch in datasets.movielens_dataset(builder, split, batch_size=7):
        for user, inputs, targets in zip(batch["user_id"].numpy(), batch["inputs"].numpy(),
                                         batch["targets"].numpy()):
            rows[int(user)] = (inputs, targets)
    return rows


def test_canonical_split_round_trip(ml100k_dir, tmp_path):
    builder = prepare(ml100k_dir, tmp_path / "data", records.movielens_config("ml-100k", "u1"))
    ratings = movielens.load_ratings(ml100k_dir, ML100K)
    train, test = movielens.canonical_split(ml100k_dir, ML100K, "u1")
    movie_ids = np.unique(ratings["movie"])
    metadata = builder.info.metadata
    assert metadata["num_movies"] == len(movie_ids) == 30
    assert metadata["movie_ids"] == movie_ids.tolist()
    assert metadata["movie_titles"][0] == "Movie 1 (1991)"
    assert metadata["num_train_ratings"] == len(train)
    assert metadata["num_test_ratings"] == len(test)
    assert metadata["train_like_rate"] == pytest.approx(np.mean(train["rating"] >= 3))

    want_train, want_test = dense(train, movie_ids), dense(test, movie_ids)
    got_train, got_test = read_all(builder, "train"), read_all(builder, "test")
    assert set(got_train) == set(want_train)
    for user, (inputs, targets) in got_train.items():
        np.testing.assert_array_equal(inputs, want_train[user])
        np.testing.assert_array_equal(targets, want_train[user])
    assert set(got_test) == set(want_test)
    for user, (inputs, targets) in got_test.items():
        # a test example's inputs are the user's training ratings, its targets the held-out ones
        np.testing.assert_array_equal(inputs, want_train.get(user, np.full(30, -1.0)))
        np.testing.assert_array_equal(targets, want_test[user])
        assert not np.any((inputs >= 0) & (targets >= 0))


def test_examples_are_stored_sparse(ml100k_dir, tmp_path):
    builder = prepare(ml100k_dir, tmp_path / "data", records.movielens_config("ml-100k", "u1"))
    example = next(iter(builder.as_dataset(split="train")))
    stored = int(tf.size(example["input_movies"]))
    assert 0 < stored < builder.info.metadata["num_movies"]
    assert example["input_ratings"].dtype == tf.float32
    assert set(example["input_labels"].numpy()) <= {0, 1}


def test_holdout_split_records_follow_the_split(ml100k_dir, tmp_path):
    config = records.movielens_config("ml-100k", "holdout", test_per_user=3, seed=5)
    assert config.name == "ml-100k-holdout3-random-seed5"
    builder = prepare(ml100k_dir, tmp_path / "data", config)
    ratings = movielens.load_ratings(ml100k_dir, ML100K)
    train, test = movielens.holdout_split(ratings, 3, seed=5)
    got_test = read_all(builder, "test")
    assert builder.info.metadata["num_test_ratings"] == len(test)
    for user, (_, targets) in got_test.items():
        assert (targets >= 0).sum() == 3


def test_shuffled_training_split_is_seeded_and_complete(ml100k_dir, tmp_path):
    builder = prepare(ml100k_dir, tmp_path / "data", records.movielens_config("ml-100k", "u1"))

    def order(seed):
        dataset = datasets.movielens_dataset(builder, "train", batch_size=80, shuffle_seed=seed)
        return next(iter(dataset))["user_id"].numpy().tolist()

    assert order(1) == order(1)
    assert order(1) != order(2)
    assert sorted(order(1)) == list(range(1, 81))


def test_unprepared_records_and_bad_splits_are_readable_errors(tmp_path):
    with pytest.raises(movielens.MovieLensError, match="run rbm-prepare"):
        datasets.prepared_movielens(tmp_path, records.movielens_config("ml-100k", "u2"))
    with pytest.raises(movielens.MovieLensError, match="exists only for ml-100k"):
        records.movielens_config("ml-1m", "u1")
    with pytest.raises(movielens.MovieLensError, match="unknown split"):
        records.movielens_config("ml-100k", "u9")
    with pytest.raises(movielens.MovieLensError, match="unknown MovieLens release"):
        records.movielens_config("ml-7m", "holdout")


def test_a_split_with_no_test_ratings_is_refused(ml100k_dir, tmp_path):
    # every fixture user has fewer than 2 * 50 ratings, so nobody has ratings held out
    config = records.movielens_config("ml-100k", "holdout", test_per_user=50)
    with pytest.raises(movielens.MovieLensError, match="has no test ratings"):
        prepare(ml100k_dir, tmp_path / "data", config)
    assert not list((tmp_path / "data").glob("**/*.tfrecord*"))
