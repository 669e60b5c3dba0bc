"""Errors a user can fix (a bad path, a bad argument, a run that diverged), one class tree.

Imports nothing, so that a command-line tool can catch them before TensorFlow is loaded: the
tools print such an error as one line on stderr and exit with status 2.
"""


class UserError(Exception):
    """An error whose message is meant for the user: printed as one line, never a traceback."""


class MovieLensError(UserError):
    """A MovieLens directory or file that cannot be used, said in one line the user can act on."""


class IdxError(UserError):
    """An IDX image file or directory that cannot be used."""


class RunError(UserError):
    """A run directory that cannot be used as asked (no checkpoint, an earlier run, a file)."""


class DivergedError(RunError):
    """Training produced a non-finite metric: the run stops before saving or exporting it."""
