"""scripts/export.py (tfm-export), every family's export of a training run, and the export
helpers of pipelines/runs.py.

Every model is trained for an epoch on tiny data by its family's library (`train_recommender`,
`train_autoencoder`, `train_dbn`) without an export, exported by tfm-export through the table of
families, then checked the way TensorFlow Serving will use it: loaded in a fresh Python process
(outputs bit-identical to the model restored in memory, bad inputs refused with the model's own
message), and run by TensorFlow's own `saved_model_cli`, which like the model server loads the
graph into a session.
"""

import importlib
import json
import os
import pathlib
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import types_pb2

from autoencoders_tf import config as autoencoder_config
from autoencoders_tf import rec_config
from autoencoders_tf.serving import AutoencoderServing
from autoencoders_tf.training import build_model
from autoencoders_tf.training import load_autoencoder_run
from autoencoders_tf.training import train_autoencoder
from pipelines import runs
from pipelines.errors import UserError
from pipelines.image_data import prepare_images
from pipelines.images import write_idx
from pipelines.movielens_data import prepare_movielens
from pipelines.signatures import read_signatures
from rbm_tf.classifier import ClassifierServing
from rbm_tf.config import RecommenderConfig
from rbm_tf.dbn_config import DBNConfig
from rbm_tf.dbn_training import DBNRun
from rbm_tf.dbn_training import load_dbn_config
from rbm_tf.dbn_training import train_dbn
from rbm_tf.recommender import Recommender
from rbm_tf.recommender_training import train_recommender
from scripts import export
from tests.conftest import planted_ml100k_ratings
from tests.conftest import run_script
from tests.conftest import write_ml100k

NUM_MOVIES = 6
CODE_SIZE = 2
# quiet TF's C++ start-up logging in the subprocesses, which otherwise swamps failure output
QUIET_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}


def spec(dtype, shape):
    return (dtype, shape)


IMAGES = spec("float32", [None, None, None, None])
IMAGES_OUT = spec("float32", [None, 28, 28, 1])


def autoencoder_signatures(code_size, vae=False):
    code = {"z_log_var": spec("float32", [None, code_size]),
            "z_mean": spec("float32", [None, code_size])} if vae else {"code": spec("float32", [None, code_size])}
    signatures = {
        "serving_default": {"inputs": {"images": IMAGES}, "outputs": {"reconstruction": IMAGES_OUT}},
        "reconstruct": {"inputs": {"images": IMAGES}, "outputs": {"reconstruction": IMAGES_OUT}},
        "encode": {"inputs": {"images": IMAGES}, "outputs": code},
        "decode": {"inputs": {"code": spec("float32", [None, code_size])}, "outputs": {"images": IMAGES_OUT}},
    }
    if vae:
        signatures["sample"] = {"inputs": {"num_samples": spec("int32", []), "seed": spec("int32", [])},
                                "outputs": {"images": IMAGES_OUT}}
    return signatures


# the contract every export is held to: model -> signature -> inputs/outputs -> (dtype, shape)
EXPECTED_SIGNATURES = {
    "rbm": {
        "serving_default": {"inputs": {"ratings": spec("float32", [None, NUM_MOVIES])},
                            "outputs": {"like_probability": spec("float32", [None, NUM_MOVIES])}},
        "recommend": {"inputs": {"ratings": spec("float32", [None, NUM_MOVIES]), "k": spec("int32", [])},
                      "outputs": {"movie_indices": spec("int32", [None, None]),
                                  "movie_ids": spec("int64", [None, None]),
                                  "num_recommended": spec("int32", [None]),
                                  "scores": spec("float32", [None, None])}},
    },
    "dense_autoencoder": autoencoder_signatures(CODE_SIZE),
    "conv_autoencoder": autoencoder_signatures(32),
    "denoising_autoencoder": autoencoder_signatures(CODE_SIZE),
    "vae": autoencoder_signatures(CODE_SIZE, vae=True),
    "dbn": {"serving_default": {"inputs": {"images": IMAGES},
                                "outputs": {"class": spec("int64", [None]),
                                            "probabilities": spec("float32", [None, 10])}}},
}
# saved_model_cli starts a whole TensorFlow per call: run one signature per export, and the
# recommender's second, whose graph differs
CLI_RUNS = {"rbm": ["serving_default", "recommend"], "dense_autoencoder": ["serving_default"],
            "conv_autoencoder": ["serving_default"], "denoising_autoencoder": ["encode"],
            "vae": ["sample"], "dbn": ["serving_default"]}
