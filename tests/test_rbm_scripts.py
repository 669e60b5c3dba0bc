"""rbm-prepare, rbm-train and rbm-recommend: the wiring to the library and the one-line errors."""

import json
import os
import subprocess
import sys

import pytest

from scripts import _cli
from scripts import rbm_prepare
from scripts import rbm_recommend
from scripts import rbm_train
from tests.conftest import fails_with
from tests.conftest import planted_ml100k_ratings
from tests.conftest import write_ml100k

SMALL_MODEL = ["--hidden", "8", "--batch-size", "10", "--learning-rate", "0.1"]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("scripts")
    raw = write_ml100k(root / "raw" / "ml-100k", planted_ml100k_ratings())
    assert rbm_prepare.main(["--raw-dir", str(raw.parent), "--data-dir", str(root / "data")]) == 0
    return root / "data"


def train(data_dir, run_dir, *extra):
    return rbm_train.main(["--data-dir", str(data_dir), "--run-dir", str(run_dir), *SMALL_MODEL,
                           *extra])


def test_train_then_recommend(prepared, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert train(prepared, run_dir, "--epochs", "3") == 0
    out = capsys.readouterr().out
    assert "epoch 3/3" in out and "exported to" in out
    assert "(majority " in out and "user+item biases" in out and "most popular" in out
    assert json.loads((run_dir / "metrics.json").read_text())["final"]["best_epoch"] <= 3
    assert rbm_recommend.main(["--run-dir", str(run_dir), "--user", "2", "--top", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "top 3 movies for user 2 (like probability):" and len(lines) == 4
    assert all("Movie" in line for line in lines[1:])
    fails_with(capsys, rbm_recommend.main, ["--run-dir", str(run_dir), "--user", "999"],
               "user 999 has no training ratings")


def test_resume_without_epochs_keeps_the_runs_own_count(prepared, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert train(prepared, run_dir, "--epochs", "2", "--no-export") == 0
    fails_with(capsys, rbm_train.main, ["--data-dir", str(prepared), "--run-dir", str(run_dir),
                                        "--resume"], "already has 2 epochs")
    assert rbm_train.main(["--data-dir", str(prepared), "--run-dir", str(run_dir), "--resume",
                           "--epochs", "3", "--no-export"]) == 0
    assert "epoch 3/3" in capsys.readouterr().out


def test_bad_input_gives_one_line_and_exit_code_2(prepared, tmp_path, capsys):
    fails_with(capsys, rbm_prepare.main, ["--raw-dir", str(tmp_path / "nowhere"), "--data-dir",
                                          str(tmp_path / "d")], "is not a directory")
    (tmp_path / "empty").mkdir()
    fails_with(capsys, rbm_prepare.main, ["--raw-dir", str(tmp_path / "empty"), "--data-dir",
                                          str(tmp_path / "d")], "is empty")
    fails_with(capsys, rbm_prepare.main, ["--raw-dir", str(tmp_path / "empty"), "--release", "ml-3k",
                                          "--data-dir", str(tmp_path / "d")], "unknown MovieLens release")
    fails_with(capsys, rbm_prepare.main, ["--raw-dir", str(tmp_path / "empty"), "--split", "holdout",
                                          "--order", "sideways", "--data-dir", str(tmp_path / "d")],
               "--order must be one of random, time")
    broken = write_ml100k(tmp_path / "broken", planted_ml100k_ratings())
    with open(broken / "u1.base", "a") as handle:
        handle.write("7\t3\tfive\t880000000\n")
    fails_with(capsys, rbm_prepare.main, ["--raw-dir", str(broken), "--data-dir", str(tmp_path / "d")],
               "u1.base:")
    assert not list((tmp_path / "d").glob("**/*.tfrecord*"))
    fails_with(capsys, rbm_train.main, ["--data-dir", str(tmp_path / "d"), "--run-dir",
                                        str(tmp_path / "r")], "rbm-prepare")
    # library errors name arguments; the tool names its flags
    fails_with(capsys, rbm_train.main, ["--data-dir", str(prepared), "--run-dir", str(tmp_path / "r"),
                                        "--hidden", "0"], "--hidden must be at least 1")
    fails_with(capsys, rbm_train.main, ["--data-dir", str(prepared), "--run-dir", str(tmp_path / "r"),
                                        "--learning-rate", "nan"], "--learning-rate must be positive")
    (tmp_path / "a-file").write_text("")
    fails_with(capsys, rbm_train.main, ["--data-dir", str(prepared), "--run-dir", str(tmp_path / "a-file")],
               "is a file, not a run directory")


def test_a_diverging_run_exits_2_with_one_line_and_no_export(prepared, tmp_path, capsys):
    run_dir = tmp_path / "run"
    fails_with(capsys, rbm_train.main, ["--data-dir", str(prepared), "--run-dir", str(run_dir),
                                        "--epochs", "2", "--learning-rate", "1e30"],
               "training diverged in epoch 1")
    assert not (run_dir / "export").exists()
    json.loads((run_dir / "metrics.json").read_text(), parse_constant=pytest.fail)


def test_runs_refuse_to_be_overwritten_or_resumed_on_other_data(prepared, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert train(prepared, run_dir, "--epochs", "1", "--no-export") == 0
    fails_with(capsys, rbm_train.main, ["--data-dir", str(prepared), "--run-dir", str(run_dir)],
               "already holds a training run")
    fails_with(capsys, rbm_train.main, ["--data-dir", str(prepared), "--run-dir", str(tmp_path / "new"),
                                        "--resume"], "is not a run directory")
    fewer = [row for row in planted_ml100k_ratings() if row[1] <= 20]
    write_ml100k(tmp_path / "fewer" / "ml-100k", fewer)
    assert rbm_prepare.main(["--raw-dir", str(tmp_path / "fewer"), "--data-dir",
                             str(tmp_path / "fewer-data")]) == 0
    fails_with(capsys, rbm_train.main, ["--data-dir", str(tmp_path / "fewer-data"), "--run-dir",
                                        str(run_dir), "--epochs", "2", "--resume"],
               "the data have 20 movies but the run")


@pytest.mark.parametrize("module", ["scripts.rbm_prepare", "scripts.rbm_train", "scripts.rbm_recommend"])
def test_help_answers_without_loading_tensorflow(module):
    script = (f"import sys, {module} as tool\n"
              "try:\n    tool.main(['--help'])\nexcept SystemExit:\n    pass\n"
              "print('tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True, timeout=60)
    assert "usage:" in result.stdout and result.stdout.strip().endswith("False")


def test_tensorflow_start_up_noise_is_filtered_and_real_messages_kept():
    kept = [line for line in (
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "I0000 00:00:1796060184.925704    3081 cudart_stub.cc:31] Could not find cuda drivers",
        "E0000 00:00:1796060209.618114    3572 cuda_platform.cc:52] failed call to cuInit: INTERNAL",
        "W0000 00:00:1796060209.618114    3572 op_kernel.cc:1840] OP_REQUIRES failed at save_restore",
        "a Python warning")
        if not _cli._STARTUP_NOISE.match(line)]
    assert kept == ["W0000 00:00:1796060209.618114    3572 op_kernel.cc:1840] OP_REQUIRES failed at save_restore",
                    "a Python warning"]


def test_a_command_prints_no_tensorflow_start_up_lines(prepared, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "scripts.rbm_train", "--data-dir", str(prepared), "--run-dir",
         str(tmp_path / "run"), "--epochs", "1", "--no-export", *SMALL_MODEL],
        capture_output=True, text=True, timeout=300,
        env={key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"})
    assert result.returncode == 0, result.stderr
    assert "cuInit" not in result.stderr and "absl::InitializeLog" not in result.stderr
    assert "I0000" not in result.stderr
