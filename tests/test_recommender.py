"""The RBM recommender through its library API, on a small planted-taste ML-100K directory."""

import errno
import json
import math
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from pipelines import loop
from pipelines.errors import DivergedError
from pipelines.errors import RunError
from pipelines.movielens_data import prepare_movielens
from pipelines.recommender_eval import training_triplets
from rbm_tf import Recommender
from rbm_tf import RecommenderConfig
from rbm_tf.recommender_training import export_recommender_run
from rbm_tf.recommender_training import train_recommender
from rbm_tf.recommender import sparse_ratings
from tests.conftest import planted_ml100k_ratings
from tests.conftest import write_ml100k

SMALL = RecommenderConfig(hidden=8, batch_size=10, learning_rate=0.1, epochs=12)


def strict_json(path):
    """The JSON at `path`, refusing the bare NaN / Infinity that are not JSON."""
    def refuse(constant):
        raise ValueError(f"{path} holds {constant}, which is not JSON")
    return json.loads(pathlib.Path(path).read_text(), parse_constant=refuse)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("movielens")
    raw = write_ml100k(root / "raw" / "ml-100k", planted_ml100k_ratings())
    return prepare_movielens("ml-100k", raw, root / "data", split="u1")


def train(data, run_dir, epochs, **settings):
    config = RecommenderConfig(**{**vars(SMALL), "epochs": epochs, **settings})
    return train_recommender(data, run_dir, config, export=False)


def test_a_run_beats_the_majority_baseline_and_writes_its_directory(data, tmp_path):
    run_dir = tmp_path / "run"
    result = train_recommender(data, run_dir, SMALL)
    metrics = strict_json(run_dir / "metrics.json")
    assert metrics == json.loads(json.dumps(result))
    assert [epoch["epoch"] for epoch in metrics["epochs"]] == list(range(1, 13))
    last = metrics["epochs"][-1]
    for key in ("seconds", "train_accuracy", "validation_accuracy", "validation_auc",
                "validation_ndcg_at_10", "validation_majority_accuracy"):
        assert key in last
    # per epoch the model is judged on validation ratings only: no test metric is there
    assert not [key for epoch in metrics["epochs"] for key in epoch if key.startswith("test_")]
    assert set(last["baselines"]) == {"majority", "item_like_rate", "user_item_biases", "most_popular"}
    final = metrics["final"]
    majority = final["baselines"]["majority"]
    # movies 1-5 are liked by everyone and half the rest by each taste group
    assert 0.55 < majority["test_accuracy"] < 0.8
    assert majority["test_error"] == pytest.approx(1 - majority["test_accuracy"])
    assert majority["test_ndcg_at_10"] is None  # a constant ranks nothing
    assert final["baselines"]["most_popular"]["test_accuracy"] is None
    assert final["test_error"] == pytest.approx(1 - final["test_accuracy"])
    assert final["test_accuracy"] > majority["test_accuracy"] + 0.1
    assert final["test_auc"] > 0.9 and final["beats_majority"] is True
    assert final["test_log_loss"] > 0
    for key in ("test_precision_at_10", "test_recall_at_10", "test_ndcg_at_10"):
        assert 0 <= final[key] <= 1
    assert (run_dir / "metrics.png").stat().st_size > 1000
    assert list((run_dir / "tensorboard" / "validation").iterdir())
    export_dir = pathlib.Path(final["export"])
    assert export_dir == run_dir / "export" / "rbm" / "1"
    table = (export_dir / "assets" / "movies.tsv").read_text().splitlines()
    assert table[0] == "index\tmovie_id\ttitle"
    assert table[1] == "0\t1\tMovie 1 (1991)"


