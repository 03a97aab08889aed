"""Interference between jobs co-running on one mesh: the model every part of muxsim
uses (the simulator's runtime, the policies' steady states, the placement estimator)
and its fit to measurements.

A job brings its SM share ``sm``, its kernel fraction ``kernel`` (time on SMs over
total time, alone) and its HBM demand ``hbm`` (fraction of its time spent streaming
at full bandwidth, alone), from the cost model's ``forward_terms``
(:func:`job_inputs`). :func:`slowdown` says how many times slower than alone a job runs
while jobs of given summed shares and demands run together (:class:`InterferenceParams`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from muxsim.errors import InputError, InputTypeError


@dataclass(frozen=True)
class InterferenceParams:
    """How co-running jobs on one mesh slow each other down.

    A job alone at SM share ``s`` takes ``T = forward_ms(..., sm=s)`` (the cost model's
    truth), split by ``forward_terms`` into a kernel part ``K = T - comm - overhead``
    and an HBM demand ``d = min(1, memory_ms / T)`` (the fraction of its time it
    streams at full bandwidth). With jobs J running together, ``S = sum of SM shares``
    and ``D = sum of d``, job j runs ``slowdown_j`` times slower than alone::

        slowdown_j = 1 + sm_coef * (K_j / T_j) * (max(1, S) - 1)
                       + hbm_coef * d_j * (max(1, D) - 1)

    SM shares above 100% stretch every job's kernels in proportion (MPS time-slices
    the oversubscribed SMs); HBM demands above 100% stretch the memory-bound part of
    each job in proportion to its own demand. A job alone is never slowed. Slowdowns
    are recomputed whenever a job starts or ends on the mesh.

    Known simplifications: the demand is the job's memory time at its own SM share,
    so a job whose share cannot draw the full bandwidth counts as streaming at full
    bandwidth (this overstates contention between small-share decodes, by about
    15% of the demand at a 0.5 share on the analytic A100 model); L2 contention and
    the ordering of kernels inside a step are not modelled; a decode job's demand is
    taken at the middle step of its run.
    """

    sm_coef: float = 1.0
    hbm_coef: float = 1.0

    def __post_init__(self) -> None:
        for f in ("sm_coef", "hbm_coef"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int | float) or not (math.isfinite(v) and 0 <= v <= 1e3):
                raise InputError(f"config.interference.{f}: must be a number in [0, 1000], got {v!r}")

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


DEFAULT_INTERFERENCE = InterferenceParams()


def slowdown(sm_total: float, hbm_total: float, kernel: float, hbm: float, params: Any) -> float:
    """Slowdown of one job given the summed SM shares and HBM demands of all co-runners
    (``params``: anything with ``sm_coef`` and ``hbm_coef``)."""
    return (1.0 + params.sm_coef * kernel * max(0.0, sm_total - 1.0)
            + params.hbm_coef * hbm * max(0.0, hbm_total - 1.0))


def slowdowns(jobs: Sequence[tuple[float, float, float]], params: InterferenceParams) -> list[float]:
    """``jobs``: (sm, kernel, hbm) per job. Returns one slowdown per job (1.0 alone)."""
    s = sum(j[0] for j in jobs)
    d = sum(j[2] for j in jobs)
    return [slowdown(s, d, k, h, params) for _, k, h in jobs]


def _inputs(terms: Any, floor: Callable[[Any, float], Any], unit: Callable[[Any], Any]) -> tuple[Any, Any, Any]:
    _, mem, comm, over, total = terms
    total = floor(total, 1e-12)
    return total, unit((total - comm - over) / total), unit(mem / total)


def job_inputs(terms: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(total ms, kernel fraction, HBM demand) of a job alone, from ``forward_terms``
    (arrays; without a total, the sum of the four parts)."""
    comp, mem, comm, over = (np.asarray(x, dtype=float) for x in terms[:4])
    total = np.asarray(terms[4], dtype=float) if len(terms) > 4 else comp + mem + comm + over
    return _inputs((comp, mem, comm, over, total), np.maximum, _clip01)


def job_inputs_float(terms: tuple[float, float, float, float, float]) -> tuple[float, float, float]:
    """:func:`job_inputs` of one step given as Python floats (the same formula and
    rounding, without numpy's per-call cost; the simulator's fast path)."""
    return _inputs(terms, max, _clip01_float)


def _clip01(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0.0, 1.0)


def _clip01_float(x: float) -> float:
    return min(max(x, 0.0), 1.0)