RATING_VALUES = re.escape("ratings must be -1 (missing), 0 (dislike) or 1 (like)")
NOT_FLOAT = "expected to be a float tensor but is a int32 tensor"
IMAGE_SHAPE_MESSAGE = re.escape("images must have shape [batch, 28, 28, 1]")
IMAGE_RANGE_MESSAGE = re.escape("images must be float32 pixel intensities in [0, 1]")
RATINGS_SHAPE = re.escape(f"not compatible with expected shape [?,{NUM_MOVIES}]")


def rbm_bad_calls():
    unrated = np.full([1, NUM_MOVIES], -1.0, np.float32)
    bad_calls = {}
    for signature, extra in (("serving_default", {}), ("recommend", {"k": np.array(2, np.int32)})):
        for kind, ratings, message in (
                ("rating-3", np.where(np.arange(NUM_MOVIES) == 2, 3.0, unrated), RATING_VALUES),
                ("rating-half", np.full_like(unrated, 0.5), RATING_VALUES),
                ("int-ratings", unrated.astype(np.int32), NOT_FLOAT),
                ("too-wide", np.full([1, NUM_MOVIES + 1], -1.0), RATINGS_SHAPE),
                ("too-narrow", np.full([2, NUM_MOVIES - 1], -1.0), RATINGS_SHAPE),
                ("rank-1", np.full([NUM_MOVIES], -1.0), RATINGS_SHAPE)):
            if ratings.dtype == np.float64:
                ratings = ratings.astype(np.float32)
            bad_calls[f"{signature}-{kind}"] = (signature, {"ratings": ratings, **extra}, message)
    bad_calls["recommend-k-0"] = ("recommend", {"ratings": unrated, "k": np.array(0, np.int32)},
                                  "k must be at least 1")
    return bad_calls


def image_bad_calls(signature):
    return {
        f"{signature}-above-1": (signature, {"images": np.full([1, 28, 28, 1], 1.5, np.float32)},
                                 IMAGE_RANGE_MESSAGE),
        f"{signature}-negative": (signature, {"images": np.full([1, 28, 28, 1], -0.1, np.float32)},
                                  IMAGE_RANGE_MESSAGE),
        f"{signature}-int-images": (signature, {"images": np.zeros([1, 28, 28, 1], np.int32)},
                                    NOT_FLOAT),
        f"{signature}-14x14": (signature, {"images": np.zeros([1, 14, 14, 1], np.float32)},
                               IMAGE_SHAPE_MESSAGE),
        f"{signature}-flat-784": (signature, {"images": np.zeros([1, 784], np.float32)},
                                  IMAGE_SHAPE_MESSAGE),
    }


def autoencoder_bad_calls(export_name):
    code_size = EXPECTED_SIGNATURES[export_name]["decode"]["inputs"]["code"][1][1]
    bad_calls = {**image_bad_calls("serving_default"), **image_bad_calls("encode")}
    bad_calls["decode-wrong-width"] = ("decode", {"code": np.zeros([1, code_size + 1], np.float32)},
                                       re.escape(f"[?,{code_size}]"))
    bad_calls["decode-nan"] = ("decode", {"code": np.full([1, code_size], np.nan, np.float32)},
                               "code must hold finite numbers")
    if "sample" in EXPECTED_SIGNATURES[export_name]:
        bad_calls["sample-0"] = ("sample", {"num_samples": np.array(0, np.int32),
                                            "seed": np.array(1, np.int32)},
                                 "num_samples must be at least 1")
    return bad_calls


