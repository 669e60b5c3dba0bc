"""The MovieLens TFDS builder and the prepared-split handle: what is written is what is read back."""

import pathlib

import numpy as np
import pytest
import tensorflow as tf

from pipelines import movielens
from pipelines import movielens_records as records
from pipelines.errors import MovieLensError
from pipelines.movielens_data import load_movielens
from pipelines.movielens_data import prepare_movielens
from tests.conftest import planted_ml100k_ratings
from tests.conftest import write_ml100k

ML100K = movielens.get_release("ml-100k")


def prepare(raw_dir, data_dir, **split):
    return prepare_movielens("ml-100k", raw_dir, data_dir, **split)


def dense(table, movie_ids, threshold=3.0):
    """{user: float vector with -1 where missing} from a ratings table, by hand."""
    result = {}
    for user, group in table.groupby("user"):
        vector = np.full(len(movie_ids), -1.0, np.float32)
        vector[np.searchsorted(movie_ids, group["movie"])] = group["rating"] >= threshold
        result[user] = vector
    return result


def read_all(part):
    rows = {}
    for batch in part.dataset(batch_size=7):
        for user, inputs, targets in zip(batch["user_id"].numpy(), batch["inputs"].numpy(),
                                         batch["targets"].numpy()):
            rows[int(user)] = (inputs, targets)
    return rows


def test_canonical_split_round_trip(ml100k_dir, tmp_path):
    data = prepare(ml100k_dir, tmp_path / "data", split="u1")
    ratings = movielens.load_ratings(ml100k_dir, ML100K)
    train, test = movielens.canonical_split(ml100k_dir, ML100K, "u1")
    movie_ids = np.unique(ratings["movie"])
    metadata = data.metadata
    assert data.num_movies == len(movie_ids) == 30
    assert data.movie_ids == movie_ids.tolist()
    assert data.movie_titles[0] == "Movie 1 (1991)"
    assert data.train.num_ratings + data.validation.num_ratings == len(train)
    assert data.test.num_ratings == len(test) == metadata["num_test_ratings"]

    want_train, want_test = dense(train, movie_ids), dense(test, movie_ids)
    got_train, got_test = read_all(data.train), read_all(data.test)
    got_validation = read_all(data.validation)
    assert set(got_train) == set(want_train)
    for user, (inputs, targets) in got_train.items():
        # the training part and the validation part together are the canonical training ratings
        np.testing.assert_array_equal(inputs, targets)
        held = got_validation[user][1] if user in got_validation else np.full(30, -1.0)
        np.testing.assert_array_equal(np.where(held >= 0, held, inputs), want_train[user])
    labels = np.concatenate([t[t >= 0] for _, t in got_train.values()])
    assert metadata["train_like_rate"] == pytest.approx(labels.mean())
    assert set(got_test) == set(want_test)
    for user, (inputs, targets) in got_test.items():
        # a test example's inputs are the user's training ratings, its targets the held-out ones
        np.testing.assert_array_equal(inputs, want_train.get(user, np.full(30, -1.0)))
        np.testing.assert_array_equal(targets, want_test[user])
        assert not np.any((inputs >= 0) & (targets >= 0))


def test_examples_are_stored_sparse(ml100k_dir, tmp_path):
    data = prepare(ml100k_dir, tmp_path / "data", split="u1")
    example = next(iter(data.builder.as_dataset(split="train")))
    stored = int(tf.size(example["input_movies"]))
    assert 0 < stored < data.num_movies
    assert example["input_ratings"].dtype == tf.float32
    assert set(example["input_labels"].numpy()) <= {0, 1}


def test_holdout_split_records_follow_the_split(ml100k_dir, tmp_path):
    data = prepare(ml100k_dir, tmp_path / "data", split="holdout", test_per_user=3, split_seed=5)
    assert data.name == "ml-100k-holdout3-random-seed5"
    ratings = movielens.load_ratings(ml100k_dir, ML100K)
    train, test = movielens.holdout_split(ratings, 3, seed=5)
    got_test = read_all(data.test)
    assert data.test.num_ratings == len(test)
    for user, (_, targets) in got_test.items():
        assert (targets >= 0).sum() == 3


