"""The one place for run directories, shared by every training script.

A run directory holds what a training run leaves behind:

    RUN/run_config.json        the arguments the run was started with
    RUN/checkpoints/           tf.train.CheckpointManager checkpoints (``--resume`` continues)
    RUN/tensorboard/           TensorBoard summaries
    RUN/metrics.json           {"final": {...}, "epochs": [{"epoch", "seconds", ...}, ...]}
    RUN/metrics.png            metric curves, with the baseline drawn
    RUN/export/NAME/VERSION/   SavedModels as TensorFlow Serving loads them

Every file is written atomically (a temporary file in the same directory, then a rename), so
an interrupted run never leaves a half-written file behind. `run_cli` turns the errors a user
can fix into one line on stderr and exit code 2.
"""

import argparse
import errno
import json
import os
import pathlib
import shutil
import sys
import tempfile

import tensorflow as tf


class UserError(Exception):
    """An error the user can fix (bad path, bad argument): printed as one line, exit 2."""


def user_error_types():
    """Exception types whose message is meant for the user, from every pipeline module."""
    # imported here, not at the top, so that scripts which read no data start without them
    from pipelines import images
    from pipelines import movielens
    return (UserError, movielens.MovieLensError, images.IdxError)


def run_cli(main, argv=None):
    """Run a script's `main(argv)`: user errors -> one line on stderr, exit 2; Ctrl-C -> exit 130."""
    try:
        return main(argv)
    except user_error_types() as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: the last checkpoint is kept; rerun with --resume to continue",
              file=sys.stderr)
        sys.exit(130)


def comma_separated_sizes(what, example):
    """An argparse type: "500,500,2000" -> (500, 500, 2000); errors name `what` and an `example`."""

    def parse(text):
        try:
            return tuple(int(part) for part in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {what} such as {example}, got {text!r}") from None

    return parse


def add_run_arguments(parser):
    """--run-dir, --resume and --no-export: the same in every training script."""
    parser.add_argument("--run-dir", required=True, type=pathlib.Path,
                        help="where checkpoints, metrics, pictures and the export go")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --run-dir from its last checkpoint, with the "
                             "settings it was started with")
    parser.add_argument("--no-export", action="store_true", help="skip the SavedModel export")


def add_contrastive_divergence_arguments(parser, defaults):
    """--k, --persistent, --learning-rate, --momentum, --weight-decay of RBM training.

    `defaults` holds the script's defaults under the same names (k, learning_rate, ...).
    """
    parser.add_argument("--k", type=int, default=defaults.k,
                        help="Gibbs steps per contrastive-divergence update (default: %(default)s)")
    parser.add_argument("--persistent", action="store_true",
                        help="persistent contrastive divergence instead of CD-k")
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate,
                        help="contrastive-divergence learning rate (default: %(default)s)")
    parser.add_argument("--momentum", type=float, default=defaults.momentum,
                        help="contrastive-divergence momentum (default: %(default)s)")
    parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay,
                        help="L2 penalty on the RBM weights (default: %(default)s)")


# -- atomic files -------------------------------------------------------------------------------

def write_text_atomic(path, text):
    """Write `text` to `path` through a temporary file in the same directory and a rename."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.",
                                     suffix=".tmp", delete=False, encoding="utf-8") as handle:
        handle.write(text)
        temporary = handle.name
    os.replace(temporary, path)


def write_json_atomic(path, obj):
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_figure_atomic(figure, path):
    """Save a matplotlib figure as PNG through a temporary file and a rename."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp.png")
    figure.savefig(temporary, dpi=100, bbox_inches="tight")
    os.replace(temporary, path)


# -- the run directory ---------------------------------------------------------------------------