# every export's refused calls, {model: {label: (signature, inputs, regex the error must match)}};
# plain numpy, so the tests are parametrized from it without TensorFlow work
BAD_CALLS = {"rbm": rbm_bad_calls(), "dbn": image_bad_calls("serving_default"),
             **{name: autoencoder_bad_calls(name) for name in
                ("dense_autoencoder", "conv_autoencoder", "denoising_autoencoder", "vae")}}


class ExportCase:
    """One model's export, its calls with the in-memory model's outputs, and refused calls."""

    def __init__(self, name, export_dir, calls, bad_calls):
        self.name = name
        self.export_dir = pathlib.Path(export_dir)
        self.calls = calls  # {signature: (inputs {name: np.ndarray}, expected {name: np.ndarray})}
        # {label: (signature, inputs, regex the error must match)}
        self.bad_calls = bad_calls
        self.movies = None  # the recommender's [(movie_id, title)]


def numpy_outputs(function, inputs):
    return {name: t.numpy() for name, t in function(**inputs).items()}


def assert_trained(restored, fresh):
    """The restored weights are not the initial ones, so that a restore which silently restored
    nothing (and would export an untrained model) is caught."""
    assert len(restored) == len(fresh)
    assert any(not np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(restored, fresh))


def finish_case(name, run_dir, functions, calls):
    """Export `run_dir` through tfm-export and pair each call with the in-memory outputs."""
    export_dir = export.export_run(run_dir)
    assert export_dir == run_dir / "export" / name / "1"
    expected = {signature: (inputs, numpy_outputs(functions[signature], inputs))
                for signature, inputs in calls.items()}
    return ExportCase(name, export_dir, expected, BAD_CALLS[name])


def rbm_case(root):
    """A recommender run of one epoch on a planted six-movie MovieLens, exported by tfm-export."""
    write_ml100k(root / "raw" / "ml-100k", planted_ml100k_ratings(num_users=30, num_movies=NUM_MOVIES))
    data = prepare_movielens("ml-100k", root / "raw", root / "movielens", split="u1",
                             validation_per_user=1)
    config = RecommenderConfig(hidden=4, epochs=1, batch_size=4, seed=3)
    run_dir = root / "rbm"
    train_recommender(data, run_dir, config, export=False)

    model = Recommender.restore(run_dir)
    assert_trained(model.rbm.variables, Recommender(NUM_MOVIES, config).rbm.variables)
    module = model.serving_module()
    ratings = np.array([[1, -1, 0, -1, -1, 1], [-1, -1, -1, -1, -1, -1], [0, 0, 1, 1, -1, -1]],
                       np.float32)
    k = np.array(3, np.int32)
    calls = {"serving_default": {"ratings": ratings}, "recommend": {"ratings": ratings, "k": k}}
    functions = {"serving_default": module.like_probability, "recommend": module.recommend}
    case = finish_case("rbm", run_dir, functions, calls)
    case.movies = list(zip(data.movie_ids, data.movie_titles))
    return case


TEST_IMAGES = tf.random.stateless_uniform([3, 28, 28, 1], seed=[5, 6]).numpy()


