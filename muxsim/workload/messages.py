"""Pydantic's complaints as one line naming the field: ``models[3].rate: must be > 0, got -1``.

The one place where validation errors of the workload schema become
:class:`muxsim.errors.InputError` messages (the CLI prints them as ``error: ...``).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from muxsim.errors import InputError, short_repr

from .arrivals import PROCESSES
from .lengths import DISTRIBUTIONS

_TAGS = {"dist": DISTRIBUTIONS, "process": PROCESSES}
_TAGGED = {"prompt_len", "output_len", "arrivals"}


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    prev: Any = None
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif prev in _TAGGED and (part in DISTRIBUTIONS or part in PROCESSES):
            pass  # pydantic's name for the union member, not a field
        else:
            out += f".{part}" if out else str(part)
        prev = part
    return out


def _short(v: Any) -> str:
    return short_repr(v, 60)


def _message(err: Any) -> str:
    kind, ctx, given = err["type"], err.get("ctx") or {}, err.get("input")
    if kind == "missing":
        return "missing"
    if kind == "extra_forbidden":
        return "unknown field"
    bounds = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
    if kind in bounds:
        limit = next(iter(ctx.values()))
        shown = str(int(limit)) if float(limit).is_integer() and abs(limit) < 1e15 else f"{limit:g}"
        return f"must be {bounds[kind]} {shown}, got {_short(given)}"
    if kind == "finite_number":
        return f"must be finite, got {_short(given)}"
    if kind in ("float_type", "float_parsing"):
        return f"must be a number, got {_short(given)}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"must be an integer, got {_short(given)}"
    if kind == "string_type":
        return f"must be a string, got {_short(given)}"
    if kind in ("tuple_type", "list_type"):
        return f"must be a list, got {_short(given)}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be an object, got {_short(given)}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "too_short":
        return "must not be empty" if ctx.get("min_length", 1) <= 1 else f"needs at least {ctx['min_length']} items"
    if kind == "too_long":
        return f"may hold at most {ctx.get('max_length')} items"
    if kind == "string_too_long":
        return f"may have at most {ctx.get('max_length')} characters"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        key = ctx.get("discriminator", "").strip("'")
        what = "distribution" if key == "dist" else "arrival process"
        known = ", ".join(_TAGS.get(key, ()))
        if kind == "union_tag_not_found":
            return f"missing {key!r} (the {what}: one of {known})"
        return f"unknown {what} {ctx.get('tag')!r} (known: {known})"
    if kind == "literal_error":
        return f"must be {ctx.get('expected')}, got {_short(given)}"
    msg = str(err.get("msg", kind))
    return msg.removeprefix("Value error, ")


def input_error(e: ValidationError) -> InputError:
    """The first of pydantic's errors as ``InputError('<field.path>: <what is wrong>')``."""
    err = e.errors()[0]
    path = _path(tuple(err["loc"]))
    msg = _message(err)
    if not path:  # a model-level check already names its field
        return InputError(msg)
    return InputError(f"{path}: {msg}")
