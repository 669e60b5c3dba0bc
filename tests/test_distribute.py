"""Training under tf.distribute strategies: the same global batches give the same weights on
one replica, on two mirrored logical CPU devices and on two worker processes (the recommender,
a dense autoencoder, and a DBN's pre-training and fine-tuning).

Each configuration runs `tests/distributed_worker.py` in its own process: logical devices must
be set before TensorFlow starts, and a multi-worker job is one process per worker (TF_CONFIG),
as TensorFlow's own multi-worker tests run it.
"""

import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest

from pipelines import distribute
from pipelines.errors import UserError
from pipelines.image_data import prepare_images
from pipelines.movielens_data import prepare_movielens
from tests.conftest import planted_ml100k_ratings
from tests.conftest import write_ml100k
from tests.conftest import write_stripe_digits

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 240


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """MovieLens records in DIR/data, MNIST-format records of 50 + 20 images in DIR/images."""
    root = tmp_path_factory.mktemp("records")
    raw = write_ml100k(root / "raw" / "ml-100k", planted_ml100k_ratings(num_users=40))
    prepare_movielens("ml-100k", raw, root / "data", split="u1")
    prepare_images("mnist", root / "images", write_stripe_digits(root / "idx", num_train=50, num_test=20))
    return root


def start_worker(data_dir, out, strategy, cpus=1, tf_config=None):
    """A worker writing `out` and, as the chief, the DBN run `out`'s folder/dbn-run."""
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return subprocess.Popen(
        [sys.executable, "-m", "tests.distributed_worker", "--strategy", strategy, "--cpus", str(cpus),
         "--data", str(data_dir / "data"), "--out", str(out), "--images", str(data_dir / "images"),
         "--dbn-run", str(pathlib.Path(out).parent / "dbn-run")],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(processes):
    """Wait for every process; fail with the output of any that failed or hung."""
    try:
        outputs = [process.communicate(timeout=TIMEOUT)[0] for process in processes]
    except subprocess.TimeoutExpired:
        for process in processes:
            process.kill()
        pytest.fail(f"a worker did not finish within {TIMEOUT} s")
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-3000:]


@pytest.fixture(scope="module")
def one_replica(data_dir, tmp_path_factory):
    """The weights of one replica, read when first needed: the reference trains while the
    first test's own processes do."""
    out = tmp_path_factory.mktemp("one") / "weights.npz"
    process = start_worker(data_dir, out, "mirrored", cpus=1)
    loaded = {}

    def weights():
        if not loaded:
            finish([process])
            loaded.update(np.load(out))
        return loaded

    yield weights
    if process.poll() is None:
        process.kill()


def assert_same_weights(theirs, mine):
    theirs = theirs()
    assert int(theirs["replicas"]) == 1 and int(mine["replicas"]) == 2
    assert set(mine) == set(theirs) and any(key.startswith("dbn_rbm_") for key in mine) \
        and any(key.startswith("dbn_classifier_") for key in mine)
    for key in theirs:
        if key != "replicas":
            # fine-tuning sums gradients of another grouping: float rounding, through 3 updates
            tolerance = 1e-5 if key.startswith("dbn_classifier_") else 1e-6
            np.testing.assert_allclose(mine[key], theirs[key], atol=tolerance, err_msg=key)


def test_two_mirrored_replicas_train_as_one(data_dir, one_replica, tmp_path):
    out = tmp_path / "weights.npz"
    finish([start_worker(data_dir, out, "mirrored", cpus=2)])
    assert_same_weights(one_replica, np.load(out))


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for each in sockets:
        each.bind(("127.0.0.1", 0))
    ports = [each.getsockname()[1] for each in sockets]
    for each in sockets:
        each.close()
    return ports


