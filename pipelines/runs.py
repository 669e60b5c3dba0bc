"""Run directories: what a training run leaves behind, written atomically, and its exports.

    RUN/run_config.json        the settings the run was started with (its family and config)
    RUN/checkpoints/           tf.train.CheckpointManager checkpoints (resume continues)
    RUN/tensorboard/           TensorBoard summaries
    RUN/metrics.json           {"final": {...}, "epochs": [{"epoch", "seconds", ...}, ...]}
    RUN/metrics.png            metric curves, with the baseline drawn
    RUN/export/NAME/VERSION/   SavedModels as TensorFlow Serving loads them

Shared by every model family (rbm_tf and autoencoders_tf import it; it imports neither).
TensorFlow is imported only by what needs it (checkpoints, summaries), so that finding an
export or writing a file works without it. Every file is written through a temporary file in the same directory and a rename, so an
interrupted run never leaves a half-written file behind; a value that is not finite is written
to metrics.json as null, so the file stays valid JSON.
"""

import errno
import json
import math
import os
import pathlib
import shutil
import tempfile

from pipelines.errors import RunError

CONFIG_FILE = "run_config.json"


# -- atomic files -------------------------------------------------------------------------------

def write_text_atomic(path, text):
    """Write `text` to `path` through a temporary file in the same directory and a rename."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.",
                                     suffix=".tmp", delete=False, encoding="utf-8") as handle:
        temporary = handle.name
        try:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        except BaseException:
            handle.close()
            os.unlink(temporary)
            raise
    os.replace(temporary, path)


def finite_or_none(value):
    """`value` with every float that is not finite (nan, inf) replaced by None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(item) for item in value]
    return value


def write_json_atomic(path, obj):
    """JSON of `obj` (non-finite floats as null: bare NaN is not JSON), written atomically."""
    write_text_atomic(path, json.dumps(finite_or_none(obj), indent=2, allow_nan=False) + "\n")


def save_figure_atomic(figure, path):
    """Save a matplotlib figure as PNG through a temporary file and a rename."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp.png")
    figure.savefig(temporary, dpi=100, bbox_inches="tight")
    os.replace(temporary, path)


def unwritable(path, error):
    """The RunError for a run directory the system refused to write (read-only, full, a file)."""
    reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error).split("\n")[0]
    return RunError(f"cannot write to {path}: {reason}; the last complete checkpoint is kept, "
                    "so the run can be resumed once the directory is writable")


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
        return self.path / CONFIG_FILE

    def export_base(self):
        return self.path / "export"

    def latest_checkpoint(self):
        """Path prefix of the latest checkpoint, or None."""
        if not self.checkpoint_dir.is_dir():
            return None
        import tensorflow as tf
        return tf.train.latest_checkpoint(str(self.checkpoint_dir))

    def has_checkpoint(self):
        return self.latest_checkpoint() is not None

    def checkpoint_to_export(self):
        """Path of the latest checkpoint, or a RunError when the run has saved none yet."""
        latest = self.latest_checkpoint()
        if latest is None:
            raise RunError(f"{self.checkpoint_dir} holds no checkpoint to export; train first "
                           "(or resume the run until it saves one)")
        return latest

    def check_fresh_or_resume(self, resume):
        """Refuse to train over an earlier run unless resuming; create and probe the directory."""
        if self.path.exists() and not self.path.is_dir():
            raise RunError(f"{self.path} is a file, not a run directory; choose another run directory")
        if resume and not self.has_checkpoint():
            raise RunError(f"resume asked but {self.checkpoint_dir} holds no checkpoint")
        if not resume and self.has_checkpoint():
            raise RunError(f"{self.path} already holds a training run; resume it or choose "
                           "another run directory")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            # a read-only or full file system fails here, before any training time is spent
            write_text_atomic(self.path / ".probe", "")
            (self.path / ".probe").unlink()
        except OSError as error:
            raise unwritable(self.path, error) from None

    def write_config(self, config):
        write_json_atomic(self.config_path, config)

    def read_config(self):
        if not self.config_path.is_file():
            raise RunError(f"{self.path} is not a run directory (no {CONFIG_FILE})")
        try:
            return json.loads(self.config_path.read_text(encoding="utf-8"))
        except ValueError as error:
            raise RunError(f"{self.config_path}: not valid JSON ({error})") from None

    def checkpoint_manager(self, checkpoint, max_to_keep=3):
        import tensorflow as tf
        return tf.train.CheckpointManager(checkpoint, str(self.checkpoint_dir),
                                          max_to_keep=max_to_keep)

    def summary_writer(self, name):
        import tensorflow as tf
        return tf.summary.create_file_writer(str(self.tensorboard_dir / name))

    def read_metrics(self):
        """metrics.json as written so far: {"final": {...}, "epochs": [...]}."""
        if not self.metrics_path.is_file():
            return {"final": {}, "epochs": []}
        return json.loads(self.metrics_path.read_text(encoding="utf-8"))

    def record_export(self, export_dir):
        """Note a new export in metrics.json's final (a re-export made without training too)."""
        if self.metrics_path.is_file():
            metrics = self.read_metrics()
            metrics.setdefault("final", {})["export"] = str(export_dir)
            write_json_atomic(self.metrics_path, metrics)