def test_training_stops_on_validation_and_keeps_the_best_epoch(data, tmp_path):
    # 8 updates an epoch: patience 8 updates is one epoch, no minimum
    config = RecommenderConfig(**{**vars(SMALL), "epochs": 30, "patience_updates": 8,
                                  "min_updates": 0, "learning_rate": 0.5})
    result = train_recommender(data, tmp_path / "run", config, export=False)
    epochs = result["epochs"]
    aucs = [epoch["validation_auc"] for epoch in epochs]
    best = int(np.argmax(aucs))
    assert len(epochs) < 30 and len(epochs) == best + 2  # stopped one epoch after the best
    assert result["final"]["best_epoch"] == best + 1
    model = Recommender.restore(tmp_path / "run")
    assert model.evaluate(data.validation)["auc"] == pytest.approx(aucs[best], abs=1e-6)


def test_fit_evaluate_and_recommend_in_memory(data):
    model = Recommender(data.num_movies, SMALL, data.movie_ids, data.movie_titles)
    history = model.fit(data.train, validation_data=data.validation, epochs=3)
    assert len(history.history["val_auc"]) == 3 and int(model.epoch.numpy()) == 3
    metrics = model.evaluate(data.validation)
    assert metrics["auc"] == pytest.approx(history.history["val_auc"][-1])
    assert metrics["ndcg_at_10"] == pytest.approx(history.history["val_ndcg_at_10"][-1])
    assert metrics["num_ratings"] == data.validation.num_ratings
    # a user nobody trained on: likes movies 1-5 and the first half, dislikes the second half
    ratings = np.full(data.num_movies, -1.0, np.float32)
    ratings[:3], ratings[20:23] = 1.0, 0.0
    top = model.recommend(ratings, k=4)
    assert len(top) == 4 and all(data.movie_ids.index(m) not in (0, 1, 2, 20, 21, 22) for m, _, _ in top)
    assert top[0][1] == f"Movie {top[0][0]} (199{top[0][0] % 10})"


def test_recommend_never_returns_a_rated_movie_even_when_k_exceeds_the_unrated(data, tmp_path):
    model = Recommender(data.num_movies, SMALL, data.movie_ids, data.movie_titles)
    ratings = np.ones([2, data.num_movies], np.float32)
    ratings[0, [4, 9]] = -1.0  # two unrated movies
    ratings[1, :] = 0.0        # none
    lists = model.recommend(ratings, k=5)
    assert sorted(movie for movie, _, _ in lists[0]) == [5, 10] and lists[1] == []
    served = model.export(tmp_path / "export")
    top = tf.saved_model.load(str(served)).signatures["recommend"](
        ratings=tf.constant(ratings), k=tf.constant(5))
    np.testing.assert_array_equal(top["num_recommended"].numpy(), [2, 0])
    assert sorted(top["movie_indices"].numpy()[0, :2]) == [4, 9]
    np.testing.assert_array_equal(top["movie_indices"].numpy()[0, 2:], [-1, -1, -1])
    np.testing.assert_array_equal(top["movie_ids"].numpy()[1], [-1] * 5)


def test_the_majority_baseline_is_the_training_ratings_majority(tmp_path):
    # train ratings mostly likes, test ratings mostly dislikes: the baseline predicts "like"
    rows = planted_ml100k_ratings(num_users=30, num_movies=12)
    raw = write_ml100k(tmp_path / "raw" / "ml-100k", rows)
    test_lines = []
    for user in range(1, 31):
        test_lines += [f"{user}\t{movie}\t1\t880000000\n" for movie in (1, 2, 3)]
        test_lines.append(f"{user}\t4\t5\t880000000\n")
    (raw / "u.data").write_text((raw / "u.data").read_text() + "".join(test_lines))
    (raw / "u1.test").write_text("".join(test_lines))
    (raw / "u1.base").write_text("".join(f"{u}\t{m}\t{r}\t{t}\n" for u, m, r, t in rows
                                         if m not in (1, 2, 3, 4)))
    data = prepare_movielens("ml-100k", raw, tmp_path / "data", split="u1", validation_per_user=1)
    assert data.train.like_rate > 0.5 > data.test.like_rate
    model = Recommender(data.num_movies, SMALL)
    # a quarter of the test labels are likes: "always like" is right a quarter of the time
    assert model.evaluate(data.test)["majority_accuracy"] == pytest.approx(0.25)
    history = model.fit(data.train, validation_data=data.test, epochs=1)
    assert history.history["val_majority_accuracy"] == [pytest.approx(0.25)]