def write_tiny_mnist(directory, num_train=40, num_test=20, seed=0):
    """The four IDX files of a tiny random 'MNIST' with labels 0..9."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for prefix, count in (("train", num_train), ("t10k", num_test)):
        write_idx(directory / f"{prefix}-images-idx3-ubyte.gz",
                  rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8))
        write_idx(directory / f"{prefix}-labels-idx1-ubyte.gz", (np.arange(count) % 10).astype(np.uint8))
    return directory


def autoencoder_case(root, images, model, export_name, **settings):
    """An autoencoder run of one epoch on the tiny images, exported by tfm-export."""
    config = autoencoder_config.AutoencoderConfig(model=model, epochs=1, batch_size=20, **settings)
    run_dir = root / model
    train_autoencoder(config, images, run_dir, export=False)

    trained = load_autoencoder_run(run_dir)
    fresh = build_model(config)
    fresh(TEST_IMAGES)
    assert_trained(trained.weights, fresh.weights)
    module = AutoencoderServing(trained)
    code_size = EXPECTED_SIGNATURES[export_name]["decode"]["inputs"]["code"][1][1]
    codes = tf.random.stateless_normal([3, code_size], seed=[8, 9]).numpy()
    calls = {"serving_default": {"images": TEST_IMAGES}, "reconstruct": {"images": TEST_IMAGES},
             "encode": {"images": TEST_IMAGES}, "decode": {"code": codes}}
    functions = {"serving_default": module.reconstruct, "reconstruct": module.reconstruct,
                 "encode": module.encode, "decode": module.decode}
    if model == "vae":
        calls["sample"] = {"num_samples": np.array(4, np.int32), "seed": np.array(3, np.int32)}
        functions["sample"] = module.sample
    return finish_case(export_name, run_dir, functions, calls)


def dbn_case(root, images):
    """A DBN run (no pre-training, one fine-tuning epoch) exported by tfm-export.

    The in-memory classifier is restored as a resumed run restores everything it trained, not
    the way the export restores only the classifier.
    """
    config = DBNConfig(hidden=(8,), pretrain_epochs=0, finetune_epochs=1, batch_size=20, gibbs_steps=1)
    run_dir = root / "dbn"
    train_dbn(config, images, run_dir, export=False)

    models = DBNRun(load_dbn_config(run_dir))
    fresh = [variable.numpy() for variable in models.classifiers["dbn"].weights]
    tf.train.Checkpoint(**models.trackables()).restore(
        runs.RunDirectory(run_dir).checkpoint_to_export()).assert_existing_objects_matched()
    assert_trained(models.classifiers["dbn"].weights, fresh)
    module = ClassifierServing(models.classifiers["dbn"])
    calls = {"serving_default": {"images": TEST_IMAGES}}
    return finish_case("dbn", run_dir, {"serving_default": module.classify}, calls)


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    images = prepare_images("mnist", root / "images", write_tiny_mnist(root / "raw" / "mnist"))
    built = [
        rbm_case(root),
        autoencoder_case(root, images, "dense", "dense_autoencoder", hidden_units=(8,),
                         code_size=CODE_SIZE),
        autoencoder_case(root, images, "conv", "conv_autoencoder"),
        autoencoder_case(root, images, "denoising", "denoising_autoencoder", architecture="dense",
                         hidden_units=(8,), code_size=CODE_SIZE),
        autoencoder_case(root, images, "vae", "vae", vae_hidden=8, latent_dim=CODE_SIZE,
                         iw_samples=2),
        dbn_case(root, images),
    ]
    return {case.name: case for case in built}


# saved_model_cli's own `show` and `run`, called in one new interpreter: as the command would run
# them (flags parsed, a session per run) without starting a whole TensorFlow per call
CLI_PROGRAM = textwrap.dedent("""
    import contextlib, io, json, sys, traceback
    from absl import flags
    from tensorflow.python.tools import saved_model_cli
    plan, results_path = json.loads(sys.argv[1]), sys.argv[2]
    results = []
    for command, *arguments in plan:
        flags.FLAGS.unparse_flags()
        flags.FLAGS(["saved_model_cli", *arguments])
        stdout, stderr, returncode = io.StringIO(), io.StringIO(), 0
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                getattr(saved_model_cli, command)()
            except Exception:  # the command would exit with its traceback on stderr
                traceback.print_exc()
                returncode = 1
        results.append([returncode, stdout.getvalue(), stderr.getvalue()])
    with open(results_path, "w") as results_file:
        json.dump(results, results_file)
