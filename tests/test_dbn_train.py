"""dbn-train end to end on a tiny IDX directory: run directory, resume, export, CLI errors."""

import json
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from pipelines.images import write_idx
from scripts import dbn_train
from scripts.dbn_train import DBNConfig
from tests.conftest import fails_with

REPO = pathlib.Path(__file__).resolve().parents[1]


def write_stripe_digits(directory, num_train=120, num_test=40, seed=0):
    """The four IDX files of a 4-class 'MNIST': 28x28 images with one bright band per class."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for prefix, count in (("train", num_train), ("t10k", num_test)):
        labels = rng.integers(0, 4, count).astype(np.uint8)
        images = (rng.random([count, 28, 28]) * 60).astype(np.uint8)
        for index, label in enumerate(labels):
            images[index, 7 * label:7 * label + 7] = 200 + rng.integers(0, 55, [7, 28])
        write_idx(directory / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return directory


TINY = DBNConfig(hidden=(16, 8), pretrain_epochs=2, finetune_epochs=2, batch_size=20,
                 learning_rate=0.1, finetune_learning_rate=0.5, gibbs_steps=3)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("dbn")
    raw_dir = write_stripe_digits(root / "raw")
    result = dbn_train.train_and_evaluate(TINY, root / "data", root / "run", raw_dir=raw_dir,
                                          log=lambda message: None)
    return root, result


def test_a_run_leaves_metrics_plots_checkpoints_and_an_export(finished_run):
    root, result = finished_run
    run_dir = root / "run"
    for name in ("metrics.json", "run_config.json", "filters.png", "samples.png", "finetune.png"):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "export" / "dbn" / "1" / "saved_model.pb").is_file()
    assert any((run_dir / "tensorboard").iterdir())
    config = json.loads((run_dir / "run_config.json").read_text())
    assert config["model"] == "dbn" and config["script"] == "dbn_train"
    logged = json.loads((run_dir / "metrics.json").read_text())
    phases = [record["phase"] for record in logged["epochs"]]
    assert phases == ["pretrain_layer_1"] * 2 + ["pretrain_layer_2"] * 2 + [
        "classifier_dbn"] * 2 + ["classifier_same_init"] * 2 + ["classifier_modern"] * 2
    assert [record["epoch"] for record in logged["epochs"]] == list(range(1, 11))
    for record in logged["epochs"][:4]:
        assert 0 < record["train_reconstruction_error"] < 1
        assert record["test_pseudo_log_likelihood"] < 0
    final = logged["final"]
    for name in ("dbn", "same_init", "modern"):
        assert 0 <= final[f"{name}_test_error"] <= 1
    assert final["lowest_test_error"] in ("dbn", "same_init", "modern")
    # four classes of bright bands: the pre-trained network must beat chance (0.75 error)
    assert final["dbn_test_error"] < 0.5


SERVE = textwrap.dedent("""
    import pathlib, sys
    import numpy as np
    import tensorflow as tf
    from scripts.dbn_train import export_run
    path = export_run(pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]))
    served = tf.saved_model.load(str(path)).signatures["serving_default"]
    images = np.zeros([3, 28, 28, 1], np.float32)
    images[:, 7:14] = 1.0
    result = served(images=tf.constant(images))
    assert result["probabilities"].shape == (3, 10), result["probabilities"].shape
    np.testing.assert_allclose(result["probabilities"].numpy().sum(axis=1), 1.0, rtol=1e-5)
    try:
        served(images=tf.zeros([1, 27, 28, 1]))
    except tf.errors.InvalidArgumentError as error:
        assert "shape [batch, 28, 28, 1]" in error.message, error.message
    else:
        raise AssertionError("a 27x28 image was accepted")
    print(path.name, int(result["class"][0]))
""")


def test_export_run_rebuilds_the_classifier_in_a_fresh_process(finished_run, tmp_path):
    root, _ = finished_run
    completed = subprocess.run([sys.executable, "-c", SERVE, str(root / "run"), str(tmp_path / "base")],
                               capture_output=True, text=True, cwd=REPO, timeout=180)
    assert completed.returncode == 0, completed.stderr[-3000:]
    version, predicted = completed.stdout.split()
    assert version == "1"
    # the band at rows 7..13 is class 1 in the fixture
    assert predicted == "1"


def test_an_interrupted_run_resumes_without_redoing_finished_epochs(tmp_path):
    raw_dir = write_stripe_digits(tmp_path / "raw")
    messages = []

    def interrupt_in_fine_tuning(message):
        messages.append(message)
        if message.startswith("dbn epoch 1/"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        dbn_train.train_and_evaluate(TINY, tmp_path / "data", tmp_path / "run", raw_dir=raw_dir,
                                     export_model=False, log=interrupt_in_fine_tuning)
    before = json.loads((tmp_path / "run" / "metrics.json").read_text())["epochs"]
    assert len(before) == 5
    resumed = []
    result = dbn_train.train_and_evaluate(TINY, tmp_path / "data", tmp_path / "run",
                                          resume=True, export_model=False, log=resumed.append)
    assert not any(message.startswith("layer") for message in resumed)
    assert resumed[1].startswith("dbn epoch 2/")
    assert result["epochs"][:5] == before
    assert [record["epoch"] for record in result["epochs"]] == list(range(1, 11))


@pytest.mark.parametrize("extra, message", [
    (["--layers", "500,x"], "hidden layer sizes such as 500,500,2000"),
    (["--layers", "500,0"], "positive hidden layer sizes"),
    (["--raw-dir", "/nonexistent/idx"], "no such directory"),
    (["--resume"], "not a run directory"),
])
def test_user_errors_are_one_line_and_exit_code_2(tmp_path, capsys, extra, message):
    fails_with(capsys, dbn_train.main,
               ["--data-dir", tmp_path / "data", "--run-dir", tmp_path / "run", *extra], message)


def test_resuming_a_run_without_a_checkpoint_is_refused(finished_run, tmp_path):
    root, _ = finished_run
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run_config.json").write_text((root / "run" / "run_config.json").read_text())
    with pytest.raises(dbn_train._run.UserError, match="holds no checkpoint"):
        dbn_train.train_and_evaluate(TINY, root / "data", tmp_path / "run", resume=True)
    with pytest.raises(dbn_train._run.UserError, match="already holds a training run"):
        dbn_train.train_and_evaluate(TINY, root / "data", root / "run")