def test_export_reloaded_in_a_fresh_process_reproduces_the_model(data, tmp_path):
    run_dir = tmp_path / "run"
    train_recommender(data, run_dir, RecommenderConfig(**{**vars(SMALL), "epochs": 2}))
    model = Recommender.restore(run_dir)
    ratings = np.full([3, data.num_movies], -1.0, np.float32)
    ratings[0, :5] = 1
    ratings[1, 10:20] = [1, 0] * 5
    np.save(tmp_path / "ratings.npy", ratings)
    script = textwrap.dedent(f"""
        import numpy as np, tensorflow as tf
        served = tf.saved_model.load({str(run_dir / 'export' / 'rbm' / '1')!r})
        ratings = tf.constant(np.load({str(tmp_path / 'ratings.npy')!r}))
        probability = served.signatures["serving_default"](ratings=ratings)["like_probability"]
        top = served.signatures["recommend"](ratings=ratings, k=tf.constant(4))
        np.savez({str(tmp_path / 'served.npz')!r}, probability=probability.numpy(),
                 indices=top["movie_indices"].numpy(), ids=top["movie_ids"].numpy())
    """)
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True)
    served = np.load(tmp_path / "served.npz")
    expected = model.predict(ratings)
    np.testing.assert_array_equal(served["probability"], expected)
    np.testing.assert_array_equal(model.predict(ratings), expected)  # deterministic
    score = expected * model.rating_share.numpy()
    for user in range(3):
        unrated = np.flatnonzero(ratings[user] < 0)
        best = unrated[np.argsort(-score[user, unrated], kind="stable")[:4]]
        np.testing.assert_allclose(np.sort(score[user, served["indices"][user]]),
                                   np.sort(score[user, best]), rtol=1e-6)
        assert not np.any(ratings[user, served["indices"][user]] >= 0)
        np.testing.assert_array_equal(served["ids"][user], served["indices"][user] + 1)


