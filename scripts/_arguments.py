"""The arguments several command-line tools share, and the argparse types they use.

Imports nothing heavy: building a parser never loads TensorFlow.
"""

import argparse


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
    """--run-dir, --resume and --no-export: the same in every training tool."""
    parser.add_argument("--run-dir", required=True,
                        help="where checkpoints, metrics, pictures and the export go")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --run-dir from its last checkpoint, with the "
                             "settings it was started with, to its own number of epochs unless "
                             "a new one is given")
    parser.add_argument("--no-export", action="store_true", help="skip the SavedModel export")


def add_contrastive_divergence_arguments(parser, defaults):
    """--k, --persistent, --learning-rate, --momentum, --weight-decay of RBM training."""
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


def cd_settings(args):
    """The contrastive-divergence settings of `add_contrastive_divergence_arguments`."""
    return {"k": args.k, "persistent": args.persistent, "learning_rate": args.learning_rate,
            "momentum": args.momentum, "weight_decay": args.weight_decay}


def positive_int(text):
    """An argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_split_arguments(parser):
    """Arguments that name a prepared MovieLens split (rbm-prepare, rbm-train)."""
    parser.add_argument("--release", default="ml-100k",
                        help="GroupLens release name: ml-100k, ml-1m, ml-10m, ml-20m, ml-25m, ml-32m, "
                             "ml-latest, ml-latest-small (default: %(default)s)")
    parser.add_argument("--split",
                        help="u1..u5, ua, ub (ML-100K's own splits) or holdout (default: u1 for "
                             "ml-100k, holdout for the other releases)")
    parser.add_argument("--test-per-user", type=int, default=10,
                        help="with --split holdout: ratings held out per user (users with more "
                             "than twice as many) (default: %(default)s)")
    parser.add_argument("--order", default="random",
                        help="with --split holdout: hold out random ratings (random) or each "
                             "user's latest (time) (default: %(default)s)")
    parser.add_argument("--split-seed", type=int, default=0,
                        help="with --split holdout --order random: seed of the choice (default: %(default)s)")
    parser.add_argument("--like-threshold", type=float, default=3.0,
                        help="a rating >= this is a like, below it a dislike (default: %(default)s)")
    parser.add_argument("--validation-per-user", type=int, default=5,
                        help="training ratings per user (of users with more than twice as many) "
                             "kept aside for early stopping and choosing settings (default: %(default)s)")
    parser.add_argument("--data-dir", required=True,
                        help="directory of the prepared TFRecords (rbm-prepare's --data-dir)")


def split_settings(args):
    """The keyword arguments of `load_movielens` / `prepare_movielens` that name the split."""
    return {"release": args.release, "split": args.split, "test_per_user": args.test_per_user,
            "order": args.order, "split_seed": args.split_seed,
            "like_threshold": args.like_threshold, "validation_per_user": args.validation_per_user}


STRATEGIES = ("default", "mirrored", "multi-worker")  # pipelines.distribute.STRATEGIES


def add_strategy_argument(parser):
    """--strategy: where training runs (one device, every local device, several workers)."""
    parser.add_argument("--strategy", choices=STRATEGIES, default="default",
                        help="default: one device; mirrored: every local GPU (or logical CPU "
                             "device); multi-worker: one process per worker, the cluster in "
                             "TF_CONFIG, every worker running the same command, the chief "
                             "(worker 0) writing the run (default: %(default)s)")
