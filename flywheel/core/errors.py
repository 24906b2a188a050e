"""One base class for every error flywheel raises on purpose.

Callers that want "any flywheel problem, not a bug" catch `FlywheelError`; each stage subclasses it
once per distinct situation (a bad file, a refused conversion, an unknown batch...). Classes that
also subclass `ValueError` / `RuntimeError` keep working with code that caught those before.
"""

from __future__ import annotations


class FlywheelError(Exception):
    """Base of all of flywheel's own errors: a message a person can act on, never a bare traceback."""


class InputError(FlywheelError, ValueError):
    """Input that cannot be used as it is: a file, a row, a request, a config value."""


class StateError(FlywheelError, RuntimeError):
    """The data home or a store is not in the state the operation needs (missing pointer, lost file)."""


class InvariantError(FlywheelError, RuntimeError):
    """A rule that must always hold did not (e.g. rows read != accepted + quarantined): a bug to report.

    Raised explicitly instead of `assert`, so it also holds under `python -O`.
    """


def require(condition: bool, message: str) -> None:
    """Raise `InvariantError(message)` when `condition` is false (an `assert` that `-O` keeps)."""
    if not condition:
        raise InvariantError(message)
