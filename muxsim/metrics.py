"""The metrics every result reports, and their names (one definition for all of them).

Per request: TTFT = first token - arrival; TPOT = (finish - first token) /
(output_len - 1) (undefined, NaN, for one-token answers); end-to-end = finish - arrival;
all in milliseconds.

Per set of requests (:func:`metrics`): counts, offered and served rates, and for each
latency a summary ``{"mean", "p50", "p90", "p99"}`` (more percentiles on request, keyed
``p99.9``), over the requests that finished (``None`` when none did). SLO attainment
comes in two kinds, both over every request that arrived (unfinished ones miss):

- ``slo_attainment``: per SLO scale ``s`` (keys ``"1"``, ``"2"``, ...), the fraction whose
  end-to-end latency is at most ``s`` times its latency alone on a dedicated mesh
  (MuxServe's definition);
- ``slo``: against the absolute targets a team writes down (``ttft_ms``, ``tpot_ms``,
  ``e2e_ms``; per model or for the whole workload): ``attainment`` (all given targets
  met), one ``<metric>_attainment`` per target, the ``target_attainment`` and the
  verdicts read from it: ``met`` (attainment reaches the target; ``None`` without
  absolute targets) and ``min_scale`` (the smallest SLO scale whose attainment reaches
  the target; ``None`` when none does).

Names. The results document nests (``aggregate.ttft_ms.p99``); every flat table (CSV,
Parquet, the text tables) names a column by the same path joined with dots
(``ttft_ms.p99``, ``slo_attainment.8``, ``slo.met``): :func:`flatten` does it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

LATENCIES = ("ttft_ms", "tpot_ms", "e2e_ms")  # per-request latency columns, and the SLO target names
PERCENTILES = (50.0, 90.0, 99.0)  # always reported; more on request
DEFAULT_SCALES = (1.0, 2.0, 4.0, 8.0, 16.0)
DEFAULT_TARGET_ATTAINMENT = 0.99
_TOL = 1 + 1e-9  # a latency equal to its bound (up to rounding) meets it


def pct_key(p: float) -> str:
    """``50 -> "p50"``, ``99.9 -> "p99.9"``."""
    return f"p{int(p)}" if float(p).is_integer() else f"p{float(p)!r}"


def scale_key(s: float) -> str:
    """``8.0 -> "8"``, ``1.5 -> "1.5"``: the keys of ``slo_attainment``."""
    return str(int(s)) if float(s).is_integer() else repr(float(s))


def percentile_list(extra: Iterable[float] | None = None) -> tuple[float, ...]:
    """The reported percentiles: p50, p90, p99 and ``extra`` (each in (0, 100)), sorted."""
    from muxsim.errors import InputError

    ps = set(PERCENTILES)
    for p in extra or ():
        x = float(p)
        if not (math.isfinite(x) and 0 < x < 100):
            raise InputError(f"percentiles: each must be in (0, 100), got {p!r}")
        ps.add(x)
    return tuple(sorted(ps))


def parse_percentiles(text: str | None, field: str = "--percentiles") -> tuple[float, ...]:
    """``"95,99.9"`` -> the reported percentiles (p50, p90, p99 always included)."""
    from muxsim.errors import InputError

    if not text:
        return PERCENTILES
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"{field}: expected numbers separated by commas, e.g. 95,99.9, got {text!r}") from None
    try:
        return percentile_list(values)
    except InputError as e:
        raise InputError(f"{field}: {str(e).split(': ', 1)[1]}") from None


def summary(x: np.ndarray, percentiles: Sequence[float] = PERCENTILES) -> dict[str, float | None]:
    """``{"mean", "p50", ...}`` over the finite values of ``x`` (``None`` when there are none)."""
    x = x[np.isfinite(x)]
    keys = ["mean", *(pct_key(p) for p in percentiles)]
    if not len(x):
        return dict.fromkeys(keys)
    q = np.percentile(x, list(percentiles))
    return {"mean": float(np.mean(x)), **{pct_key(p): float(v) for p, v in zip(percentiles, q)}}


def no_targets(target_attainment: float = DEFAULT_TARGET_ATTAINMENT) -> dict[str, float | None]:
    """SLO targets of a workload that sets no absolute ones."""
    return {**dict.fromkeys(LATENCIES), "target_attainment": target_attainment}


def metrics(df: Any, window_s: float, scales: Sequence[float], *,
            targets: Mapping[str, Mapping[str, float | None]] | None = None,
            target_attainment: float = DEFAULT_TARGET_ATTAINMENT,
            percentiles: Sequence[float] = PERCENTILES) -> dict[str, Any]:
    """Metrics of a set of requests (a table with the columns of ``Results.to_frame()``);
    rates over the arrival window ``window_s``. ``targets`` maps an LLM name to its
    absolute SLO targets (``ttft_ms``, ``tpot_ms``, ``e2e_ms``, ``target_attainment``;
    ``None`` for none); ``target_attainment`` is the set's own target."""
    fin = df["finished"].to_numpy(dtype=bool)
    e2e = df["e2e_ms"].to_numpy(dtype=float)
    n = len(df)
    served = fin & (df["finish_s"].to_numpy(dtype=float) <= window_s)
    served_tokens = int(df["output_len"].to_numpy()[served].sum())
    rate = (lambda k: k / window_s) if window_s > 0 else (lambda k: 0.0)
    slo_ms = df["slo_ms"].to_numpy(dtype=float)
    att = {scale_key(s): (float((fin & (e2e <= s * slo_ms * _TOL)).sum() / n) if n else 0.0) for s in scales}
    out: dict[str, Any] = {
        "requests": n,
        "completed": int(fin.sum()),
        "offered_rps": rate(n),
        "throughput_rps": rate(int(served.sum())),
        "tokens_per_s": rate(served_tokens),
    }
    for col in LATENCIES:
        out[col] = summary(df[col].to_numpy(dtype=float), percentiles)
    out["slo_attainment"] = att
    out["slo"] = _absolute(df, fin, targets or {}, target_attainment, att, scales)
    return out


