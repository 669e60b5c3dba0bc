"""scripts/export.py (tfm-export) and the export section of scripts/_run.py.

Every model is exported through its training script's `export_run` from a small run directory
made here, then checked the way TensorFlow Serving will use it: loaded in a fresh Python
process (outputs bit-identical to the in-memory model), and run by TensorFlow's own
`saved_model_cli` (which, like the model server, loads the graph into a session).
"""

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

from rbm_tf.rbm import RBM
from rbm_tf.serving import RecommenderServing
from rbm_tf.training import CDConfig
from rbm_tf.training import CDTrainer
from scripts import _run
from scripts import export
from scripts import rbm_train

REPO = pathlib.Path(__file__).resolve().parents[1]
MOVIES = [(10, "Alpha (1990)"), (20, "Beta (1991)"), (35, "Gamma, The (1992)"),
          (41, "Delta (1993)"), (57, "Epsilon (1994)"), (68, "Zeta (1995)")]
# quiet TF's C++ start-up logging in the subprocesses, which otherwise swamps failure output
QUIET_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}


class ExportCase:
    """One model's export, with inputs per signature and the in-memory model's outputs."""

    def __init__(self, name, export_dir, calls, deterministic=(), bad_calls=None):
        self.name = name
        self.export_dir = pathlib.Path(export_dir)
        self.calls = calls  # {signature: (inputs {name: np.ndarray}, expected {name: np.ndarray})}
        self.deterministic = set(deterministic)
        self.bad_calls = bad_calls or {}  # {label: (signature, inputs)}, each must be refused


def randomize(variables, seed):
    """Distinct weights, so that a restore which silently restored nothing is caught."""
    for number, variable in enumerate(variables):
        variable.assign(tf.random.stateless_normal(variable.shape, seed=[seed, number], stddev=0.7))


def rbm_case(run_dir):
    """A trained-looking RBM run (rbm-train's checkpoint layout) exported with tfm-export."""
    rbm = RBM(len(MOVIES), 4, "pair", seed=3)
    randomize([rbm.weights, rbm.visible_bias, rbm.hidden_bias], seed=11)
    trainer = CDTrainer(rbm, CDConfig(), batch_size=4)
    run = _run.RunDirectory(run_dir)
    rbm_train.write_movie_table(run.path / rbm_train.MOVIE_TABLE, [m for m, _ in MOVIES],
                                [t for _, t in MOVIES])
    run.write_config({"model": "rbm", "script": "rbm_train", "num_movies": len(MOVIES),
                      "hidden": 4, "visible": "pair", "like_threshold": 3.0})
    checkpoint = tf.train.Checkpoint(trainer=trainer, epoch=tf.Variable(3, dtype=tf.int64))
    run.checkpoint_manager(checkpoint).save(checkpoint_number=3)

    export_dir = export.export_run(run_dir)
    module = RecommenderServing(rbm, [m for m, _ in MOVIES])
    ratings = np.array([[1, -1, 0, -1, -1, 1], [-1, -1, -1, -1, -1, -1], [0, 0, 1, 1, -1, -1]],
                       np.float32)
    k = np.array(3, np.int32)
    calls = {
        "serving_default": ({"ratings": ratings}, module.like_probability(ratings)),
        "recommend": ({"ratings": ratings, "k": k}, module.recommend(ratings, k)),
    }
    calls = {sig: (inputs, {name: t.numpy() for name, t in out.items()})
             for sig, (inputs, out) in calls.items()}
    unrated = np.full([1, len(MOVIES)], -1.0, np.float32)
    bad_calls = {}
    for signature, extra in (("serving_default", {}), ("recommend", {"k": np.array(2, np.int32)})):
        for kind, ratings in (
                ("rating-3", np.where(np.arange(len(MOVIES)) == 2, 3.0, unrated)),
                ("rating-half", np.full_like(unrated, 0.5)),
                ("int-ratings", unrated.astype(np.int32)),
                ("too-wide", np.full([1, len(MOVIES) + 1], -1.0)),
                ("too-narrow", np.full([2, len(MOVIES) - 1], -1.0)),
                ("rank-1", np.full([len(MOVIES)], -1.0))):
            if ratings.dtype == np.float64:
                ratings = ratings.astype(np.float32)
            bad_calls[f"{signature}-{kind}"] = (signature, {"ratings": ratings, **extra})
    bad_calls["recommend-k-0"] = ("recommend", {"ratings": unrated, "k": np.array(0, np.int32)})
    return ExportCase("rbm", export_dir, calls, deterministic=calls, bad_calls=bad_calls)


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    built = [rbm_case(root / "rbm")]
    return {case.name: case for case in built}