@pytest.mark.multiworker
def test_two_workers_train_as_one(data_dir, one_replica, tmp_path):
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    out = tmp_path / "weights.npz"  # written by the chief only
    finish([start_worker(data_dir, out, "multi-worker",
                         tf_config={"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
            for index in range(2)])
    assert_same_weights(one_replica, np.load(out))
    # the chief wrote the DBN run; the other worker, nothing beside it
    assert (tmp_path / "dbn-run" / "metrics.json").is_file()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["dbn-run", "weights.npz"]


def test_strategies_are_named_and_multi_worker_needs_tf_config(monkeypatch):
    assert distribute.make_strategy("default") is None
    with pytest.raises(ValueError, match="strategy must be one of"):
        distribute.make_strategy("tpu")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(UserError, match="TF_CONFIG"):
        distribute.make_strategy("multi-worker")


def test_replica_shares_cover_the_batch_once():
    for total in (0, 1, 4, 9):
        shares = [distribute.replica_share(total, replica, 4) for replica in range(4)]
        assert shares[0][0] == 0 and shares[-1][1] == total
        assert all(end == start for (_, end), (start, _) in zip(shares, shares[1:]))


def test_the_chief_is_worker_zero_and_only_it_writes_the_run(monkeypatch, tmp_path):
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1", "b:2"]},
                                                "task": {"type": "worker", "index": 1}}))
    assert distribute.task() == ("worker", 1)
    with distribute.writable_run_dir(None, tmp_path / "run") as directory:
        assert directory == tmp_path / "run"  # without a multi-worker strategy: always
    monkeypatch.setattr(distribute, "is_chief", lambda strategy: False)
    with distribute.writable_run_dir("a multi-worker strategy", tmp_path / "run") as directory:
        assert not pathlib.Path(directory).is_relative_to(tmp_path)
        pathlib.Path(directory).mkdir()
    assert not pathlib.Path(directory).exists() and not (tmp_path / "run").exists()
    # resuming, a worker continues from a copy of the chief's run and never writes the original
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run_config.json").write_text("{}")
    with distribute.writable_run_dir("a multi-worker strategy", tmp_path / "run", resume=True) as directory:
        assert (pathlib.Path(directory) / "run_config.json").read_text() == "{}"
        (pathlib.Path(directory) / "checkpoint").write_text("")
    assert sorted(path.name for path in (tmp_path / "run").iterdir()) == ["run_config.json"]


@pytest.mark.parametrize("script", ["rbm_train", "ae_train", "dbn_train"])
def test_the_training_commands_take_only_known_strategies(script, capsys):
    import importlib

    from tests.conftest import fails_with

    main = importlib.import_module(f"scripts.{script}").main
    required = ["--data-dir", "d", "--run-dir", "r"] + (
        ["--model", "dense", "--dataset", "mnist"] if script == "ae_train" else [])
    fails_with(capsys, main, required + ["--strategy", "tpu"], "argument --strategy: invalid choice")
    assert "multi-worker" in main.__globals__["build_parser"]().format_help()


def test_a_worker_that_is_not_the_chief_trains_without_writing_the_run(data_dir, tmp_path, monkeypatch):
    from pipelines.movielens_data import load_movielens
    from rbm_tf import RecommenderConfig
    from rbm_tf import train_recommender

    monkeypatch.setattr(distribute, "is_chief", lambda strategy: False)
    data = load_movielens(data_dir / "data", "ml-100k", "u1")
    result = train_recommender(data, tmp_path / "run", RecommenderConfig(hidden=4, epochs=1))
    assert len(result["epochs"]) == 1 and "export" not in result["final"]
    assert not (tmp_path / "run").exists()


def test_the_replicated_fine_tuning_loop_trains_and_logs_as_keras_fit():
    import keras
    import tensorflow as tf

    from rbm_tf.classifier import build_classifier
    from rbm_tf.replicated_training import fit_classifier

    rng = np.random.default_rng(0)
    images = rng.random([30, 28, 28, 1]).astype(np.float32)
    dataset = tf.data.Dataset.from_tensor_slices((images, rng.integers(0, 3, 30))).batch(8)  # 8, 8, 8, 6
    results = []
    for strategy in (None, tf.distribute.MirroredStrategy(["/cpu:0"])):
        with distribute.scope(strategy):
            model = build_classifier((784, 12), 3, seed=0)
            model.compile(optimizer=keras.optimizers.SGD(0.5, momentum=0.9),
                          loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        if strategy is None:
            history = model.fit(dataset, validation_data=dataset, epochs=2, shuffle=False, verbose=0)
        else:
            history = fit_classifier(model, strategy, dataset, validation_data=dataset, epochs=2)
        results.append((model.get_weights(), history.history))
    (keras_weights, keras_logs), (weights, logs) = results
    for mine, theirs in zip(weights, keras_weights):
        np.testing.assert_allclose(mine, theirs, atol=1e-6)
    assert keras_logs["loss"][1] < keras_logs["loss"][0]  # it learned something to agree on
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(logs[key], keras_logs[key], rtol=1e-5, err_msg=key)