def fit_interference(path: str | Path, cost: Any = None) -> tuple[InterferenceParams, dict[str, Any]]:
    """Fit ``sm_coef`` and ``hbm_coef`` to a co-location CSV written by ``muxsim profile
    --interference`` (each row: a prefill job and a decode job timed alone and together).

    The model is linear in its two coefficients, so this is non-negative least squares
    over the measured slowdowns minus one, two equations a row. The report gives the
    median absolute error of the predicted slowdowns with the fitted and the default
    coefficients, and whether the rows' SM shares were enforced.
    """
    import pandas as pd
    from scipy.optimize import nnls

    from muxsim.costmodel import cost_model
    from muxsim.costmodel.profile import load_models_sidecar
    from muxsim.io import read_table
    from muxsim.limits import MAX_BATCH, MAX_GPUS_PER_NODE, MAX_STEP_MS, MAX_TOKENS, MIN_SM_SHARE
    from muxsim.models import resolve_model

    if cost is not None and not hasattr(cost, "forward_terms"):
        raise InputTypeError(f"cost: expected a cost model (with forward_terms), got {type(cost).__name__}")
    df = read_table(path, "interference", text_columns=["gpu", "model"])
    p = Path(path)
    need = ["gpu", "model", "tp", "prefill_sm_pct", "decode_sm_pct", "prefill_batch", "prefill_seq_len",
            "decode_batch", "decode_seq_len", "prefill_alone_ms", "prefill_colocated_ms", "decode_alone_ms",
            "decode_colocated_ms"]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise InputError(f"interference {p.name!r}: missing column(s) {', '.join(missing)}")
    sm = (100 * MIN_SM_SHARE, 100)
    ms = (1e-9, MAX_STEP_MS)
    ranges = {"tp": (1, MAX_GPUS_PER_NODE), "prefill_sm_pct": sm, "decode_sm_pct": sm,
              "prefill_batch": (1, MAX_BATCH), "prefill_seq_len": (1, MAX_TOKENS), "decode_batch": (1, MAX_BATCH),
              "decode_seq_len": (1, MAX_TOKENS), "prefill_alone_ms": ms, "prefill_colocated_ms": ms,
              "decode_alone_ms": ms, "decode_colocated_ms": ms}
    for col, (lo, hi) in ranges.items():
        x = pd.to_numeric(df[col], errors="coerce")
        bad = ~((x >= lo) & (x <= hi))
        if bad.any():  # the value is not quoted: the file may be anything
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(f"interference {p.name!r}: row {row + 1}: {col} must be a number in [{lo:g}, {hi:g}]")
        df[col] = x
    models = load_models_sidecar(p)
    rows_x: list[list[float]] = []
    rows_y: list[float] = []
    for r in df.itertuples(index=False):
        spec = models.get(str(r.model)) or resolve_model(str(r.model))
        cm = cost or cost_model(str(r.gpu))
        sp, sd = r.prefill_sm_pct / 100.0, r.decode_sm_pct / 100.0
        b, s = float(r.prefill_batch), float(r.prefill_seq_len)
        _, kp, hp = job_inputs(cm.forward_terms(spec, b * s, b, b * s * (s + 1) / 2, b * s, int(r.tp), sp))
        n, c = float(r.decode_batch), float(r.decode_seq_len)
        _, kd, hd = job_inputs(cm.forward_terms(spec, n, n, n * c, n * c, int(r.tp), sd))
        over_sm = max(0.0, sp + sd - 1.0)
        over_hbm = max(0.0, float(hp + hd) - 1.0)
        for k, h, alone, together in ((kp, hp, r.prefill_alone_ms, r.prefill_colocated_ms),
                                      (kd, hd, r.decode_alone_ms, r.decode_colocated_ms)):
            rows_x.append([float(k) * over_sm, float(h) * over_hbm])
            rows_y.append(together / alone - 1.0)
    x = np.array(rows_x)
    y = np.array(rows_y)
    coef, _ = nnls(x, y)
    identifiable = bool(np.any(x[:, 0] > 0)), bool(np.any(x[:, 1] > 0))
    default = InterferenceParams()
    fitted = InterferenceParams(sm_coef=float(coef[0]) if identifiable[0] else default.sm_coef,
                                hbm_coef=float(coef[1]) if identifiable[1] else default.hbm_coef)

    def err(pr: InterferenceParams) -> float:
        return float(np.median(np.abs(x @ np.array([pr.sm_coef, pr.hbm_coef]) - y)))

    report = {"rows": len(df), "equations": len(y), "fitted": fitted.to_dict(),
              "identifiable": {"sm_coef": identifiable[0], "hbm_coef": identifiable[1]},
              "median_abs_error_fitted": err(fitted), "median_abs_error_default": err(default),
              "sm_enforced": sorted({str(v).lower() for v in df.get("sm_enforced", pd.Series(["unknown"]))})}
    return fitted, report
