"""One short epoch of each trainable family on whatever devices TensorFlow sees.

    python benchmarks/device_check.py --ml100k-dir ../shared/data/ml-100k --mnist-dir ../shared/data/mnist
    python benchmarks/device_check.py ... --strategy mirrored              # every local GPU
    python benchmarks/device_check.py ... --strategy mirrored --logical-cpus 2   # no GPU: 2 CPU replicas
    TF_CONFIG=... python benchmarks/device_check.py ... --strategy multi-worker  # on every worker

Prints the devices, the strategy's replicas, where the first weight matrix of each model lives
and the seconds of its training epoch (as the run's metrics.json records it, evaluation
excluded): the RBM recommender on ML-100K u1 and the dense autoencoder on MNIST. Runs go to a
temporary directory and are not exported.
"""

import argparse
import json
import pathlib
import sys
import tempfile

import tensorflow as tf

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from pipelines import distribute  # noqa: E402


def placement(strategy, variable):
    if strategy is None:
        return [variable.device]
    return [part.device for part in strategy.experimental_local_results(variable)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ml100k-dir", type=pathlib.Path, required=True)
    parser.add_argument("--mnist-dir", type=pathlib.Path, required=True)
    parser.add_argument("--strategy", choices=distribute.STRATEGIES, default="default")
    parser.add_argument("--logical-cpus", type=int, default=0,
                        help="split the CPU into this many logical devices (to try mirrored without a GPU)")
    parser.add_argument("--rbm-batch-size", type=int, default=32)
    parser.add_argument("--ae-batch-size", type=int, default=256)
    parser.add_argument("--work-dir", type=pathlib.Path,
                        help="where to prepare the data (default: a temporary directory)")
    args = parser.parse_args(argv)
    if args.logical_cpus:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * args.logical_cpus)

    from autoencoders_tf import AutoencoderConfig
    from autoencoders_tf import train_autoencoder
    from pipelines import prepare_images
    from pipelines import prepare_movielens
    from rbm_tf import Recommender
    from rbm_tf import RecommenderConfig
    from rbm_tf import train_recommender

    strategy = distribute.make_strategy(args.strategy)
    kind, index = distribute.task()
    print(f"tensorflow {tf.__version__}; devices: "
          f"{[device.name for device in tf.config.list_logical_devices()]}")
    print(f"strategy {args.strategy}: {distribute.num_replicas(strategy)} replicas"
          + (f", this is {kind} {index}" if args.strategy == "multi-worker" else ""))
    with tempfile.TemporaryDirectory() as scratch:
        work = args.work_dir or pathlib.Path(scratch)
        results = {}
        movielens = prepare_movielens("ml-100k", args.ml100k_dir, work / "movielens", split="u1")
        config = RecommenderConfig(epochs=1, batch_size=args.rbm_batch_size)
        with distribute.scope(strategy):  # only to show where the weights go
            probe = Recommender(movielens.num_movies, config, strategy=strategy)
        print(f"rbm weights on {placement(strategy, probe.rbm.weights)}")
        run = train_recommender(movielens, pathlib.Path(scratch) / f"rbm-{index}", config, export=False,
                                strategy=strategy)
        results["rbm_seconds_per_epoch"] = run["epochs"][0]["seconds"]
        results["rbm_users_per_second"] = round(movielens.train.num_users / run["epochs"][0]["seconds"], 1)

        images = prepare_images("mnist", work / "mnist", args.mnist_dir)
        config = AutoencoderConfig(model="dense", epochs=1, batch_size=args.ae_batch_size)
        run = train_autoencoder(config, images, pathlib.Path(scratch) / f"ae-{index}", export=False,
                                strategy=strategy)
        results["ae_seconds_per_epoch"] = run["epochs"][0]["seconds"]
        results["ae_images_per_second"] = round(60000 / run["epochs"][0]["seconds"], 1)
    print(json.dumps({"strategy": args.strategy, "replicas": distribute.num_replicas(strategy),
                      "task": [kind, index], **results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
