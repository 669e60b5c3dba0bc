"""Training beyond one device: which `tf.distribute` strategy a run uses, and who writes.

    strategy = make_strategy("mirrored")         # every local GPU (or logical CPU device)
    train_recommender(data, run_dir, strategy=strategy)
    train_autoencoder(config, data, run_dir, strategy=strategy)

* "default": no strategy (None): one device, the single-device code paths unchanged.
* "mirrored": `tf.distribute.MirroredStrategy` over every local GPU, or over the logical CPU
  devices when there is no GPU (`tf.config.set_logical_device_configuration`; one CPU device
  is one replica).
* "multi-worker": `tf.distribute.MultiWorkerMirroredStrategy`, the cluster given by the
  ``TF_CONFIG`` environment variable of each worker process (one process per worker; every
  worker runs the same command). Worker 0 is the chief.

Every worker trains; only the chief writes the run directory (checkpoints, metrics, export).
The others write to a temporary directory of their own, removed at the end, as TensorFlow's
multi-worker guide does: saving can need every worker, so each one saves somewhere.
"""

import contextlib
import json
import os
import shutil
import tempfile

import tensorflow as tf

from pipelines.errors import UserError

STRATEGIES = ("default", "mirrored", "multi-worker")


def make_strategy(name):
    """The `tf.distribute.Strategy` called `name` (one of `STRATEGIES`); None for "default"."""
    if name not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {name!r}")
    if name == "default":
        return None
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    if not os.environ.get("TF_CONFIG"):
        raise UserError("strategy multi-worker needs the TF_CONFIG environment variable "
                         "(the cluster and this worker's task)")
    return tf.distribute.MultiWorkerMirroredStrategy()


def scope(strategy):
    """`strategy.scope()`, or nothing for None: where a model's variables must be made."""
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def num_replicas(strategy):
    return 1 if strategy is None else strategy.num_replicas_in_sync


def task():
    """(task type, index) of this process in TF_CONFIG; ("chief" or "worker", 0) alone."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    found = config.get("task", {})
    return found.get("type", "worker"), int(found.get("index", 0))


def is_chief(strategy):
    """Whether this process writes the run: always without a multi-worker strategy."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    kind, index = task()
    return kind == "chief" or (kind == "worker" and index == 0)


@contextlib.contextmanager
def writable_run_dir(strategy, run_dir, resume=False):
    """The directory this process writes the run to: `run_dir` on the chief, a temporary
    directory elsewhere (removed on exit), holding a copy of `run_dir` when resuming (which
    then must be readable by every worker, a shared filesystem)."""
    if is_chief(strategy):
        yield run_dir
        return
    scratch = tempfile.mkdtemp(prefix=f"worker-{task()[1]}-")
    directory = os.path.join(scratch, "run")
    try:
        if resume:
            shutil.copytree(run_dir, directory)
        yield directory
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def replica_share(total, replica, replicas):
    """[start, end) of `replica`'s share of `total` items split as evenly as possible."""
    return (total * replica) // replicas, (total * (replica + 1)) // replicas


def shardable(dataset):
    """`dataset` set to be split among workers by its elements, each global batch kept whole
    (batches of a dataset read from one source cannot be split by file)."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)