class RunDirectory:
    """Paths and files of one training run."""

    def __init__(self, path):
        self.path = pathlib.Path(path)

    @property
    def checkpoint_dir(self):
        return self.path / "checkpoints"

    @property
    def tensorboard_dir(self):
        return self.path / "tensorboard"

    @property
    def metrics_path(self):
        return self.path / "metrics.json"

    @property
    def config_path(self):
        return self.path / "run_config.json"

    def export_base(self):
        return self.path / "export"

    def has_checkpoint(self):
        return tf.train.latest_checkpoint(str(self.checkpoint_dir)) is not None

    def checkpoint_to_export(self):
        """Path of the latest checkpoint, or a UserError when the run has saved none yet."""
        latest = tf.train.latest_checkpoint(str(self.checkpoint_dir))
        if latest is None:
            raise UserError(f"{self.checkpoint_dir} holds no checkpoint to export; train first "
                            "(or resume the run until it saves one)")
        return latest

    def check_fresh_or_resume(self, resume):
        """Refuse to train over an earlier run's checkpoints unless asked to resume; create the run."""
        if resume and not self.has_checkpoint():
            raise UserError(f"--resume given but {self.checkpoint_dir} holds no checkpoint")
        if not resume and self.has_checkpoint():
            raise UserError(f"{self.path} already holds a training run; pass --resume to "
                            "continue it or choose another --run-dir")
        self.path.mkdir(parents=True, exist_ok=True)

    def write_config(self, config):
        write_json_atomic(self.config_path, config)

    def read_config(self):
        if not self.config_path.is_file():
            raise UserError(f"{self.path} is not a run directory (no {self.config_path.name})")
        return json.loads(self.config_path.read_text(encoding="utf-8"))

    def checkpoint_manager(self, checkpoint, max_to_keep=3):
        return tf.train.CheckpointManager(checkpoint, str(self.checkpoint_dir),
                                          max_to_keep=max_to_keep)

    def summary_writer(self, name):
        return tf.summary.create_file_writer(str(self.tensorboard_dir / name))


def write_scalars(writer, step, scalars):
    """TensorBoard scalars {name: value} at `step`, flushed so a running TensorBoard sees them."""
    with writer.as_default(step=step):
        for name, value in scalars.items():
            tf.summary.scalar(name, value)
    writer.flush()


class MetricsLog:
    """`metrics.json` of a run: one dict per epoch and a final summary, rewritten every epoch.

    Resuming a run reads the epochs already logged, so the history stays whole.
    """

    def __init__(self, path, resume=False):
        self.path = pathlib.Path(path)
        self.epochs = []
        self.final = {}
        if resume and self.path.is_file():
            logged = json.loads(self.path.read_text(encoding="utf-8"))
            self.epochs = list(logged.get("epochs", []))
            self.final = dict(logged.get("final", {}))

    def log_epoch(self, record):
        """Append `record` (must hold "epoch") dropping any later epochs a resume redoes."""
        self.epochs = [e for e in self.epochs if e["epoch"] < record["epoch"]] + [dict(record)]
        self.write()

    def set_final(self, final):
        self.final = dict(final)
        self.write()

    def write(self):
        write_json_atomic(self.path, {"final": self.final, "epochs": self.epochs})


def plot_metrics(epochs, series, path, baseline_key=None, baseline_label="baseline", title=None):
    """Draw metric curves per epoch, with a dashed line for the baseline, into a PNG.

    series: {label: key in each epoch record}; baseline_key: key of the baseline value.
    """
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(7, 4.5))
    x = [record["epoch"] for record in epochs]
    for label, key in series.items():
        axes.plot(x, [record.get(key) for record in epochs], marker="o", label=label)
    if baseline_key is not None and epochs:
        axes.axhline(epochs[-1][baseline_key], color="grey", linestyle="--",
                     label=f"{baseline_label} ({epochs[-1][baseline_key]:.3f})")
    axes.set_xlabel("epoch")
    axes.grid(alpha=0.3)
    axes.legend()
    if title:
        axes.set_title(title)
    save_figure_atomic(figure, path)
    pyplot.close(figure)


# -- export ----------------------------------------------------------------------------------------

