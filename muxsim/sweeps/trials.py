"""A sweep file expanded into trials: frozen, JSON-serializable, each named by a hash.

A trial is the flat mapping ``dotted parameter -> value`` of one point of the grid
(``workload.alpha``, ``algorithm``, ``config.flex_policy``, ...). Its id hashes the
trial, the content of every file it names and muxsim's version, so a finished trial is
recognised on a rerun and redone when anything it depends on changes.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from muxsim import __version__
from muxsim.errors import InputError
from muxsim.limits import MAX_TRIALS
from muxsim.metrics import flatten
from muxsim.sweeps.spec import SECTIONS, SweepSpec, TrialParams, shown, spec_error


@dataclass(frozen=True)
class Trial:
    """One point of a sweep: ``params`` (dotted key -> JSON value) and its ``id``."""

    index: int
    id: str
    params: tuple[tuple[str, Any], ...]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.params)

    def nested(self) -> dict[str, Any]:
        return nest(self.as_dict())


def nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"workload.alpha": 1}`` -> ``{"workload": {"alpha": 1}}`` (later keys win)."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        parts = key.split(".")
        d = out
        for p in parts[:-1]:
            if not isinstance(d.get(p), dict):
                d[p] = {}
            d = d[p]
        d[parts[-1]] = value
    return out


def count_trials(spec: SweepSpec) -> int:
    """How many trials ``spec`` expands to (before duplicates are merged)."""
    n = max(1, len(spec.cases))
    for values in spec.grid.values():
        n *= len(values)
        if n > MAX_TRIALS * 1000:  # the product is only compared with a limit
            break
    return n


def _check_value(value: Any, where: str, depth: int = 0) -> None:
    """Only JSON's kinds (YAML may give dates, bytes and non-finite floats)."""
    if depth > 20:
        raise InputError(f"{where}: nested too deeply")
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"{where}: must be a finite number, got {value!r}")
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise InputError(f"{where}: keys must be text, got {type(k).__name__}")
            _check_value(v, f"{where}.{shown(k)}", depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_value(v, f"{where}[{i}]", depth + 1)
    elif value is not None and not isinstance(value, bool | int | float | str):
        raise InputError(f"{where}: {type(value).__name__} is not accepted here (quote it to give text)")


def _check_key(key: str, where: str) -> None:
    head = key.split(".", 1)[0]
    if head not in SECTIONS or any(not p for p in key.split(".")):
        raise InputError(f"{where}: unknown parameter {key[:80]!r} (it starts with one of {', '.join(SECTIONS)})")


def _flat_params(nested: dict[str, Any]) -> dict[str, Any]:
    """Dotted keys down to the leaves; lists (``slo_scales``) stay whole."""
    return dict(sorted(flatten(nested).items()))


def _origin(loc: str, case: int | None, case_keys: set[str], grid_keys: set[str]) -> str:
    def hits(keys: set[str]) -> bool:
        return any(loc == k or loc.startswith(k + ".") or k.startswith(loc + ".") for k in keys)

    if case is not None and hits(case_keys):
        return f"cases[{case}]."
    return "grid." if hits(grid_keys) else "base."


PATH_KEYS = ("workload.path", "plan", "cost.params", "cost.profile")  # parameters naming a file


def expand(spec: SweepSpec, max_trials: int = MAX_TRIALS, root: str | None = None) -> list[Trial]:
    """Every trial of ``spec``, in order (cases, then the grid's axes as written),
    duplicates merged; InputError naming the field for anything a trial cannot take.
    Relative file paths are taken from ``root`` (the sweep file's folder) when given."""
    n = count_trials(spec)
    if n > max_trials:
        raise InputError(f"grid: the sweep expands to {'more than ' if n > max_trials * 1000 else ''}{n:,} trials, "
                         f"more than the limit of {max_trials:,} (raise it with --max-trials)")
    _check_value(spec.base, "base")
    for key, values in spec.grid.items():
        _check_key(key, f"grid.{shown(key)}")
        _check_value(values, f"grid.{shown(key)}")
    for i, case in enumerate(spec.cases):
        for key, value in case.items():
            _check_key(key, f"cases[{i}].{shown(key)}")
            _check_value(value, f"cases[{i}].{shown(key)}")
    for key in spec.base:
        _check_key(key, f"base.{shown(key)}")
    from muxsim.sweeps.checks import check_trial

    base = {k: v for k, v in flatten(spec.base).items()}
    axes = list(spec.grid)
    trials: list[Trial] = []
    seen: set[str] = set()
    checked: dict[str, str] = {}  # trial JSON -> id (checks and file hashes done once)
    cases: list[tuple[int | None, dict[str, Any]]] = list(enumerate(spec.cases)) or [(None, {})]
    for case_no, case in cases:
        for combo in itertools.product(*(spec.grid[a] for a in axes)):
            flat = {**base, **dict(zip(axes, combo)), **case}
            for k in PATH_KEYS:
                if root is not None and isinstance(flat.get(k), str) and not os.path.isabs(flat[k]):
                    flat[k] = os.path.join(root, flat[k])
            try:
                params = TrialParams.model_validate(nest(flat))
            except ValidationError as e:
                loc = ".".join(str(p) for p in e.errors()[0]["loc"])
                raise spec_error(e, _origin(loc, case_no, set(case), set(axes))) from None
            dumped = params.model_dump(exclude_none=True)
            key = json.dumps(dumped, sort_keys=True)
            if key not in checked:
                try:
                    files = check_trial(params)
                except InputError as e:
                    loc = str(e).split(":", 1)[0]
                    raise InputError(f"{_origin(loc, case_no, set(case), set(axes))}{e}") from None
                checked[key] = trial_id(params.model_dump(exclude_defaults=True), files)
            tid = checked[key]
            if tid in seen:
                continue
            seen.add(tid)
            trials.append(Trial(len(trials), tid, tuple(_flat_params(dumped).items())))
    return trials


def trial_id(params: dict[str, Any], files: Mapping[str, str]) -> str:
    """16 hex digits of SHA-256 over the trial (the parameters that differ from their
    defaults, so that a new parameter keeps old ids), its files' digests and muxsim's
    version (a changed default comes with a new version)."""
    doc = json.dumps({"params": params, "files": dict(files), "muxsim": __version__}, sort_keys=True,
                     allow_nan=False)
    return hashlib.sha256(doc.encode()).hexdigest()[:16]
