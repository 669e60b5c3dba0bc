"""What every family's settings dataclass shares: checks that name the argument, and the
round trip through a run's run_config.json. Imports nothing, so configs stay TensorFlow-free.

Errors name the arguments (``learning_rate must be positive``); a command-line tool maps them
to its flags.
"""

import dataclasses


def at_least(name, value, minimum):
    """ValueError naming `name` unless value >= minimum."""
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")


def positive(name, value):
    """ValueError naming `name` unless value > 0 (written so that nan fails too)."""
    if not value > 0:
        raise ValueError(f"{name} must be positive, got {value}")


def one_of(name, value, choices):
    """ValueError naming `name` unless `value` is among `choices`."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


class StoredSettings:
    """A settings dataclass that a run stores in run_config.json beside other entries."""

    @classmethod
    def from_dict(cls, stored):
        """The settings among the entries of `stored` (a run_config.json), other keys ignored."""
        fields = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in stored.items() if key in fields})
