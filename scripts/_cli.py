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