def write_scalars(writer, step, scalars):
    """TensorBoard scalars {name: value} at `step`, flushed so a running TensorBoard sees them."""
    import tensorflow as tf
    with writer.as_default(step=step):
        for name, value in scalars.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
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


def plot_metrics(epochs, series, path, baselines=None, title=None):
    """Draw metric curves per epoch, with a dashed line per baseline, into a PNG.

    series: {label: key in each epoch record}; baselines: {label: value}.
    """
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(7, 4.5))
    x = [record["epoch"] for record in epochs]
    for label, key in series.items():
        axes.plot(x, [record.get(key) for record in epochs], marker="o", label=label)
    for (label, value), color in zip((baselines or {}).items(), ("grey", "tab:brown", "tab:pink")):
        if value is not None:
            axes.axhline(value, color=color, linestyle="--", label=f"{label} ({value:.3f})")
    axes.set_xlabel("epoch")
    axes.grid(alpha=0.3)
    axes.legend()
    if title:
        axes.set_title(title)
    save_figure_atomic(figure, path)
    pyplot.close(figure)


# -- export ----------------------------------------------------------------------------------------

_EXPORT_PREFIX = ".export-"


def existing_versions(model_base):
    """Sorted version numbers exported under `model_base` (its all-digit subdirectories)."""
    model_base = pathlib.Path(model_base)
    if not model_base.is_dir():
        return []
    return sorted(int(p.name) for p in model_base.iterdir() if p.is_dir() and p.name.isdigit())


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_abandoned_exports(model_base):
    """Remove the temporary directories of exports whose process died (a SIGKILL mid-export)."""
    for path in pathlib.Path(model_base).glob(f"{_EXPORT_PREFIX}*"):
        pid = path.name[len(_EXPORT_PREFIX):].split("-")[0]
        if path.is_dir() and (not pid.isdigit() or not _pid_alive(int(pid))):
            shutil.rmtree(path, ignore_errors=True)


def export_versioned(export_base, model_name, write_saved_model):
    """Export to `export_base/model_name/<version>/`, the layout TensorFlow Serving loads.

    `write_saved_model(path)` writes a SavedModel into `path`. It writes into a temporary
    directory that is renamed to the next version (one above the highest existing), so TF
    Serving never sees a half-written version and no version is ever overwritten. Temporary
    directories left by an export that was killed are removed first. Returns the new path.
    """
    model_base = pathlib.Path(export_base) / model_name
    model_base.mkdir(parents=True, exist_ok=True)
    remove_abandoned_exports(model_base)
    # a dot-name is not a version to TF Serving, which only loads all-digit directories
    temporary = pathlib.Path(tempfile.mkdtemp(prefix=f"{_EXPORT_PREFIX}{os.getpid()}-", dir=model_base))
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
    """Path of the highest exported version, or raise RunError."""
    versions = existing_versions(pathlib.Path(export_base) / model_name)
    if not versions:
        raise RunError(f"no export of {model_name!r} under {export_base}")
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
        raise RunError(f"{path} does not exist")
    if existing_versions(path):
        return [latest_export(path.parent, path.name)]
    base = path / "export" if (path / "export").is_dir() else path
    found = [latest_export(base, model.name) for model in sorted(base.iterdir())
             if model.is_dir() and existing_versions(model)]
    if not found:
        raise RunError(f"no SavedModel under {path} (expected BASE/<model>/<version>/saved_model.pb)")
    return found