def existing_versions(model_base):
    """Sorted version numbers exported under `model_base` (its all-digit subdirectories)."""
    model_base = pathlib.Path(model_base)
    if not model_base.is_dir():
        return []
    return sorted(int(p.name) for p in model_base.iterdir() if p.is_dir() and p.name.isdigit())


def export_versioned(export_base, model_name, write_saved_model):
    """Export to `export_base/model_name/<version>/`, the layout TensorFlow Serving loads.

    `write_saved_model(path)` writes a SavedModel into `path`. It writes into a temporary
    directory that is renamed to the next version (one above the highest existing), so TF
    Serving never sees a half-written version and no version is ever overwritten.
    Returns the new version's path.
    """
    model_base = pathlib.Path(export_base) / model_name
    model_base.mkdir(parents=True, exist_ok=True)
    # a dot-name is not a version to TF Serving, which only loads all-digit directories
    temporary = pathlib.Path(tempfile.mkdtemp(prefix=".export-", dir=model_base))
    try:
        write_saved_model(str(temporary / "saved_model"))
        while True:
            versions = existing_versions(model_base)
            target = model_base / str((versions[-1] + 1) if versions else 1)
            try:
                # the kernel refuses to rename onto a non-empty directory, so of two exports
                # racing for one number the loser takes the next one instead of overwriting
                os.rename(temporary / "saved_model", target)
                break
            except OSError as error:
                if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return target


def latest_export(export_base, model_name):
    """Path of the highest exported version, or raise UserError."""
    versions = existing_versions(pathlib.Path(export_base) / model_name)
    if not versions:
        raise UserError(f"no export of {model_name!r} under {export_base}")
    return pathlib.Path(export_base) / model_name / str(versions[-1])


def find_exports(path):
    """The SavedModel version directories that `path` names, for reading or serving.

    `path` may be a version directory itself, a model's directory (its latest version), or an
    export base or run directory (the latest version of every model in it).
    """
    path = pathlib.Path(path)
    if (path / "saved_model.pb").is_file():
        return [path]
    if not path.is_dir():
        raise UserError(f"{path} does not exist")
    if existing_versions(path):
        return [latest_export(path.parent, path.name)]
    base = path / "export" if (path / "export").is_dir() else path
    found = [latest_export(base, model.name) for model in sorted(base.iterdir())
             if model.is_dir() and existing_versions(model)]
    if not found:
        raise UserError(f"no SavedModel under {path} (expected BASE/<model>/<version>/saved_model.pb)")
    return found


def read_signatures(export_dir):
    """The signatures of the export at `export_dir`, as `describe_signatures` gives them.

    Read from saved_model.pb without loading the model, so it is quick and runs no graph.
    """
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    pb_path = pathlib.Path(export_dir) / "saved_model.pb"
    try:
        saved_model.ParseFromString(pb_path.read_bytes())
    except (OSError, ValueError) as error:
        raise UserError(f"cannot read {pb_path}: {error}") from None
    serving = [graph for graph in saved_model.meta_graphs if "serve" in graph.meta_info_def.tags]
    if not serving:
        raise UserError(f"{pb_path} has no MetaGraph tagged 'serve'")
    return describe_signatures(serving[0].signature_def)


def describe_signatures(signature_defs):
    """{signature name: {"inputs"|"outputs": {name: (dtype name, shape list or None)}}}.

    `signature_defs` maps names to SignatureDef protos (a MetaGraphDef's or a model server's).
    Shapes use None for a dimension of any size; None for the whole shape means any rank.
    """
    def describe(tensors):
        described = {}
        for name, info in sorted(tensors.items()):
            shape = tf.TensorShape(info.tensor_shape)
            described[name] = (tf.dtypes.as_dtype(info.dtype).name,
                               shape.as_list() if shape.rank is not None else None)
        return described

    return {name: {"inputs": describe(signature.inputs), "outputs": describe(signature.outputs)}
            for name, signature in sorted(signature_defs.items())
            if not name.startswith("__")}