def interrupt_after(monkeypatch, epochs):
    """Make the run stop with Ctrl-C once `epochs` epochs are saved."""
    original = loop.RunMonitor.on_epoch_end

    def on_epoch_end(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch + 1 == epochs:
            raise KeyboardInterrupt

    monkeypatch.setattr(loop.RunMonitor, "on_epoch_end", on_epoch_end)


def test_resume_continues_exactly_where_an_unbroken_run_would_be(data, tmp_path, monkeypatch):
    train(data, tmp_path / "straight", 4)
    with monkeypatch.context() as patch:
        interrupt_after(patch, 2)
        with pytest.raises(KeyboardInterrupt):
            train(data, tmp_path / "broken", 4)
    # resumed without an epoch count: the run's own 4, not the default 40
    train_recommender(data, tmp_path / "broken", resume=True, export=False)
    straight = strict_json(tmp_path / "straight" / "metrics.json")
    broken = strict_json(tmp_path / "broken" / "metrics.json")
    assert [e["epoch"] for e in broken["epochs"]] == [1, 2, 3, 4]
    for key in ("validation_accuracy", "validation_auc", "train_squared_error"):
        assert broken["epochs"][-1][key] == straight["epochs"][-1][key]
    np.testing.assert_array_equal(Recommender.restore(tmp_path / "broken").rbm.weights.numpy(),
                                  Recommender.restore(tmp_path / "straight").rbm.weights.numpy())
    with pytest.raises(RunError, match="already has 4 epochs"):
        train_recommender(data, tmp_path / "broken", resume=True)


def test_re_export_is_the_next_version_and_is_noted_in_the_metrics(data, tmp_path):
    run_dir = tmp_path / "run"
    train_recommender(data, run_dir, RecommenderConfig(**{**vars(SMALL), "epochs": 1}))
    second = export_recommender_run(run_dir)
    assert second == run_dir / "export" / "rbm" / "2"
    assert strict_json(run_dir / "metrics.json")["final"]["export"] == str(second)
    ratings = tf.constant(np.where(np.arange(30) < 5, 1.0, -1.0)[np.newaxis].astype(np.float32))
    outputs = [tf.saved_model.load(str(run_dir / "export" / "rbm" / v)).signatures["serving_default"](
        ratings=ratings)["like_probability"].numpy() for v in ("1", "2")]
    np.testing.assert_array_equal(outputs[0], outputs[1])


def test_an_abandoned_export_directory_is_removed_by_the_next_export(data, tmp_path):
    run_dir = tmp_path / "run"
    train(data, run_dir, 1)
    # what a SIGKILL in the middle of an export leaves: a temporary directory of a dead process
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    abandoned = run_dir / "export" / "rbm" / f".export-{child.stdout.strip()}-x1"
    (abandoned / "saved_model").mkdir(parents=True)
    export_recommender_run(run_dir)
    assert sorted(p.name for p in (run_dir / "export" / "rbm").iterdir()) == ["1"]


@pytest.mark.parametrize("learning_rate", [1e30, 1e15])
def test_a_diverging_run_stops_without_saving_or_exporting(data, tmp_path, learning_rate):
    run_dir = tmp_path / "run"
    config = RecommenderConfig(**{**vars(SMALL), "epochs": 3, "learning_rate": learning_rate})
    with pytest.raises(DivergedError, match="diverged in epoch 1"):
        train_recommender(data, run_dir, config)
    metrics = strict_json(run_dir / "metrics.json")
    assert metrics["final"] == {} and None in metrics["epochs"][-1].values()
    assert not (run_dir / "export").exists()
    assert not (run_dir / "checkpoints").exists()


def test_settings_a_run_cannot_use_are_refused_by_name():
    for settings, message in (({"learning_rate": float("nan")}, "learning_rate must be positive"),
                              ({"hidden": 0}, "hidden must be at least 1"),
                              ({"visible": "triple"}, "visible must be one of"),
                              ({"weight_stddev": 0.0}, "weight_stddev must be positive")):
        with pytest.raises(ValueError, match=message):
            RecommenderConfig(**settings)


def test_the_initial_weights_have_the_configured_scale():
    for stddev in (0.01, 0.1):
        model = Recommender(500, RecommenderConfig(hidden=40, weight_stddev=stddev))
        weights = model.rbm.weights.numpy()
        assert weights.shape == (1000, 40)
        # 40,000 draws: the sample deviation is within 2% of the configured one
        assert abs(weights.std() / stddev - 1) < 0.02 and abs(weights.mean()) < 0.05 * stddev


def test_a_run_directory_that_cannot_be_written_is_a_run_error(data, tmp_path, monkeypatch):
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(RunError, match="is a file"):
        train(data, tmp_path / "file", 1)

    read_only = tmp_path / "read-only"
    original_mkdir = pathlib.Path.mkdir

    def mkdir(self, *args, **kwargs):
        if self == read_only:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return original_mkdir(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(pathlib.Path, "mkdir", mkdir)
        with pytest.raises(RunError, match="Read-only file system"):
            train(data, read_only, 1)

    # the disk fills up while epoch 2 is saved: epoch 1's checkpoint stays, and resumes
    original_save = tf.train.CheckpointManager.save

    def save(self, checkpoint_number=None, **kwargs):
        if checkpoint_number == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return original_save(self, checkpoint_number=checkpoint_number, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(tf.train.CheckpointManager, "save", save)
        with pytest.raises(RunError, match="No space left on device"):
            train(data, tmp_path / "full", 3)
    assert [e["epoch"] for e in strict_json(tmp_path / "full" / "metrics.json")["epochs"]] == [1]
    train_recommender(data, tmp_path / "full", resume=True, export=False)
    assert [e["epoch"] for e in strict_json(tmp_path / "full" / "metrics.json")["epochs"]] == [1, 2, 3]


def test_run_files_are_only_ever_replaced_whole(data, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    replaced = []
    original_replace = os.replace

    def replace(source, target):
        target = pathlib.Path(target)
        if target.name in ("metrics.json", "run_config.json", "movies.tsv"):
            # the new file is complete before it takes the old one's place, in the same directory
            assert pathlib.Path(source).parent == target.parent
            text = pathlib.Path(source).read_text()
            if target.suffix == ".json":
                json.loads(text)
            replaced.append(target.name)
        return original_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    train(data, run_dir, 2)
    assert replaced.count("run_config.json") == 1 and replaced.count("movies.tsv") == 1
    assert replaced.count("metrics.json") == 3  # two epochs and the final
    assert not list(run_dir.glob(".*.tmp"))


def test_a_users_offset_is_their_bias_beyond_what_the_movies_they_rated_predict():
    model = Recommender(4, SMALL)
    model.like_logit.assign(np.log(0.8 / 0.2))
    rates = np.array([0.9, 0.5, 0.8, 0.6], np.float32)
    model.item_logit.assign(np.log(rates / (1 - rates)))
    ratings = tf.constant([[1, 1, 0, -1], [-1, -1, -1, -1], [0, 0, 0, 0]], tf.float32)
    # one Newton step of the user bias: sum(like - p) / (sum p (1 - p) + 5 ratings x 0.8 x 0.2)
    want = [((1 - 0.9) + (1 - 0.5) + (0 - 0.8)) / (0.09 + 0.25 + 0.16 + 0.8),
            0.0,
            -(0.9 + 0.5 + 0.8 + 0.6) / (0.09 + 0.25 + 0.16 + 0.24 + 0.8)]
    np.testing.assert_allclose(model.user_offset(ratings).numpy(), want, rtol=1e-5, atol=1e-6)
    rows, movies, values = sparse_ratings(*ragged_ratings(ratings))
    np.testing.assert_allclose(model.sparse_user_offset(rows, movies, values, 3).numpy(), want,
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(
        model.predict(ratings),
        model.rbm.reconstruct(ratings, ratings >= 0, model.user_offset(ratings)).numpy())
    off = Recommender(4, SMALL, user_offset=False)
    assert off.user_offset(ratings) is None


def ragged_ratings(ratings):
    """The known entries of dense ratings as ragged (movies, labels), as batches carry them."""
    known = ratings >= 0
    movies = tf.ragged.boolean_mask(tf.broadcast_to(tf.range(ratings.shape[1]), ratings.shape), known)
    return movies, tf.ragged.boolean_mask(ratings, known)


def test_recommendations_are_ranked_by_the_chance_of_rating_and_liking(data):
    model = Recommender(data.num_movies, SMALL, data.movie_ids, data.movie_titles)
    model.fit(data.train, epochs=2)
    ratings = np.full(data.num_movies, -1.0, np.float32)
    ratings[:2] = 1.0
    probability = model.predict(ratings[np.newaxis])[0]
    score = probability * model.rating_share.numpy()
    top = model.recommend(ratings, k=5)
    want = np.argsort(-np.where(ratings < 0, score, -np.inf), kind="stable")[:5]
    assert [movie for movie, _, _ in top] == [data.movie_ids[i] for i in want]
    np.testing.assert_allclose([p for _, _, p in top], probability[want], rtol=1e-6)
    # the rating shares are each movie's part of the training ratings
    _, movies, _ = training_triplets(data.train)
    np.testing.assert_allclose(model.rating_share.numpy(),
                               np.bincount(movies, minlength=data.num_movies) / len(movies), rtol=1e-6)
