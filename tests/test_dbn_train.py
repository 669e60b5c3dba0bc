"""A DBN run end to end on a tiny IDX directory (`rbm_tf.dbn_training`): run directory, resume,
export; and dbn-train's wiring and one-line errors."""

import json
import pathlib
import shutil
import subprocess
import sys
import textwrap

import pytest

from pipelines.errors import RunError
from pipelines.image_data import prepare_images
from rbm_tf.dbn_config import DBNConfig
from rbm_tf.dbn_training import train_dbn
from scripts import dbn_train
from tests.conftest import fails_with
from tests.conftest import run_script
from tests.conftest import write_stripe_digits

REPO = pathlib.Path(__file__).resolve().parents[1]


TINY = DBNConfig(hidden=(16, 8), pretrain_epochs=2, finetune_epochs=2, batch_size=20,
                 learning_rate=0.1, finetune_learning_rate=0.5, gibbs_steps=3)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("dbn")
    data = prepare_images("mnist", root / "data", write_stripe_digits(root / "raw"))
    result = train_dbn(TINY, data, root / "run", log=lambda message: None)
    return root, result


def test_a_run_leaves_metrics_plots_checkpoints_and_an_export(finished_run):
    root, result = finished_run
    run_dir = root / "run"
    for name in ("metrics.json", "run_config.json", "filters.png", "samples.png", "finetune.png"):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "export" / "dbn" / "1" / "saved_model.pb").is_file()
    assert any((run_dir / "tensorboard").iterdir())
    config = json.loads((run_dir / "run_config.json").read_text())
    assert config["model"] == "dbn" and DBNConfig.from_dict(config) == TINY
    logged = json.loads((run_dir / "metrics.json").read_text())
    phases = [record["phase"] for record in logged["epochs"]]
    assert phases == ["pretrain_layer_1"] * 2 + ["pretrain_layer_2"] * 2 + [
        "classifier_dbn"] * 2 + ["classifier_same_init"] * 2 + ["classifier_modern"] * 2
    assert [record["epoch"] for record in logged["epochs"]] == list(range(1, 11))
    for record in logged["epochs"][:4]:
        assert 0 < record["train_reconstruction_error"] < 1
        assert record["test_pseudo_log_likelihood"] < 0
    assert [record["phase_epoch"] for record in logged["epochs"]] == [1, 2] * 5
    final = logged["final"]
    assert final == result["final"]
    assert set(final["baselines"]) == {"same_init", "modern"}
    for numbers in (final, *final["baselines"].values()):
        assert 0 <= numbers["test_error"] <= 1
        assert numbers["test_error"] == pytest.approx(1 - numbers["test_accuracy"])
    assert final["test_error"] == logged["epochs"][5]["test_error"]
    assert final["baselines"]["modern"]["test_error"] == logged["epochs"][-1]["test_error"]
    assert final["layer_2_test_pseudo_log_likelihood"] == logged["epochs"][3]["test_pseudo_log_likelihood"]
    assert final["lowest_test_error"] in ("dbn", "same_init", "modern")
    # four classes of bright bands: the pre-trained network must beat chance (0.75 error)
    assert final["test_error"] < 0.5


SERVE = textwrap.dedent("""
    import pathlib, sys
    import numpy as np
    import tensorflow as tf
    from rbm_tf.dbn_training import export_dbn_run
    path = export_dbn_run(pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]))
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
    data = prepare_images("mnist", tmp_path / "data", write_stripe_digits(tmp_path / "raw"))
    messages = []

    def interrupt_in_fine_tuning(message):
        messages.append(message)
        if message.startswith("dbn epoch 1/"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_dbn(TINY, data, tmp_path / "run", export=False, log=interrupt_in_fine_tuning)
    before = json.loads((tmp_path / "run" / "metrics.json").read_text())["epochs"]
    assert len(before) == 5
    resumed = []
    result = train_dbn(TINY, data, tmp_path / "run", resume=True, export=False, log=resumed.append)
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
    data = prepare_images("mnist", root / "data")
    with pytest.raises(RunError, match="holds no checkpoint"):
        train_dbn(TINY, data, tmp_path / "run", resume=True)
    with pytest.raises(RunError, match="already holds a training run"):
        train_dbn(TINY, data, root / "run")


def test_resume_keeps_the_stored_settings_and_takes_more_epochs_when_asked(finished_run, tmp_path, capsys):
    root, _ = finished_run
    shutil.copytree(root / "run", tmp_path / "run")
    code, out, _ = run_script(dbn_train.main, [
        "--data-dir", root / "data", "--run-dir", tmp_path / "run", "--resume", "--no-export",
        "--finetune-epochs", "3", "--layers", "5", "--learning-rate", "0.9"], capsys)
    assert code == 0
    assert "final test error: dbn " in out
    logged = json.loads((tmp_path / "run" / "metrics.json").read_text())
    # the first ten epochs stay; each classifier continues with its third epoch, numbered on
    assert logged["epochs"][:10] == finished_run[1]["epochs"]
    continued = [(record["epoch"], record["phase"], record["phase_epoch"]) for record in logged["epochs"][10:]]
    assert continued == [(11, "classifier_dbn", 3), (12, "classifier_same_init", 3), (13, "classifier_modern", 3)]
    stored = DBNConfig.from_dict(json.loads((tmp_path / "run" / "run_config.json").read_text()))
    assert stored.hidden == (16, 8) and stored.learning_rate == 0.1 and stored.finetune_epochs == 3
    # without the flag a resume continues to the stored counts: nothing left to train
    code, _, _ = run_script(dbn_train.main, ["--data-dir", root / "data", "--run-dir", tmp_path / "run",
                                             "--resume", "--no-export"], capsys)
    assert code == 0
    assert len(json.loads((tmp_path / "run" / "metrics.json").read_text())["epochs"]) == 13


def test_resume_refuses_other_settings_and_pretraining_below_a_finished_phase(finished_run, tmp_path):
    root, _ = finished_run
    shutil.copytree(root / "run", tmp_path / "run")
    data = prepare_images("mnist", root / "data")
    with pytest.raises(RunError, match="started with learning_rate 0.1"):
        train_dbn(DBNConfig(**{**TINY.to_dict(), "learning_rate": 0.2}), data, tmp_path / "run", resume=True)
    with pytest.raises(RunError, match="pretrain_epochs can grow only while pre-training"):
        train_dbn(DBNConfig(**{**TINY.to_dict(), "pretrain_epochs": 3}), data, tmp_path / "run", resume=True)