def test_shuffled_training_split_is_seeded_and_complete(ml100k_dir, tmp_path):
    data = prepare(ml100k_dir, tmp_path / "data", split="u1")

    def order(seed):
        dataset = data.train.dataset(batch_size=80, shuffle_seed=seed)
        return next(iter(dataset))["user_id"].numpy().tolist()

    assert order(1) == order(1)
    assert order(1) != order(2)
    assert sorted(order(1)) == list(range(1, 81))


def test_unprepared_records_and_bad_splits_are_readable_errors(tmp_path):
    with pytest.raises(MovieLensError, match="no prepared ml-100k-u2 records"):
        load_movielens(tmp_path, "ml-100k", split="u2")
    with pytest.raises(MovieLensError, match="exists only for ml-100k"):
        records.movielens_config("ml-1m", "u1")
    with pytest.raises(MovieLensError, match="unknown split"):
        records.movielens_config("ml-100k", "u9")
    with pytest.raises(MovieLensError, match="unknown MovieLens release"):
        records.movielens_config("ml-7m", "holdout")


def test_a_split_with_no_test_ratings_is_refused(ml100k_dir, tmp_path):
    # every fixture user has fewer than 2 * 50 ratings, so nobody has ratings held out
    with pytest.raises(MovieLensError, match="has no test ratings"):
        prepare(ml100k_dir, tmp_path / "data", split="holdout", test_per_user=50)
    assert not list((tmp_path / "data").glob("**/*.tfrecord*"))


def test_prepared_records_are_reused_until_the_raw_files_change(ml100k_dir, tmp_path):
    data_dir = tmp_path / "data"
    first = prepare(ml100k_dir, data_dir, split="u1")
    written = sorted(pathlib.Path(first.builder.data_dir).glob("*.tfrecord*"))
    modified = [path.stat().st_mtime_ns for path in written]
    again = prepare(ml100k_dir, data_dir, split="u1")
    assert [path.stat().st_mtime_ns for path in written] == modified
    assert again.train.num_ratings == first.train.num_ratings

    # the same directory, other ratings: the records are written again from the new files
    rows = [row for row in planted_ml100k_ratings(seed=1) if row[1] <= 20]
    write_ml100k(ml100k_dir, rows)
    changed = prepare(ml100k_dir, data_dir, split="u1")
    train, _ = movielens.canonical_split(ml100k_dir, ML100K, "u1")
    assert changed.num_movies == 20
    assert changed.train.num_ratings + changed.validation.num_ratings == len(train)
    assert changed.train.num_ratings != first.train.num_ratings
    assert load_movielens(data_dir, "ml-100k", split="u1").num_movies == 20


def test_validation_ratings_are_carved_from_training_and_never_from_test(ml100k_dir, tmp_path):
    data = prepare(ml100k_dir, tmp_path / "data", split="u1", validation_per_user=2)
    train, test = movielens.canonical_split(ml100k_dir, ML100K, "u1")
    fit, validation = read_all(data.train), read_all(data.validation)
    tested = read_all(data.test)
    assert data.validation.num_ratings == sum((t >= 0).sum() for _, t in validation.values())
    for user, (inputs, targets) in validation.items():
        # two held out per user, the user's other training ratings as input
        assert (targets >= 0).sum() == 2
        np.testing.assert_array_equal(inputs, fit[user][0])
        assert not np.any((inputs >= 0) & (targets >= 0))
    for user, (inputs, targets) in tested.items():
        # a test prediction sees every training rating, the validation ones included
        known = fit.get(user, (np.full(30, -1.0),))[0].copy()
        if user in validation:
            held = validation[user][1] >= 0
            known[held] = validation[user][1][held]
        np.testing.assert_array_equal(inputs, known)
    assert data.train.num_ratings + data.validation.num_ratings == len(train)
    assert data.test.num_ratings == len(test)
    assert data.name == "ml-100k-u1-val2"
    with pytest.raises(MovieLensError, match="validation_per_user must be at least 1"):
        prepare(ml100k_dir, tmp_path / "data", split="u1", validation_per_user=0)