""")


@pytest.fixture(scope="module")
def cli_results(cases, tmp_path_factory):
    """`saved_model_cli show --all` on every export and `run` on CLI_RUNS, in one fresh process.

    Returns {(model, "show" or signature): (returncode, stdout, stderr, output directory)}.
    """
    root = tmp_path_factory.mktemp("cli")
    keys, plan = [], []
    for case in cases.values():
        keys.append((case.name, "show"))
        plan.append(["show", f"--dir={case.export_dir}", "--all"])
        for signature in CLI_RUNS[case.name]:
            inputs = case.calls[signature][0]
            folder = root / case.name / signature
            folder.mkdir(parents=True)
            for name, value in inputs.items():
                np.save(folder / f"{name}.npy", value)
            keys.append((case.name, signature))
            plan.append(["run", f"--dir={case.export_dir}", "--tag_set=serve",
                         f"--signature_def={signature}", f"--outdir={folder / 'out'}",
                         "--inputs=" + ";".join(f"{name}={folder / name}.npy" for name in inputs)])
    # and one refused input, run as the server would run it: in a session
    bad_ratings = root / "bad_ratings.npy"
    np.save(bad_ratings, np.full([1, NUM_MOVIES], 2.0, np.float32))
    keys.append(("rbm", "bad-ratings"))
    plan.append(["run", f"--dir={cases['rbm'].export_dir}", "--tag_set=serve",
                 "--signature_def=serving_default", f"--inputs=ratings={bad_ratings}"])
    results_path = root / "results.json"
    completed = subprocess.run([sys.executable, "-c", CLI_PROGRAM, json.dumps(plan), str(results_path)],
                               cwd=root, capture_output=True, text=True, env=QUIET_ENV, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return {key: (*result, root / key[0] / key[1] / "out")
            for key, result in zip(keys, json.loads(results_path.read_text()))}


# -- pipelines.runs.export_versioned ---------------------------------------------------------------------

def write_marker(path, text):
    pathlib.Path(path).mkdir()
    (pathlib.Path(path) / "saved_model.pb").write_text(text)


def test_export_versioned_counts_up_and_never_overwrites(tmp_path):
    first = runs.export_versioned(tmp_path, "m", lambda p: write_marker(p, "one"))
    second = runs.export_versioned(tmp_path, "m", lambda p: write_marker(p, "two"))
    assert (first.name, second.name) == ("1", "2")
    assert (first / "saved_model.pb").read_text() == "one"
    (tmp_path / "m" / "9").mkdir()
    (tmp_path / "m" / "9" / "keep").write_text("nine")
    assert runs.export_versioned(tmp_path, "m", lambda p: write_marker(p, "x")).name == "10"
    assert (tmp_path / "m" / "9" / "keep").read_text() == "nine"
    # nothing but versions is left behind: TF Serving would try to load any all-digit directory
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["1", "10", "2", "9"]


def test_export_versioned_leaves_nothing_when_the_writer_fails(tmp_path):
    def fail(path):
        write_marker(path, "half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        runs.export_versioned(tmp_path, "m", fail)
    assert list((tmp_path / "m").iterdir()) == []


def test_export_versioned_takes_the_next_number_when_another_export_wins_the_race(tmp_path, monkeypatch):
    real = runs.existing_versions
    calls = []

    def stale_then_real(model_base):
        calls.append(1)
        if len(calls) == 1:
            # another exporter renames its version 1 in between our look and our rename
            write_marker(pathlib.Path(model_base) / "1", "theirs")
            return []
        return real(model_base)

    monkeypatch.setattr(runs, "existing_versions", stale_then_real)
    ours = runs.export_versioned(tmp_path, "m", lambda p: write_marker(p, "ours"))
    assert ours.name == "2" and (ours / "saved_model.pb").read_text() == "ours"
    assert (tmp_path / "m" / "1" / "saved_model.pb").read_text() == "theirs"


def test_find_exports_accepts_version_model_base_and_run_directories(cases):
    version = cases["rbm"].export_dir
    model_dir, base, run_dir = version.parent, version.parent.parent, version.parent.parent.parent
    for path in (version, model_dir, base, run_dir):
        assert runs.find_exports(path) == [version]
    with pytest.raises(UserError, match="no SavedModel"):
        runs.find_exports(run_dir / "checkpoints")


# -- every export: signatures, fresh process, saved_model_cli -----------------------------------------

@pytest.mark.parametrize("model", sorted(EXPECTED_SIGNATURES))
def test_export_has_named_signatures_with_the_documented_inputs_and_outputs(cases, model):
    case = cases[model]
    assert (case.export_dir / "saved_model.pb").is_file()
    assert (case.export_dir / "variables" / "variables.index").is_file()
    assert read_signatures(case.export_dir) == EXPECTED_SIGNATURES[model]


def test_recommender_export_ships_its_movie_table(cases):
    table = cases["rbm"].export_dir / "assets" / "movies.tsv"
    lines = table.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "index\tmovie_id\ttitle"
    assert lines[1:] == [f"{i}\t{m}\t{t}" for i, (m, t) in enumerate(cases["rbm"].movies)]


@pytest.fixture(scope="module")
def fresh_process(cases, tmp_path_factory):
    """Every export loaded by tf.saved_model.load in one new interpreter and called there.

    Nothing from this process (variables, traced functions, custom objects) can make a
    comparison pass. Returns {(model, signature or bad-call label): {output: array} or
    {"error": "ErrorType: message"}}.
    """
    root = tmp_path_factory.mktemp("fresh")
    plan = []
    for case in cases.values():
        calls = {signature: (signature, inputs) for signature, (inputs, _) in case.calls.items()}
        calls.update({label: bad[:2] for label, bad in case.bad_calls.items()})
        for key, (signature, inputs) in calls.items():
            np.savez(root / f"{case.name}-{key}-in.npz", **inputs)
            plan.append([str(case.export_dir), signature, str(root / f"{case.name}-{key}-in.npz"),
                         str(root / f"{case.name}-{key}-out.npz")])
    program = textwrap.dedent("""
        import json, sys
        import numpy as np
        import tensorflow as tf
        loaded = {}
        for export_dir, signature, inputs_path, outputs_path in json.loads(sys.argv[1]):
            if export_dir not in loaded:
                loaded[export_dir] = tf.saved_model.load(export_dir)
            inputs = {name: tf.constant(value) for name, value in np.load(inputs_path).items()}
            try:
                outputs = loaded[export_dir].signatures[signature](**inputs)
            except Exception as error:  # recorded: the test decides which errors are right
                np.savez(outputs_path, error=np.array(type(error).__name__ + ": " + str(error)))
            else:
                np.savez(outputs_path, **{name: t.numpy() for name, t in outputs.items()})
    """)
    completed = subprocess.run([sys.executable, "-c", program, json.dumps(plan)], cwd=root,
                               capture_output=True, text=True, env=QUIET_ENV, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return {(case.name, key): dict(np.load(root / f"{case.name}-{key}-out.npz"))
            for case in cases.values() for key in [*case.calls, *case.bad_calls]}


def every_signature():
    return [pytest.param(model, signature, id=f"{model}-{signature}")
            for model, signatures in EXPECTED_SIGNATURES.items() for signature in signatures]


@pytest.mark.parametrize("model,signature", every_signature())
def test_export_matches_the_in_memory_model_in_a_fresh_process(cases, fresh_process, model, signature):
    served = fresh_process[(model, signature)]
    assert "error" not in served, str(served.get("error"))[:2000]
    expected = cases[model].calls[signature][1]
    assert sorted(served) == sorted(expected)
    for name, value in expected.items():
        assert served[name].dtype == value.dtype, name
        # every signature here is deterministic (no sampling without a given seed)
        np.testing.assert_array_equal(served[name], value, err_msg=f"{model} {signature} {name}")


@pytest.mark.parametrize("model,label", [
    pytest.param(model, label, id=f"{model}-{label}") for model, bad_calls in BAD_CALLS.items()
    for label in bad_calls])
def test_bad_input_is_refused_with_a_clear_message(cases, fresh_process, model, label):
    _, _, message_pattern = cases[model].bad_calls[label]
    result = fresh_process[(model, label)]
    assert "error" in result, f"{label} was answered: {sorted(result)}"
    message = str(result["error"])
    assert message.startswith("InvalidArgumentError"), message[:300]
    assert re.search(message_pattern, message), message[:600]


@pytest.mark.parametrize("model", sorted(EXPECTED_SIGNATURES))
def test_saved_model_cli_show_lists_every_signature(cli_results, model):
    returncode, stdout, stderr, _ = cli_results[(model, "show")]
    assert returncode == 0, stderr[-2000:]
    assert "MetaGraphDef with tag-set: 'serve'" in stdout
    for signature, tensors in EXPECTED_SIGNATURES[model].items():
        block = stdout.split(f"signature_def['{signature}']:")[1].split("signature_def[")[0]
        assert "Method name is: tensorflow/serving/predict" in block
        for side, names in tensors.items():
            for name, (dtype, shape) in names.items():
                entry = block.split(f"{side}['{name}'] tensor_info:")[1]
                # saved_model_cli's own notation: the DataType enum name, dims in parentheses
                dtype_enum = types_pb2.DataType.Name(tf.as_dtype(dtype).as_datatype_enum)
                dims = ", ".join(str(-1 if d is None else d) for d in shape)
                assert entry.split("dtype: ")[1].split("\n")[0] == dtype_enum
                assert entry.split("shape: ")[1].split("\n")[0] == f"({dims})"


@pytest.mark.parametrize("model,signature", [
    pytest.param(m, s, id=f"{m}-{s}") for m, signatures in CLI_RUNS.items() for s in signatures])
def test_saved_model_cli_run_gives_the_in_memory_outputs(cases, cli_results, model, signature):
    returncode, stdout, stderr, outdir = cli_results[(model, signature)]
    assert returncode == 0, stderr[-2000:]
    case = cases[model]
    for name, expected in case.calls[signature][1].items():
        assert f"Output {name} is saved to" in stdout
        served = np.load(outdir / f"{name}.npy")
        assert served.dtype == expected.dtype
        np.testing.assert_array_equal(served, expected, err_msg=f"{model} {signature} {name}")


# -- inputs are validated inside the graph ---------------------------------------------------------

def test_saved_model_cli_run_reports_the_models_own_error_for_bad_ratings(cli_results):
    returncode, _, stderr, _ = cli_results[("rbm", "bad-ratings")]
    assert returncode != 0
    assert "ratings must be -1 (missing), 0 (dislike) or 1 (like)" in stderr


# -- the command line ------------------------------------------------------------------------------

def test_list_shows_each_signature_with_input_and_output_dtypes_and_shapes(cases, capsys):
    code, out, err = run_script(export.main, ["--list", cases["rbm"].export_dir.parent], capsys)
    assert code == 0, err
    lines = [line.split() for line in out.splitlines()]
    assert lines[0] == [str(cases["rbm"].export_dir)]
    assert ["assets:", "movies.tsv"] in lines
    recommend = lines.index(["signature", "'recommend'"])
    default = lines.index(["signature", "'serving_default'"])
    assert lines[recommend + 1:default] == [
        ["inputs:"], ["k", "int32", "[]"], ["ratings", "float32", "[-1,", f"{NUM_MOVIES}]"],
        ["outputs:"], ["movie_ids", "int64", "[-1,", "-1]"], ["movie_indices", "int32", "[-1,", "-1]"],
        ["num_recommended", "int32", "[-1]"], ["scores", "float32", "[-1,", "-1]"]]
    assert lines[default + 1:] == [
        ["inputs:"], ["ratings", "float32", "[-1,", f"{NUM_MOVIES}]"],
        ["outputs:"], ["like_probability", "float32", "[-1,", f"{NUM_MOVIES}]"]]


def test_the_table_exports_every_model_the_families_train():
    assert set(export.EXPORTERS) == {"rbm", "dbn", "rating-rbm", *autoencoder_config.MODELS, *rec_config.CONFIGS}
    for model, (module, function) in export.EXPORTERS.items():
        assert callable(getattr(importlib.import_module(module), function)), model


def exported_in_metrics(run_dir):
    return json.loads((run_dir / "metrics.json").read_text())["final"]["export"]


@pytest.mark.parametrize("model", sorted(EXPECTED_SIGNATURES))
def test_the_export_is_noted_in_the_runs_metrics(cases, model):
    export_dir = cases[model].export_dir
    assert exported_in_metrics(export_dir.parents[2]) == str(export_dir)


def test_reexport_from_the_checkpoint_writes_the_next_version(cases, tmp_path, capsys):
    run_dir = cases["rbm"].export_dir.parents[2]
    code, out, err = run_script(export.main, [run_dir, "--export-base", tmp_path / "served"], capsys)
    assert code == 0, err
    assert out.splitlines()[0] == f"exported {tmp_path / 'served' / 'rbm' / '1'}"
    code, out, _ = run_script(export.main, [run_dir, "--export-base", tmp_path / "served"], capsys)
    assert out.splitlines()[0].endswith(str(pathlib.Path("served") / "rbm" / "2"))
    assert read_signatures(tmp_path / "served" / "rbm" / "2") == EXPECTED_SIGNATURES["rbm"]
    assert exported_in_metrics(run_dir) == str(tmp_path / "served" / "rbm" / "2")


def test_user_errors_are_one_line_with_exit_code_2(cases, tmp_path, capsys):
    run_dir = cases["rbm"].export_dir.parents[2]

    def run_with_config(name, config):
        (tmp_path / name).mkdir()
        (tmp_path / name / "run_config.json").write_text(json.dumps(config))
        return tmp_path / name

    known = "rbm, dbn, rating-rbm, dense, conv, denoising, vae, autorec, mult-vae, ease"
    expected = {
        (tmp_path / "missing",): "does not exist",
        (tmp_path,): "is not a run directory",
        (run_with_config("fresh", {"model": "rbm"}),): "holds no checkpoint",
        (run_with_config("unknown", {"model": "x"}),): f"does not know model 'x' (it exports {known})",
        (run_with_config("unnamed", {"script": "rbm_train"}),): f"names no model (tfm-export exports {known})",
        (run_with_config("not_a_name", {"model": ["rbm"]}),): "does not know model ['rbm']",
        ("--list", tmp_path / "missing"): "does not exist",
        ("--list", tmp_path / "unknown"): "no SavedModel",
        ("--list", run_dir, "--export-base", tmp_path): "--list reads PATH only",
    }
    for argv, message in expected.items():
        code, out, err = run_script(export.main, argv, capsys)
        assert code == 2, (argv, out, err)
        assert len(err.strip().splitlines()) == 1 and message in err, (argv, err)
    assert not (tmp_path / "missing").exists()


def test_help_answers_without_loading_tensorflow():
    program = ("import sys; from scripts import export\n"
               "try:\n    export.main(['--help'])\nexcept SystemExit:\n    pass\n"
               "print(sorted(m for m in ('tensorflow', 'rbm_tf', 'autoencoders_tf') if m in sys.modules))")
    completed = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                               cwd=pathlib.Path(__file__).resolve().parents[1], timeout=60, env=QUIET_ENV)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "--export-base" in completed.stdout
    assert completed.stdout.strip().splitlines()[-1] == "[]"