def _absolute(df: Any, fin: np.ndarray, targets: Mapping[str, Mapping[str, float | None]], target: float,
              att: dict[str, float], scales: Sequence[float]) -> dict[str, Any]:
    n = len(df)
    names = df["name"].astype(str).to_numpy()
    own = {k: _common(targets, names, k) for k in LATENCIES}
    block: dict[str, Any] = {"target_attainment": target, **own}
    ok_all = fin.copy()
    given = False
    for k in LATENCIES:
        bound = np.array([_target(targets, x, k) for x in names], dtype=float) if n else np.zeros(0)
        has = np.isfinite(bound)
        if not has.any():
            block[f"{k.removesuffix('_ms')}_attainment"] = None
            continue
        given = True
        v = df[k].to_numpy(dtype=float)
        # a request without this target, or without this metric (TPOT of a one-token answer), passes it
        ok = fin & (~has | ~np.isfinite(v) | (v <= bound * _TOL))
        ok_all &= ok
        block[f"{k.removesuffix('_ms')}_attainment"] = float(ok.sum() / n)
    block["attainment"] = float(ok_all.sum() / n) if given and n else None
    block["met"] = None if block["attainment"] is None else bool(block["attainment"] >= target - 1e-12)
    block["min_scale"] = next((float(s) for s in sorted(scales) if att[scale_key(s)] >= target - 1e-12), None)
    return block


def _target(targets: Mapping[str, Mapping[str, float | None]], name: str, key: str) -> float:
    v = targets.get(name, {}).get(key)
    return math.nan if v is None else float(v)


def _common(targets: Mapping[str, Mapping[str, float | None]], names: np.ndarray, key: str) -> float | None:
    """The target of ``key`` shared by every LLM in ``names`` (``None`` if they differ or none is set)."""
    vals = {targets.get(x, {}).get(key) for x in dict.fromkeys(names.tolist())}
    return vals.pop() if len(vals) == 1 else None


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested metrics dict as one level, keys joined with dots (``ttft_ms.p99``)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def unflatten(d: Mapping[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`flatten` for keys split at their first dot (``ttft_ms.p99.9``
    -> ``{"ttft_ms": {"p99.9": ...}}``)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        group, dot, leaf = k.partition(".")
        if dot:
            out.setdefault(group, {})[leaf] = v
        else:
            out[k] = v
    return out
