"""Autoencoder training runs (autoencoders_tf.training) and ae-train, end to end on tiny IDX
files made here: run directory, resume, export, errors."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from autoencoders_tf import AutoencoderConfig
from autoencoders_tf import export_autoencoder_run
from autoencoders_tf import load_autoencoder_run
from autoencoders_tf import train_autoencoder
from pipelines import images
from pipelines import prepare_images
from pipelines.errors import RunError
from scripts import ae_train


@pytest.fixture(scope="module")
def idx_dir(tmp_path_factory):
    """A tiny MNIST-like directory: blurry class-dependent blobs, so there is something to learn."""
    directory = tmp_path_factory.mktemp("idx")
    rng = np.random.default_rng(0)
    for prefix, count in (("train", 60), ("t10k", 20)):
        labels = (np.arange(count) % 10).astype(np.uint8)
        pixels = np.zeros((count, 28, 28), np.uint8)
        for image, label in zip(pixels, labels):
            row, column = 4 + 2 * label, 4 + rng.integers(0, 16)
            image[row:row + 6, column:column + 6] = 255
        images.write_idx(directory / f"{prefix}-images-idx3-ubyte.gz", pixels)
        images.write_idx(directory / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return directory


def train(tmp_path, idx_dir, *extra, run="run"):
    return ae_train.main(["--dataset", "mnist", "--raw-dir", str(idx_dir), "--data-dir",
                          str(tmp_path / "data"), "--run-dir", str(tmp_path / run),
                          "--batch-size", "16", *extra])


def test_dense_run_directory_resume_and_export(tmp_path, idx_dir):
    assert train(tmp_path, idx_dir, "--model", "dense", "--epochs", "2") == 0
    run = tmp_path / "run"
    config = json.loads((run / "run_config.json").read_text())
    assert config["model"] == "dense"
    assert config["dataset"] == "mnist" and config["hidden_units"] == [128, 64, 12]
    metrics = json.loads((run / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]
    for record in metrics["epochs"]:
        assert {"seconds", "train_loss", "train_mse", "test_loss", "test_mse", "mean_image_mse"} <= set(record)
        # the network works on [-1, 1]: its loss is four times the pixel-scale MSE
        assert record["test_loss"] == pytest.approx(4 * record["test_mse"], rel=1e-4)
    # mean image baseline by hand: the test images against the mean training image
    train_images = images.load_images(idx_dir, "mnist", "train")[0] / 255.0
    test_images = images.load_images(idx_dir, "mnist", "test")[0] / 255.0
    baseline = np.mean((test_images - train_images.mean(axis=0)) ** 2)
    assert metrics["final"]["baselines"]["mean_image"]["test_mse"] == pytest.approx(baseline, rel=1e-5)
    for name in ("epoch_001.png", "epoch_002.png", "latent_epoch_001.png", "latent_epoch_002.png"):
        assert (run / "images" / name).stat().st_size > 1000
    assert (run / "metrics.png").is_file()
    assert list((run / "tensorboard" / "test").iterdir())
    assert (run / "export" / "dense_autoencoder" / "1" / "saved_model.pb").is_file()

    # a second run into the same directory is refused; --resume continues it
    with pytest.raises(SystemExit) as raised:
        train(tmp_path, idx_dir, "--model", "dense", "--epochs", "3")
    assert raised.value.code == 2
    assert train(tmp_path, idx_dir, "--model", "dense", "--epochs", "3", "--resume") == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2, 3]
    assert metrics["final"]["export"].endswith("dense_autoencoder/2")

    # without --epochs a resumed run continues to its own count: it has all of them already
    with pytest.raises(SystemExit):
        train(tmp_path, idx_dir, "--model", "dense", "--resume")

    exported = export_autoencoder_run(run)
    assert exported == run / "export" / "dense_autoencoder" / "3"
    assert json.loads((run / "metrics.json").read_text())["final"]["export"] == str(exported)
    elsewhere = export_autoencoder_run(run, export_base=tmp_path / "serving")
    assert elsewhere == tmp_path / "serving" / "dense_autoencoder" / "1"

    # the export made by training and the one rebuilt from the checkpoint serve the same answers,
    # read back in a fresh process
    script = textwrap.dedent("""
        import sys
        import numpy as np
        import tensorflow as tf
        images = tf.constant(np.load(sys.argv[1]))
        outputs = [tf.saved_model.load(path).signatures["reconstruct"](images=images)["reconstruction"]
                   for path in sys.argv[2:]]
        assert outputs[0].shape == (20, 28, 28, 1)
        print(max(float(tf.reduce_max(tf.abs(o - outputs[0]))) for o in outputs))
    """)
    np.save(tmp_path / "images.npy", test_images[..., np.newaxis].astype(np.float32))
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "images.npy"),
                             str(run / "export" / "dense_autoencoder" / "2"), str(exported), str(elsewhere)],
                            check=True, capture_output=True, text=True)
    assert float(result.stdout.strip().splitlines()[-1]) < 1e-6


def test_vae_reports_elbo_terms_and_importance_weighted_bound(tmp_path, idx_dir):
    assert train(tmp_path, idx_dir, "--model", "vae", "--epochs", "1", "--iw-samples", "5",
                 "--latent-dim", "2", "--no-export") == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    record = metrics["epochs"][0]
    assert record["test_neg_elbo"] == pytest.approx(
        record["test_reconstruction_loss"] + record["test_kl_loss"], rel=1e-4)
    assert "binarised" in record["pixels"]
    final = metrics["final"]
    assert final["test_iw_nll_bound_k5"] <= final["test_neg_elbo_k5"]
    assert final["baselines"]["mean_image"]["test_mse"] == record["mean_image_mse"]
    assert (tmp_path / "run" / "images" / "samples_epoch_001.png").is_file()
    assert (tmp_path / "run" / "images" / "latent_epoch_001.png").is_file()  # a 2-D latent space
    assert not (tmp_path / "run" / "export").exists()


def test_continuous_vae_is_labelled_as_such(tmp_path, idx_dir, capsys):
    assert train(tmp_path, idx_dir, "--model", "vae", "--continuous", "--epochs", "1",
                 "--iw-samples", "2", "--vae-hidden", "16", "--no-export") == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert "NOT a likelihood" in metrics["epochs"][0]["pixels"]
    assert "NOT a likelihood" in metrics["final"]["pixels"]
    assert "NOT a likelihood" in capsys.readouterr().out


def test_denoiser_reports_the_noisy_input_baseline(tmp_path, idx_dir):
    assert train(tmp_path, idx_dir, "--model", "denoising", "--architecture", "dense",
                 "--code-size", "8", "--noise", "masking", "--noise-level", "0.4",
                 "--epochs", "1", "--no-export") == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    record = metrics["epochs"][0]
    assert metrics["final"]["baselines"]["noisy_input"]["test_mse"] == record["test_noisy_mse"]
    # masking 40% of the pixels: the noisy input misses about 40% of the squared intensity
    test_images = images.load_images(idx_dir, "mnist", "test")[0] / 255.0
    assert record["test_noisy_mse"] == pytest.approx(0.4 * np.mean(test_images ** 2), rel=0.1)
    assert (tmp_path / "run" / "images" / "epoch_001.png").is_file()
    # the noise generator's state is checkpointed, advanced by the noise drawn so far
    reader = tf.train.load_checkpoint(str(tmp_path / "run" / "checkpoints"))
    assert reader.get_tensor("seed_state/.ATTRIBUTES/VARIABLE_VALUE")[1] > 0


@pytest.mark.parametrize("arguments, message", [
    (["--model", "dense", "--raw-dir", "{tmp}/absent"], "absent: no such directory"),
    (["--model", "dense"], "no prepared mnist records"),
    (["--model", "dense", "--raw-dir", "{tmp}/broken"], "truncated"),
    (["--model", "denoising", "--noise", "masking", "--noise-level", "1.5", "--raw-dir", "{idx}"],
     "noise level must be positive"),
    (["--model", "vae", "--latent-dim", "0", "--raw-dir", "{idx}"], "must be at least 1"),
])
def test_user_errors_are_one_line_and_leave_nothing_behind(tmp_path, idx_dir, capsys, arguments, message):
    (tmp_path / "broken").mkdir()
    for path in idx_dir.iterdir():
        (tmp_path / "broken" / path.name).write_bytes(path.read_bytes())
    # an uncompressed file under the .gz name (read by content), cut short
    header = b"\x00\x00\x08\x03" + np.array([60, 28, 28], ">u4").tobytes()
    (tmp_path / "broken" / "train-images-idx3-ubyte.gz").write_bytes(header + bytes(1000))
    arguments = [a.format(tmp=tmp_path, idx=idx_dir) for a in arguments]
    with pytest.raises(SystemExit) as raised:
        ae_train.main(["--dataset", "mnist", "--data-dir", str(tmp_path / "data"),
                       "--run-dir", str(tmp_path / "run"), *arguments])
    assert raised.value.code == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1 and "Traceback" not in error
    assert not (tmp_path / "run").exists()


def test_unknown_model_or_dataset_is_refused_by_the_parser(capsys):
    for arguments in (["--model", "gan", "--dataset", "mnist"], ["--model", "vae", "--dataset", "cifar10"]):
        with pytest.raises(SystemExit) as raised:
            ae_train.main([*arguments, "--data-dir", "d", "--run-dir", "r"])
        assert raised.value.code == 2
        assert "invalid choice" in capsys.readouterr().err


def test_resume_with_another_model_is_refused(tmp_path, idx_dir, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run_config.json").write_text(json.dumps({"model": "vae", "dataset": "mnist"}))
    with pytest.raises(SystemExit):
        ae_train.main(["--model", "dense", "--dataset", "mnist", "--data-dir", str(tmp_path / "data"),
                       "--raw-dir", str(idx_dir), "--run-dir", str(tmp_path / "run"), "--resume"])
    assert "holds a vae run on mnist" in capsys.readouterr().err


# -- the library, without the script --------------------------------------------------------------

def test_library_run_trains_resumes_to_its_stored_epoch_count_and_reloads(tmp_path, idx_dir):
    data = prepare_images("mnist", tmp_path / "data", raw_dir=idx_dir)
    config = AutoencoderConfig(model="dense", epochs=1, batch_size=16, hidden_units=(16,), code_size=4)
    result = train_autoencoder(config, data, tmp_path / "run", export=False)
    assert [e["epoch"] for e in result["epochs"]] == [1]
    assert "export" not in result["final"] and not (tmp_path / "run" / "export").exists()
    # a run started for 2 epochs and stopped after 1 continues to 2 when resumed without `epochs`
    stored = json.loads((tmp_path / "run" / "run_config.json").read_text())
    (tmp_path / "run" / "run_config.json").write_text(json.dumps({**stored, "epochs": 2}))
    result = train_autoencoder(None, data, tmp_path / "run", resume=True, export=False)
    assert [e["epoch"] for e in result["epochs"]] == [1, 2]
    with pytest.raises(RunError, match="already has 2 epochs"):
        train_autoencoder(None, data, tmp_path / "run", resume=True)
    with pytest.raises(RunError, match="holds a dense run on mnist"):
        train_autoencoder(AutoencoderConfig(model="vae"), data, tmp_path / "run", resume=True)

    # the reloaded model evaluates to the last epoch's test numbers and exports in one line
    model = load_autoencoder_run(tmp_path / "run")
    evaluated = model.evaluate(data.dataset("test", 500), return_dict=True, verbose=0)
    assert evaluated["mse"] == pytest.approx(result["final"]["test_mse"], rel=1e-5)
    model.export(tmp_path / "exported")
    served = tf.saved_model.load(str(tmp_path / "exported"))
    test_images = next(iter(data.dataset("test", 4)))[0]
    np.testing.assert_allclose(served.signatures["reconstruct"](images=test_images)["reconstruction"],
                               model(test_images), atol=1e-6)


@pytest.mark.parametrize("settings, message", [
    ({"model": "gan"}, "model must be one of dense, conv, denoising, vae"),
    ({"batch_size": 0}, "batch_size must be at least 1"),
    ({"hidden_units": (8, 0)}, "hidden_units must be at least 1"),
    ({"learning_rate": float("nan")}, "learning_rate must be positive"),
    ({"noise": "salt"}, "noise must be one of gaussian, masking"),
])
def test_config_errors_name_the_argument(settings, message):
    with pytest.raises(ValueError, match=message):
        AutoencoderConfig(**settings)


def test_config_round_trips_through_run_config_json():
    config = AutoencoderConfig(model="denoising", hidden_units=(32, 16), noise="masking")
    stored = json.loads(json.dumps({"model": "denoising", "dataset": "mnist",
                                    **config.__dict__}))
    assert AutoencoderConfig.from_dict(stored) == config


def test_help_and_configs_load_no_tensorflow():
    check = ("import sys, autoencoders_tf, autoencoders_tf.config, scripts.ae_train; "
             "autoencoders_tf.AutoencoderConfig(); "
             "print(sorted({'tensorflow', 'keras'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", check], check=True, capture_output=True, text=True)
    assert result.stdout.strip() == "[]"
    result = subprocess.run([sys.executable, "-m", "scripts.ae_train", "--help"], check=True,
                            capture_output=True, text=True)
    assert "--iw-samples" in result.stdout