def test_ragged_batches_hold_each_users_ratings_as_stored_and_a_sample_is_fixed(tmp_path):
    from tests.conftest import planted_ml100k_ratings
    from tests.conftest import write_ml100k

    raw = write_ml100k(tmp_path / "ml-100k", planted_ml100k_ratings())
    data = prepare_movielens("ml-100k", raw, tmp_path / "data", split="u1")
    stored = {int(e["user_id"]): e for e in data.test.sparse_dataset().as_numpy_iterator()}
    seen = []
    for batch in data.test.ragged_dataset(7, shuffle_seed=3):
        for user, movies, labels in zip(batch["user_id"].numpy(), batch["target_movies"].to_list(),
                                        batch["target_labels"].to_list()):
            seen.append(int(user))
            assert movies == stored[int(user)]["target_movies"].tolist()
            assert labels == stored[int(user)]["target_labels"].tolist()
    assert sorted(seen) == sorted(stored) and seen != sorted(seen)
    first = [int(u) for b in data.test.ragged_dataset(5, max_users=9) for u in b["user_id"].numpy()]
    again = [int(u) for b in data.test.ragged_dataset(4, max_users=9) for u in b["user_id"].numpy()]
    assert len(first) == 9 and first == again


def test_gathered_cases_hold_what_the_ragged_batches_hold():
    from pipelines.movielens_data import case_batches
    from pipelines.movielens_data import gather_cases
    from pipelines.movielens_data import ragged_batches

    movies = tf.ragged.constant([[3, 1], [], [4, 1, 5], [9], [2, 6]], dtype=tf.int32)
    tensors = {"user_id": tf.range(5, dtype=tf.int64), "movies": movies}
    for users, batch in zip(case_batches(5, 2, shuffle_seed=4), ragged_batches(tensors, 2, shuffle_seed=4)):
        rows, places = gather_cases(movies.row_splits, users)
        np.testing.assert_array_equal(users, batch["user_id"])
        np.testing.assert_array_equal(tf.gather(movies.values, places), batch["movies"].values)
        np.testing.assert_array_equal(rows, batch["movies"].value_rowids())


def test_preparing_leaves_nothing_in_the_systems_temporary_directory(tmp_path, monkeypatch):
    import tempfile

    from tests.conftest import planted_ml100k_ratings
    from tests.conftest import write_ml100k

    raw = write_ml100k(tmp_path / "ml-100k", planted_ml100k_ratings())
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    prepare_movielens("ml-100k", raw, tmp_path / "data", split="u1")
    load_movielens(tmp_path / "data", "ml-100k", split="u1")
    # TFDS's constructor makes an empty tmp*tfds directory for a dataset not prepared yet
    assert [path.name for path in system_tmp.iterdir()] == []


def test_held_out_users_become_ragged_cases_the_like_dislike_rbm_trains_and_is_measured_on():
    from pipelines.movielens_data import UserPart
    from pipelines.movielens_data import flat_ratings
    from pipelines.rating_parts import RatingPart
    from pipelines.rating_parts import SparseRows
    from rbm_tf import Recommender

    inputs = SparseRows.from_lists([[0, 2], [1], [0, 1, 3]], [[4.0, 2.0], [3.0], [1.0, 5.0, 2.5]])
    targets = SparseRows.from_lists([[3], [0, 2], [2]], [[5.0], [2.0, 3.5], [4.0]])
    part = UserPart(RatingPart("validation", 4, 3.0, np.array([7, 9, 12]), inputs, targets), 0.6)
    assert (part.num_users, part.num_movies, part.train_like_rate) == (3, 4, 0.6)
    users, movies, stars, labels = flat_ratings(part.ragged_tensors, "input")
    np.testing.assert_array_equal(users, [7, 7, 9, 12, 12, 12])
    np.testing.assert_array_equal(movies, [0, 2, 1, 0, 1, 3])
    np.testing.assert_array_equal(stars, [4.0, 2.0, 3.0, 1.0, 5.0, 2.5])
    np.testing.assert_array_equal(labels, [1, 0, 1, 0, 1, 0])  # like: 3 stars or more
    users, movies, stars, labels = flat_ratings(part.ragged_tensors, "target")
    np.testing.assert_array_equal(users, [7, 9, 9, 12])
    np.testing.assert_array_equal(labels, [1, 0, 1, 1])

    model = Recommender(4, hidden=3, batch_size=2, epochs=1)
    history = model.fit(part, validation_data=part)
    assert history.history["val_num_ratings"] == [4.0]
    assert 0.0 <= history.history["val_auc"][0] <= 1.0
