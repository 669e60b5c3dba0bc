"""The one outer loop of every training run, for every model family and every DBN phase.

A family owns only its inner step; the rest is here, once:

* `Run`: the run directory of one training run: refuses to train over an earlier run unless
  resuming, stores the settings, restores the latest checkpoint, writes the final metrics and
  the export.
* `RunMonitor`: a Keras callback that, after every epoch, stops a run whose metrics are not
  finite (nothing of that epoch is saved, nothing exported), saves the checkpoint, appends the
  epoch to metrics.json, writes TensorBoard scalars, redraws the metrics plot and reports a
  line of progress. Keras models get it through `fit(callbacks=...)`.
* `fit_loop`: Keras's `fit` protocol for models that train by their own epoch function (the
  RBMs): a `keras.callbacks.CallbackList` drives the same callbacks, so `RunMonitor`,
  `EarlyStopping`, `History` and any user callback work unchanged.
"""

import logging
import math
import time

import keras
import tensorflow as tf

from pipelines import runs
from pipelines.errors import DivergedError
from pipelines.errors import RunError

logger = logging.getLogger(__name__)


def fit_loop(model, train_epoch, epochs, initial_epoch=0, callbacks=(), verbose=0):
    """Run `train_epoch(epoch, callbacks) -> logs` for epochs initial_epoch..epochs-1.

    `callbacks` get the calls Keras's `fit` makes (on_train_begin, on_epoch_begin/end with the
    epoch's logs, ...); `train_epoch` may call `callbacks.on_test_begin()` where its evaluation
    starts, so that the time reported for the epoch is the training time. A callback stops
    training by setting `model.stop_training`. Returns the `keras.callbacks.History`.
    """
    callback_list = callbacks if isinstance(callbacks, keras.callbacks.CallbackList) else \
        keras.callbacks.CallbackList(list(callbacks), add_history=True, add_progbar=verbose > 0,
                                     model=model, epochs=epochs, verbose=verbose, steps=None)
    model.stop_training = False
    callback_list.on_train_begin()
    logs = {}
    for epoch in range(initial_epoch, epochs):
        callback_list.on_epoch_begin(epoch)
        logs = train_epoch(epoch, callback_list)
        callback_list.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    callback_list.on_train_end(logs)
    return model.history


def update_stopping(config, num_cases, monitor, mode):
    """Keras's EarlyStopping on `monitor` under a config's rule counted in updates
    (`stopping_epochs(num_cases)`: the patience and the first epoch that may stop, in epochs of
    `num_cases` training cases); it keeps the best epoch's weights."""
    patience, start = config.stopping_epochs(num_cases)
    return keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=patience,
                                         start_from_epoch=start, restore_best_weights=True)


def kept_epoch(stopping, epochs_run):
    """The epoch (from 1) whose weights a model holds after `fit` with the EarlyStopping
    `stopping`: its best one when it restored them, else the last of `epochs_run`."""
    # Keras counts epochs from 0
    return int(epochs_run) if stopping.best_weights is None else stopping.best_epoch + 1


def non_finite(record):
    """The first (key, value) of `record` whose number is nan or infinite, else None."""
    for key, value in record.items():
        if isinstance(value, float) and not math.isfinite(value):
            return key, value
    return None


