"""rbm-prepare, rbm-train and rbm-recommend end to end on a small planted-taste ML-100K directory."""

import json
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from scripts import _run
from scripts import rbm_prepare
from scripts import rbm_recommend
from scripts import rbm_train
from tests.conftest import fails_with
from tests.conftest import planted_ml100k_ratings
from tests.conftest import write_ml100k

SMALL_MODEL = ["--hidden", "8", "--batch-size", "10", "--learning-rate", "0.1"]


def prepare(raw_dir, data_dir, *extra):
    assert rbm_prepare.main(["--raw-dir", str(raw_dir), "--data-dir", str(data_dir), *extra]) == 0


def train(data_dir, run_dir, epochs, *extra):
    return rbm_train.main(["--data-dir", str(data_dir), "--run-dir", str(run_dir),
                           "--epochs", str(epochs), *SMALL_MODEL, *extra])


def restored_rbm(run_dir):
    """The RBM of a run's latest checkpoint, rebuilt in this process."""
    return rbm_train.restore_rbm(_run.RunDirectory(run_dir))


@pytest.fixture
def prepared(ml100k_dir, tmp_path):
    data_dir = tmp_path / "data"
    prepare(ml100k_dir.parent, data_dir)
    return data_dir


def test_train_beats_the_majority_baseline_and_writes_the_run_directory(prepared, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert train(prepared, run_dir, 12) == 0
    assert "majority baseline" in capsys.readouterr().out
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert [epoch["epoch"] for epoch in metrics["epochs"]] == list(range(1, 13))
    for key in ("epoch", "seconds", "train_accuracy", "test_accuracy", "test_auc", "majority_baseline"):
        assert key in metrics["epochs"][-1]
    final = metrics["final"]
    # movies 1-5 are liked by everyone and half the rest by each taste group
    assert 0.55 < final["majority_baseline"] < 0.8
    assert final["test_accuracy"] > final["majority_baseline"] + 0.1
    assert final["test_auc"] > 0.9
    assert final["beats_majority_baseline"] is True
    assert (run_dir / "metrics.png").stat().st_size > 1000
    assert list((run_dir / "tensorboard" / "test").iterdir())
    export_dir = pathlib.Path(final["export"])
    assert export_dir == run_dir / "export" / "rbm" / "1"
    table = (export_dir / "assets" / "movies.tsv").read_text().splitlines()
    assert table[0] == "index\tmovie_id\ttitle" and table[1] == "0\t1\tMovie 1 (1991)"


def test_export_reloaded_in_a_fresh_process_reproduces_the_model(prepared, tmp_path):
    run_dir = tmp_path / "run"
    train(prepared, run_dir, 2)
    rbm = restored_rbm(run_dir)
    ratings = np.full([3, rbm.num_visible], -1.0, np.float32)
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
    expected = rbm.reconstruct(ratings, ratings >= 0).numpy()
    np.testing.assert_allclose(served["probability"], expected, rtol=1e-6, atol=1e-7)
    for user in range(3):
        unrated = np.flatnonzero(ratings[user] < 0)
        best = unrated[np.argsort(-expected[user, unrated], kind="stable")[:4]]
        np.testing.assert_allclose(np.sort(expected[user, served["indices"][user]]),
                                   np.sort(expected[user, best]), rtol=1e-6)
        assert not np.any(ratings[user, served["indices"][user]] >= 0)
        np.testing.assert_array_equal(served["ids"][user], served["indices"][user] + 1)


def test_resume_continues_exactly_where_an_unbroken_run_would_be(prepared, tmp_path):
    train(prepared, tmp_path / "straight", 4, "--no-export")
    train(prepared, tmp_path / "broken", 2, "--no-export")
    assert rbm_train.main(["--data-dir", str(prepared), "--run-dir", str(tmp_path / "broken"),
                           "--epochs", "4", "--resume", "--no-export"]) == 0
    straight = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    broken = json.loads((tmp_path / "broken" / "metrics.json").read_text())
    assert [e["epoch"] for e in broken["epochs"]] == [1, 2, 3, 4]
    for key in ("test_accuracy", "test_auc", "train_reconstruction_error"):
        assert broken["epochs"][-1][key] == straight["epochs"][-1][key]
    np.testing.assert_array_equal(restored_rbm(tmp_path / "broken").weights.numpy(),
                                  restored_rbm(tmp_path / "straight").weights.numpy())


def test_export_run_re_exports_the_checkpoint_as_the_next_version(prepared, tmp_path):
    run_dir = tmp_path / "run"
    train(prepared, run_dir, 1)
    second = rbm_train.export_run(run_dir)
    assert second == run_dir / "export" / "rbm" / "2"
    ratings = tf.constant(np.where(np.arange(30) < 5, 1.0, -1.0)[np.newaxis].astype(np.float32))
    outputs = [tf.saved_model.load(str(run_dir / "export" / "rbm" / v)).signatures["serving_default"](
        ratings=ratings)["like_probability"].numpy() for v in ("1", "2")]
    np.testing.assert_array_equal(outputs[0], outputs[1])


def test_recommend_lists_titled_unrated_movies(prepared, tmp_path, capsys):
    run_dir = tmp_path / "run"
    train(prepared, run_dir, 3)
    capsys.readouterr()
    recommendations = rbm_recommend.recommend(run_dir, 2, 3)
    assert len(recommendations) == 3
    for movie_id, title, score in recommendations:
        assert title == f"Movie {movie_id} (199{movie_id % 10})"
        assert 0.0 <= score <= 1.0
    assert rbm_recommend.main(["--run-dir", str(run_dir), "--user", "2", "--top", "3"]) == 0
    assert "Movie" in capsys.readouterr().out
    # a user without training ratings is a user error
    fails_with(capsys, rbm_recommend.main, ["--run-dir", str(run_dir), "--user", "999"],
               "user 999 has no training ratings")


def test_bad_input_gives_one_line_and_exit_code_2(ml100k_dir, prepared, tmp_path, capsys):
    fails_with(capsys, rbm_prepare.main, ["--raw-dir", str(tmp_path / "nowhere"), "--data-dir",
                                          str(tmp_path / "d")], "is not a directory")
    (tmp_path / "empty").mkdir()
    fails_with(capsys, rbm_prepare.main, ["--raw-dir", str(tmp_path / "empty"), "--data-dir",
                                          str(tmp_path / "d")], "is empty")
    fails_with(capsys, rbm_prepare.main, ["--raw-dir", str(ml100k_dir), "--release", "ml-3k",
                                          "--data-dir", str(tmp_path / "d")], "unknown MovieLens release")
    broken = write_ml100k(tmp_path / "broken", planted_ml100k_ratings())
    with open(broken / "u1.base", "a") as handle:
        handle.write("7\t3\tfive\t880000000\n")
    fails_with(capsys, rbm_prepare.main, ["--raw-dir", str(broken), "--data-dir", str(tmp_path / "d")],
               "u1.base:")
    assert not list((tmp_path / "d").glob("**/*.tfrecord*"))
    fails_with(capsys, rbm_train.main, ["--data-dir", str(tmp_path / "d"), "--run-dir",
                                        str(tmp_path / "r")], "run rbm-prepare")
    fails_with(capsys, rbm_train.main, ["--data-dir", str(prepared), "--run-dir", str(tmp_path / "r"),
                                        "--hidden", "0"], "at least 1")


def test_runs_refuse_to_be_overwritten_or_resumed_on_other_data(prepared, tmp_path, capsys):
    run_dir = tmp_path / "run"
    train(prepared, run_dir, 1, "--no-export")
    fails_with(capsys, rbm_train.main, ["--data-dir", str(prepared), "--run-dir", str(run_dir)],
               "already holds a training run")
    fails_with(capsys, rbm_train.main, ["--data-dir", str(prepared), "--run-dir", str(run_dir),
                                        "--epochs", "1", "--resume"], "already has 1 epochs")
    fails_with(capsys, rbm_train.main, ["--data-dir", str(prepared), "--run-dir", str(tmp_path / "new"),
                                        "--resume"], "is not a run directory")
    # records with fewer movies than the checkpoint was trained on
    fewer = [row for row in planted_ml100k_ratings() if row[1] <= 20]
    write_ml100k(tmp_path / "fewer" / "ml-100k", fewer)
    prepare(tmp_path / "fewer", tmp_path / "fewer-data")
    fails_with(capsys, rbm_train.main, ["--data-dir", str(tmp_path / "fewer-data"), "--run-dir",
                                        str(run_dir), "--epochs", "2", "--resume"],
               "the records have 20 movies but the checkpoint")
