"""The one exception type for bad input.

Everything that a user can get wrong (a field of a workload, an unknown model or GPU,
a batch below one) raises :class:`InputError` with a message that names the field.
The command line turns it into one line ``error: <message>`` and exit status 2; any
other exception is a bug (exit status 1).
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input, reported to the user as ``error: <message>`` (exit status 2)."""


def check_positive(value: float, field: str, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a float if it is finite and > 0 (>= 0 with ``allow_zero``)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{field}: must be a number, got {value!r}") from None
    if x != x or x in (float("inf"), float("-inf")):
        raise InputError(f"{field}: must be finite, got {value!r}")
    if allow_zero and x < 0:
        raise InputError(f"{field}: must be >= 0, got {value!r}")
    if not allow_zero and x <= 0:
        raise InputError(f"{field}: must be > 0, got {value!r}")
    return x