@pytest.fixture(scope="module")
def cli_results(cases, tmp_path_factory):
    """`saved_model_cli show --all` and `run` (every signature) on every export, run concurrently."""
    root = tmp_path_factory.mktemp("cli")
    processes = {}
    for case in cases.values():
        processes[(case.name, "show")] = subprocess.Popen(
            ["saved_model_cli", "show", "--dir", str(case.export_dir), "--all"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=QUIET_ENV)
        for signature, (inputs, _) in case.calls.items():
            folder = root / case.name / signature
            folder.mkdir(parents=True)
            for name, value in inputs.items():
                np.save(folder / f"{name}.npy", value)
            processes[(case.name, signature)] = subprocess.Popen(
                ["saved_model_cli", "run", "--dir", str(case.export_dir), "--tag_set", "serve",
                 "--signature_def", signature, "--outdir", str(folder / "out"),
                 "--inputs", ";".join(f"{name}={folder / name}.npy" for name in inputs)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=QUIET_ENV)
    results = {}
    for key, process in processes.items():
        stdout, stderr = process.communicate(timeout=300)
        results[key] = (process.returncode, stdout, stderr, root / key[0] / key[1] / "out")
    return results


def all_calls(names=None):
    return [pytest.param(model, signature, id=f"{model}-{signature}")
            for model, signatures in EXPECTED_SIGNATURES.items() if names is None or model in names
            for signature in signatures]


# the contract each export is held to: signature -> {input|output name: (dtype, shape)}
EXPECTED_SIGNATURES = {
    "rbm": {
        "serving_default": {"inputs": {"ratings": ("float32", [None, len(MOVIES)])},
                            "outputs": {"like_probability": ("float32", [None, len(MOVIES)])}},
        "recommend": {"inputs": {"ratings": ("float32", [None, len(MOVIES)]), "k": ("int32", [])},
                      "outputs": {"movie_indices": ("int32", [None, None]),
                                  "movie_ids": ("int64", [None, None]),
                                  "scores": ("float32", [None, None])}},
    },
}


# -- _run.export_versioned -------------------------------------------------------------------------

def write_marker(path, text):
    pathlib.Path(path).mkdir()
    (pathlib.Path(path) / "saved_model.pb").write_text(text)


def test_export_versioned_counts_up_and_never_overwrites(tmp_path):
    first = _run.export_versioned(tmp_path, "m", lambda p: write_marker(p, "one"))
    second = _run.export_versioned(tmp_path, "m", lambda p: write_marker(p, "two"))
    assert (first.name, second.name) == ("1", "2")
    assert (first / "saved_model.pb").read_text() == "one"
    (tmp_path / "m" / "9").mkdir()
    (tmp_path / "m" / "9" / "keep").write_text("nine")
    assert _run.export_versioned(tmp_path, "m", lambda p: write_marker(p, "x")).name == "10"
    assert (tmp_path / "m" / "9" / "keep").read_text() == "nine"
    # nothing but versions is left behind: TF Serving would try to load any all-digit directory
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["1", "10", "2", "9"]


def test_export_versioned_leaves_nothing_when_the_writer_fails(tmp_path):
    def fail(path):
        write_marker(path, "half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        _run.export_versioned(tmp_path, "m", fail)
    assert list((tmp_path / "m").iterdir()) == []


def test_export_versioned_takes_the_next_number_when_another_export_wins_the_race(tmp_path, monkeypatch):
    real = _run.existing_versions
    calls = []

    def stale_then_real(model_base):
        calls.append(1)
        if len(calls) == 1:
            # another exporter renames its version 1 in between our look and our rename
            write_marker(pathlib.Path(model_base) / "1", "theirs")
            return []
        return real(model_base)

    monkeypatch.setattr(_run, "existing_versions", stale_then_real)
    ours = _run.export_versioned(tmp_path, "m", lambda p: write_marker(p, "ours"))
    assert ours.name == "2" and (ours / "saved_model.pb").read_text() == "ours"
    assert (tmp_path / "m" / "1" / "saved_model.pb").read_text() == "theirs"


def test_find_exports_accepts_version_model_base_and_run_directories(cases):
    version = cases["rbm"].export_dir
    model_dir, base, run_dir = version.parent, version.parent.parent, version.parent.parent.parent
    for path in (version, model_dir, base, run_dir):
        assert _run.find_exports(path) == [version]
    with pytest.raises(_run.UserError, match="no SavedModel"):
        _run.find_exports(run_dir / "checkpoints")


# -- every export: signatures, fresh process, saved_model_cli -----------------------------------------

@pytest.mark.parametrize("model", sorted(EXPECTED_SIGNATURES))
def test_export_has_named_signatures_with_the_documented_inputs_and_outputs(cases, model):
    case = cases[model]
    assert (case.export_dir / "saved_model.pb").is_file()
    assert (case.export_dir / "variables" / "variables.index").is_file()
    assert _run.read_signatures(case.export_dir) == EXPECTED_SIGNATURES[model]


def test_recommender_export_ships_its_movie_table(cases):
    table = cases["rbm"].export_dir / "assets" / "movies.tsv"
    lines = table.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "index\tmovie_id\ttitle"
    assert lines[1:] == [f"{i}\t{m}\t{t}" for i, (m, t) in enumerate(MOVIES)]


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
        for key, (signature, inputs) in {**calls, **case.bad_calls}.items():
            np.savez(root / f"{case.name}-{key}-in.npz", **inputs)
            plan.append([str(case.export_dir), signature, str(root / f"{case.name}-{key}-in.npz"),
                         str(root / f"{case.name}-{key}-out.npz")])
    program = textwrap.dedent("""
        import json, sys
        import numpy as np
        import tensorflow as tf
        for export_dir, signature, inputs_path, outputs_path in json.loads(sys.argv[1]):
            loaded = tf.saved_model.load(export_dir)
            inputs = {name: tf.constant(value) for name, value in np.load(inputs_path).items()}
            try:
                outputs = loaded.signatures[signature](**inputs)
            except Exception as error:  # recorded: the test decides which errors are right
                np.savez(outputs_path, error=np.array(type(error).__name__ + ": " + str(error)))
            else:
                np.savez(outputs_path, **{name: t.numpy() for name, t in outputs.items()})
    """)
    completed = subprocess.run([sys.executable, "-c", program, json.dumps(plan)], cwd=root,
                               capture_output=True, text=True, env=QUIET_ENV, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return {(case.name, key): dict(np.load(root / f"{case.name}-{key}-out.npz"))
            for case in cases.values() for key in [*case.calls, *case.bad_calls]}


@pytest.mark.parametrize("model,signature", all_calls())
def test_export_matches_the_in_memory_model_in_a_fresh_process(cases, fresh_process, model, signature):
    case = cases[model]
    served = fresh_process[(model, signature)]
    assert "error" not in served, str(served.get("error"))
    expected = case.calls[signature][1]
    assert sorted(served) == sorted(expected)
    for name, value in expected.items():
        assert served[name].dtype == value.dtype, name
        if signature in case.deterministic:
            np.testing.assert_array_equal(served[name], value, err_msg=f"{model} {name}")
        else:
            assert served[name].shape == value.shape


RATING_VALUES = re.escape("ratings must be -1 (missing), 0 (dislike) or 1 (like)")
# what each refused input must say: the model's own message, or TF's own for a wrong dtype
BAD_INPUT_MESSAGES = {
    "rbm": {"rating-3": RATING_VALUES, "rating-half": RATING_VALUES,
            "int-ratings": "expected to be a float tensor but is a int32 tensor",
            "too-wide": re.escape(f"not compatible with expected shape [?,{len(MOVIES)}]"),
            "too-narrow": re.escape(f"not compatible with expected shape [?,{len(MOVIES)}]"),
            "rank-1": re.escape(f"not compatible with expected shape [?,{len(MOVIES)}]"),
            "k-0": "k must be at least 1"},
}
BAD_CALL_LABELS = {
    "rbm": [f"{signature}-{kind}" for signature in ("serving_default", "recommend")
            for kind in ("rating-3", "rating-half", "int-ratings", "too-wide", "too-narrow", "rank-1")]
           + ["recommend-k-0"],
}
# TF Serving feeds a tensor as sent and a loaded signature does not enforce its input shape, so
# only a check inside the graph (tf.ensure_shape) turns a wrong width into a clear error
SHAPE_NOT_CHECKED = {("rbm", kind) for kind in ("too-wide", "too-narrow", "rank-1")}


def bad_calls():
    params = []
    for model, labels in BAD_CALL_LABELS.items():
        for label in labels:
            kind = next(k for k in BAD_INPUT_MESSAGES[model] if label.endswith(k))
            marks = [pytest.mark.xfail(strict=True, reason="the signature does not check the "
                                       "input's shape inside the graph yet")
                     ] if (model, kind) in SHAPE_NOT_CHECKED else []
            params.append(pytest.param(model, label, kind, id=f"{model}-{label}", marks=marks))
    return params


@pytest.mark.parametrize("model,label,kind", bad_calls())
def test_bad_input_is_refused_with_a_clear_message(fresh_process, model, label, kind):
    result = fresh_process[(model, label)]
    assert "error" in result, f"{label} was answered: {sorted(result)}"
    message = str(result["error"])
    assert message.startswith("InvalidArgumentError"), message[:300]
    assert re.search(BAD_INPUT_MESSAGES[model][kind], message), message[:500]


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


@pytest.mark.parametrize("model,signature", all_calls())
def test_saved_model_cli_run_gives_the_in_memory_outputs(cases, cli_results, model, signature):
    returncode, stdout, stderr, outdir = cli_results[(model, signature)]
    assert returncode == 0, stderr[-2000:]
    case = cases[model]
    for name, expected in case.calls[signature][1].items():
        assert f"Result for output key {name}" in stdout or (outdir / f"{name}.npy").is_file()
        served = np.load(outdir / f"{name}.npy")
        if signature in case.deterministic:
            np.testing.assert_array_equal(served, expected, err_msg=f"{model} {name}")
        else:
            assert served.shape == expected.shape


# -- inputs are validated inside the graph ---------------------------------------------------------

def test_saved_model_cli_run_reports_the_models_own_error_for_bad_ratings(cases, tmp_path):
    bad = tmp_path / "bad.npy"
    np.save(bad, np.full([1, len(MOVIES)], 2.0, np.float32))
    completed = subprocess.run(
        ["saved_model_cli", "run", "--dir", str(cases["rbm"].export_dir), "--tag_set", "serve",
         "--signature_def", "serving_default", "--inputs", f"ratings={bad}"],
        capture_output=True, text=True, env=QUIET_ENV, timeout=300)
    assert completed.returncode != 0
    assert "ratings must be -1 (missing), 0 (dislike) or 1 (like)" in completed.stderr


# -- the command line ------------------------------------------------------------------------------

def run_main(argv, capsys):
    """(exit code, stdout, stderr) of tfm-export."""
    try:
        code = export.main([str(a) for a in argv])
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_list_shows_each_signature_with_input_and_output_dtypes_and_shapes(cases, capsys):
    code, out, err = run_main(["--list", cases["rbm"].export_dir.parent], capsys)
    assert code == 0, err
    lines = [line.split() for line in out.splitlines()]
    assert lines[0] == [str(cases["rbm"].export_dir)]
    assert ["assets:", "movies.tsv"] in lines
    recommend = lines.index(["signature", "'recommend'"])
    default = lines.index(["signature", "'serving_default'"])
    assert lines[recommend + 1:default] == [
        ["inputs:"], ["k", "int32", "[]"], ["ratings", "float32", f"[-1,", f"{len(MOVIES)}]"],
        ["outputs:"], ["movie_ids", "int64", "[-1,", "-1]"], ["movie_indices", "int32", "[-1,", "-1]"],
        ["scores", "float32", "[-1,", "-1]"]]
    assert lines[default + 1:] == [
        ["inputs:"], ["ratings", "float32", "[-1,", f"{len(MOVIES)}]"],
        ["outputs:"], ["like_probability", "float32", "[-1,", f"{len(MOVIES)}]"]]


def test_reexport_from_the_checkpoint_writes_the_next_version(cases, tmp_path, capsys):
    run_dir = cases["rbm"].export_dir.parents[2]
    code, out, err = run_main([run_dir, "--export-base", tmp_path / "served"], capsys)
    assert code == 0, err
    assert out.splitlines()[0] == f"exported {tmp_path / 'served' / 'rbm' / '1'}"
    code, out, _ = run_main([run_dir, "--export-base", tmp_path / "served"], capsys)
    assert out.splitlines()[0].endswith(str(pathlib.Path("served") / "rbm" / "2"))
    assert _run.read_signatures(tmp_path / "served" / "rbm" / "2") == EXPECTED_SIGNATURES["rbm"]


def test_user_errors_are_one_line_with_exit_code_2(cases, tmp_path, capsys):
    run_dir = cases["rbm"].export_dir.parents[2]
    no_checkpoint = tmp_path / "fresh"
    no_checkpoint.mkdir()
    (no_checkpoint / "run_config.json").write_text(json.dumps({"model": "rbm", "script": "rbm_train"}))
    unknown = tmp_path / "unknown"
    unknown.mkdir()
    (unknown / "run_config.json").write_text(json.dumps({"model": "x", "script": "no_such_train"}))
    unnamed = tmp_path / "unnamed"
    unnamed.mkdir()
    (unnamed / "run_config.json").write_text(json.dumps({"model": "x"}))
    not_a_script = tmp_path / "not_a_script"
    not_a_script.mkdir()
    (not_a_script / "run_config.json").write_text(json.dumps({"script": "_run"}))
    expected = {
        (tmp_path / "missing",): "does not exist",
        (tmp_path,): "is not a run directory",
        (no_checkpoint,): "holds no checkpoint",
        (unknown,): "unknown training script 'no_such_train'",
        (unnamed,): "names no training script",
        (not_a_script,): "cannot export",
        ("--list", tmp_path / "missing"): "does not exist",
        ("--list", unknown): "no SavedModel",
        ("--list", run_dir, "--export-base", tmp_path): "--list reads PATH only",
    }
    for argv, message in expected.items():
        code, out, err = run_main(argv, capsys)
        assert code == 2, (argv, out, err)
        assert len(err.strip().splitlines()) == 1 and message in err, (argv, err)
    assert not (tmp_path / "missing").exists()
