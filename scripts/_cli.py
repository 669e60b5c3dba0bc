"""What every command-line tool shares: parse first, then load TensorFlow quietly, run one
library call, and turn the errors a user can fix into one line.

Nothing here imports TensorFlow, so `--help` and argument errors answer at once.
"""

import argparse
import os
import re
import sys
import tempfile

from pipelines.errors import UserError

# TensorFlow's C++ start-up lines that say nothing to a user (absl's pre-init notice, the CPU
# feature banner, "no CUDA driver" on a machine without a GPU); real warnings still print
_STARTUP_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|I\d{4} .*"
    r"|[EW]\d{4} .*(cuda|cuInit|CUDA|cudart|cuDNN|cuFFT|cuBLAS|TensorRT).*"
    r"|To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\.)$")


def load_tensorflow():
    """Import TensorFlow and initialise its devices with the start-up noise filtered out.

    TensorFlow writes these lines from C++ straight to file descriptor 2 before its logging is
    configured (TF_CPP_MIN_LOG_LEVEL does not reach them): they are captured while TensorFlow
    starts, and every other line is written to stderr afterwards.
    """
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    sys.stderr.flush()
    fd = 2
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), fd)
        try:
            import tensorflow as tf
            tf.config.list_physical_devices()
        finally:
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
        captured.seek(0)
        lines = captured.read().decode("utf-8", errors="replace").splitlines()
    kept = [line for line in lines if line.strip() and not _STARTUP_NOISE.match(line)]
    if kept:
        print("\n".join(kept), file=sys.stderr)


def _long_flags(parser):
    """{argument name: its first long flag} of a parser and of its subcommands' parsers."""
    flags = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                flags.update(_long_flags(subparser))
        long = [flag for flag in action.option_strings if flag.startswith("--")]
        if long and action.dest != "help":
            flags.setdefault(action.dest, long[0])
    return flags


def flag_names(message, parser):
    """A library message that starts with an argument's name (``learning_rate must be
    positive``) with the tool's flag instead (``--learning-rate must be positive``).

    Only the start of the message is changed: the rest may quote a file or a server.
    """
    name = re.match(r"[a-z_]+(?= must| given| needs| takes)", message)
    flags = _long_flags(parser)
    if name and name.group(0) in flags:
        return flags[name.group(0)] + message[name.end():]
    return message


def run(parser, body, argv=None, tensorflow=True):
    """Parse `argv`, load TensorFlow, run `body(args)`; user errors -> one line, exit 2.

    `tensorflow` (a bool, or a function of the parsed arguments) says whether the command needs
    TensorFlow, which is then loaded with its start-up noise filtered. Ctrl-C exits 130 and says
    that the run's last checkpoint is kept.
    """
    args = parser.parse_args(argv)
    try:
        if tensorflow(args) if callable(tensorflow) else tensorflow:
            load_tensorflow()
        return body(args)
    except UserError as error:
        print(f"error: {flag_names(str(error), parser)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: the last checkpoint is kept; rerun with --resume to continue",
              file=sys.stderr)
        sys.exit(130)


def config_of(config_class, **settings):
    """`config_class(**settings)`, its ValueError (a bad setting) as a UserError."""
    try:
        return config_class(**settings)
    except ValueError as error:
        raise UserError(str(error)) from None


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
