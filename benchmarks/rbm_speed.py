"""Speed of the RBM recommender on ML-100K u1, against this machine's own matmul rate.

    python benchmarks/rbm_speed.py --raw-dir ../shared/data/ml-100k [--epochs 5 --k 1 --hidden 100]

Prepares the u1 records (in a temporary directory unless --data-dir is given), trains a few
epochs with the default settings and reports seconds per epoch, users per second, and the
achieved GFLOP/s of the contrastive-divergence matmuls as a fraction of two ceilings measured
in the same run: a large square float32 matmul, and the same matmul shapes the CD step uses.
"""

import argparse
import json
import pathlib
import sys
import tempfile
import time

import tensorflow as tf

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from pipelines import prepare_movielens  # noqa: E402
from rbm_tf import RBM  # noqa: E402
from rbm_tf import CDTrainer  # noqa: E402
from rbm_tf import RecommenderConfig  # noqa: E402


def matmul_gflops(m, k, n, seconds=2.0):
    """Sustained float32 GFLOP/s of an [m, k] @ [k, n] matmul on this machine."""
    a = tf.random.normal([m, k])
    b = tf.random.normal([k, n])
    step = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
    step()
    repeats, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        step().numpy()
        repeats += 1
    return 2.0 * m * k * n * repeats / (time.perf_counter() - started) / 1e9


def cd_step_flops(batch, units, hidden, k):
    """Matmul FLOPs of one training step: CD-k (positive pass, k up-down steps, two gradient
    outer products) plus the up-down pass of the reconstruction monitor."""
    return 2.0 * batch * units * hidden * (1 + 2 * k + 2 + 2)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raw-dir", required=True, type=pathlib.Path, help="the ml-100k directory")
    parser.add_argument("--data-dir", type=pathlib.Path, help="prepared records (default: a temporary directory)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--k", type=int, default=RecommenderConfig.k)
    parser.add_argument("--hidden", type=int, default=RecommenderConfig.hidden)
    parser.add_argument("--batch-size", type=int, default=RecommenderConfig.batch_size)
    parser.add_argument("--visible", default=RecommenderConfig.visible)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as scratch:
        data_dir = args.data_dir or pathlib.Path(scratch)
        data = prepare_movielens("ml-100k", args.raw_dir, data_dir, split="u1")
        num_movies, num_users = data.num_movies, data.train.num_users
        config = RecommenderConfig(hidden=args.hidden, k=args.k, batch_size=args.batch_size,
                                   visible=args.visible)
        rbm = RBM(num_movies, config.hidden, config.visible, seed=0)
        trainer = CDTrainer(rbm, config.cd_config(), batch_size=config.batch_size)
        train = data.train.dataset(config.batch_size, shuffle_seed=0).cache()
        units = num_movies * rbm.units_per_visible

        epoch_seconds, flops = [], 0.0
        for epoch in range(args.epochs + 1):  # epoch 0 traces the graph and fills the cache
            started = time.perf_counter()
            epoch_flops = 0.0
            for batch in train:
                trainer.train_step(batch["inputs"], batch["inputs"] >= 0)["reconstruction_error"].numpy()
                epoch_flops += cd_step_flops(int(batch["inputs"].shape[0]), units, config.hidden, config.k)
            if epoch:
                epoch_seconds.append(time.perf_counter() - started)
                flops += epoch_flops

    seconds = sum(epoch_seconds) / len(epoch_seconds)
    achieved = flops / sum(epoch_seconds) / 1e9
    square = matmul_gflops(2048, 2048, 2048)
    same_shape = matmul_gflops(config.batch_size, units, config.hidden)
    result = {
        "setting": f"ML-100K u1, {num_users} users, {num_movies} movies, visible={config.visible}, "
                   f"hidden={config.hidden}, k={config.k}, batch={config.batch_size}",
        "seconds_per_epoch": round(seconds, 3),
        "users_per_second": round(num_users / seconds, 1),
        "cd_gflops": round(achieved, 2),
        "machine_matmul_gflops_2048": round(square, 2),
        "machine_matmul_gflops_same_shape": round(same_shape, 2),
        "fraction_of_square_matmul": round(achieved / square, 3),
        "fraction_of_same_shape_matmul": round(achieved / same_shape, 3),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