class RunMonitor(keras.callbacks.Callback):
    """After every epoch: NaN guard, checkpoint, metrics.json, TensorBoard, plot, progress.

    Keras's logs become the epoch's record: "val_x" is `{validation_name}_x`, any other "x"
    is "train_x" (keys already starting with "train_" or "test_" are kept), with `rename`
    applied to the metric names first. `extra(record)` may add entries (baselines, notes).
    `phase` and `epoch_offset` place the epochs of one phase of a multi-phase run (the DBN's)
    in the run-wide numbering. `plot(epochs)` redraws the run's figures; `describe(record)`
    is the line of progress reported through `log`. `epoch_counter`, a variable the checkpoint
    holds, is set to the epochs done before the checkpoint is saved, so a resumed run knows
    where it stopped.
    """

    def __init__(self, run, phase=None, epoch_offset=0, validation_name="test", rename=None,
                 extra=None, plot=None, describe=None, log=None, writer_name=None,
                 epoch_counter=None):
        super().__init__()
        self.run = run
        self.epoch_counter = epoch_counter
        self.phase = phase
        self.epoch_offset = epoch_offset
        self.validation_name = validation_name
        self.rename = rename or {}
        self.extra = extra
        self.plot = plot
        self.describe = describe
        self.log = log or logger.info
        self.writers = {}
        self.writer_name = writer_name
        self.started = None
        self.train_seconds = None

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()
        self.train_seconds = None

    def on_test_begin(self, logs=None):
        # Keras evaluates the validation data inside the epoch: time the training alone
        if self.started is not None and self.train_seconds is None:
            self.train_seconds = time.perf_counter() - self.started

    def record_of(self, epoch, logs):
        seconds = self.train_seconds
        if seconds is None:
            seconds = time.perf_counter() - self.started if self.started else 0.0
        record = {"epoch": self.epoch_offset + epoch + 1, "seconds": round(seconds, 3)}
        if self.phase is not None:
            record["phase"] = self.phase
            record["phase_epoch"] = epoch + 1
        for key, value in (logs or {}).items():
            if key.startswith("val_"):
                side, name = self.validation_name, key[4:]
            elif key.startswith(("train_", "test_")):
                side, name = key.split("_", 1)
            else:
                side, name = "train", key
            value = value.numpy() if hasattr(value, "numpy") else value
            record[f"{side}_{self.rename.get(name, name)}"] = \
                value if isinstance(value, (int, bool)) else float(value)
        if self.extra is not None:
            record.update(self.extra(record))
        return record

    def on_epoch_end(self, epoch, logs=None):
        record = self.record_of(epoch, logs)
        bad = non_finite(record)
        if bad is not None:
            # logged (as null) so the user sees where it went wrong; never checkpointed
            self._write(lambda: self.run.metrics_log.log_epoch(record))
            raise DivergedError(
                f"training diverged in epoch {record['epoch']}: {bad[0]} is {bad[1]}; nothing of "
                "this epoch was saved or exported (a lower learning_rate usually helps)")
        if self.epoch_counter is not None:
            self.epoch_counter.assign(epoch + 1)
        self.run.save_checkpoint(record["epoch"])
        self._write(lambda: self.run.metrics_log.log_epoch(record))
        self._write(lambda: self._scalars(record))
        if self.plot is not None:
            self._write(lambda: self.plot(self.run.metrics_log.epochs))
        if self.describe is not None:
            self.log(self.describe(record))

    def _write(self, write):
        try:
            write()
        except (OSError, tf.errors.OpError) as error:
            raise runs.unwritable(self.run.directory.path, error) from None

    def _scalars(self, record):
        step = record["epoch"]
        for side in ("train", self.validation_name):
            scalars = {key[len(side) + 1:]: value for key, value in record.items()
                       if key.startswith(f"{side}_")}
            if not scalars:
                continue
            name = f"{self.writer_name}_{side}" if self.writer_name else side
            if name not in self.writers:
                self.writers[name] = self.run.directory.summary_writer(name)
            runs.write_scalars(self.writers[name], step, scalars)


class Run:
    """One training run in a run directory: its settings, checkpoint, metrics and export.

        run = Run(run_dir, settings, resume=False)   # refuses an earlier run unless resuming
        run.track(model=..., epoch=...)               # what the checkpoint holds; restores it
        model.fit(..., callbacks=[RunMonitor(run, ...)])
        run.finish(final, export=model_export_fn)

    `settings` (a JSON-able dict naming the family under "model") is written to
    run_config.json when the run starts; `stored_settings` reads it back on resume.
    """

    def __init__(self, run_dir, settings=None, resume=False):
        self.directory = runs.RunDirectory(run_dir)
        self.resume = resume
        self.directory.check_fresh_or_resume(resume)
        if not resume and settings is not None:
            try:
                self.directory.write_config(settings)
            except OSError as error:
                raise runs.unwritable(self.directory.path, error) from None
        self.metrics_log = runs.MetricsLog(self.directory.metrics_path, resume=resume)
        self.checkpoint = None
        self.manager = None

    @property
    def path(self):
        return self.directory.path

    def stored_settings(self):
        return self.directory.read_config()

    def track(self, **trackables):
        """Checkpoint these objects every epoch; on resume restore them. Returns the restore path."""
        self.checkpoint = tf.train.Checkpoint(**trackables)
        self.manager = self.directory.checkpoint_manager(self.checkpoint)
        if self.resume:
            self.checkpoint.restore(self.manager.latest_checkpoint).assert_existing_objects_matched()
            return self.manager.latest_checkpoint
        return None

    def check_resumable(self, done, epochs, log=None):
        """On resume, refuse a run that already has its `epochs` (`done` of them restored), and
        say where it continues from."""
        if not self.resume:
            return
        if done >= epochs:
            raise RunError(f"{self.path} already has {done} epochs; ask for more epochs to "
                           "continue it (tfm-export re-exports it without training)")
        if log:
            log(f"resumed from {self.manager.latest_checkpoint} after epoch {done}")

    def save_checkpoint(self, number):
        try:
            self.manager.save(checkpoint_number=number)
        except (OSError, tf.errors.OpError) as error:
            raise runs.unwritable(self.directory.path, error) from None

    def finish(self, final, export=None, model_name=None):
        """Write metrics.json's final; with `export(path)` also export to RUN/export/<model_name>/."""
        final = dict(final)
        epochs = self.metrics_log.epochs
        if epochs:
            final.setdefault("mean_seconds_per_epoch",
                             round(sum(e["seconds"] for e in epochs) / len(epochs), 3))
        if export is not None:
            try:
                final["export"] = str(runs.export_versioned(self.directory.export_base(), model_name, export))
            except OSError as error:
                raise runs.unwritable(self.directory.path, error) from None
        elif "export" in self.metrics_log.final:
            final["export"] = self.metrics_log.final["export"]
        try:
            self.metrics_log.set_final(final)
        except OSError as error:
            raise runs.unwritable(self.directory.path, error) from None
        return {"final": self.metrics_log.final, "epochs": self.metrics_log.epochs}
