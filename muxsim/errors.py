"""The one exception type for bad input.

Everything that a user can get wrong (a field of a workload, an unknown model or GPU,
a batch below one) raises :class:`InputError` with a message that names the field.
The command line turns it into one line ``error: <message>`` and exit status 2; any
other exception is a bug (exit status 1).
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input, reported to the user as ``error: <message>`` (exit status 2)."""


class InputTypeError(InputError, TypeError):
    """An argument of the wrong kind (``None`` where a workload belongs): an InputError
    that ``except TypeError`` catches too."""


class InputWarning(UserWarning):
    """Input muxsim accepted but changed (a request cut to its model's context window);
    the command line prints it as one line ``warning: <message>``."""


COST_METHODS = ("forward_terms", "forward_ms", "prefill_ms", "decode_ms")  # what makes a cost model


def expect_model(value: object, name: str, methods: tuple[str, ...], what: str) -> None:
    """``value`` None, or an object with one of ``methods`` (a cost or memory model);
    otherwise :class:`InputTypeError` ``<name>: expected <what>, got <type>``."""
    if value is not None and not any(hasattr(value, m) for m in methods):
        raise InputTypeError(f"{name}: expected {what}, got {type(value).__name__}")


def check_positive(value: float, field: str, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a float if it is finite and > 0 (>= 0 with ``allow_zero``)."""
    if isinstance(value, bool):
        raise InputError(f"{field}: must be a number, got {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"{field}: must be a number, got {short_repr(value)}") from None
    if x != x or x in (float("inf"), float("-inf")):
        raise InputError(f"{field}: must be finite, got {value!r}")
    if allow_zero and x < 0:
        raise InputError(f"{field}: must be >= 0, got {value!r}")
    if not allow_zero and x <= 0:
        raise InputError(f"{field}: must be > 0, got {value!r}")
    return x


def check_fields(d: object, cls: type, where: str, *, expected: str = "an object", noun: str = "field(s)",
                 list_known: bool = False) -> dict:
    """``d`` as a dict whose keys are all fields of the dataclass ``cls``; otherwise an
    InputError: ``<where>: expected <expected>`` or ``<where>: unknown <noun> a, b``
    (with ``list_known``, followed by the known ones)."""
    from dataclasses import fields

    if not isinstance(d, dict):
        raise InputError(f"{where}: expected {expected}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        tail = f" (known: {', '.join(sorted(known))})" if list_known else ""
        raise InputError(f"{where}: unknown {noun} {', '.join(unknown)}{tail}")
    return d


def short_repr(v: object, width: int = 40) -> str:
    """``repr(v)``, cut to ``width`` characters (with "...") for one-line messages."""
    r = repr(v)
    return r if len(r) <= width else r[:width - 3] + "..."
