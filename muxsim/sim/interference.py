"""Interference between jobs co-running on one mesh (see :class:`InterferenceParams`).

A job brings its SM share ``sm``, its kernel fraction ``kernel`` (time on SMs over
total time, alone) and its HBM demand ``hbm`` (fraction of its time spent streaming
at full bandwidth, alone). :func:`slowdowns` returns, for each job, how many times
slower than alone it runs while exactly these jobs run together.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from muxsim.sim.config import InterferenceParams


def slowdown(sm_total: float, hbm_total: float, kernel: float, hbm: float, params: InterferenceParams) -> float:
    """Slowdown of one job given the summed SM shares and HBM demands of all co-runners."""
    return (1.0 + params.sm_coef * kernel * max(0.0, sm_total - 1.0)
            + params.hbm_coef * hbm * max(0.0, hbm_total - 1.0))


def slowdowns(jobs: Sequence[tuple[float, float, float]], params: InterferenceParams) -> list[float]:
    """``jobs``: (sm, kernel, hbm) per job. Returns one slowdown per job (1.0 alone)."""
    s = sum(j[0] for j in jobs)
    d = sum(j[2] for j in jobs)
    return [slowdown(s, d, k, h, params) for _, k, h in jobs]


def job_inputs(terms: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(total ms, kernel fraction, HBM demand) of a job alone, from ``forward_terms``."""
    comp, mem, comm, over = (np.asarray(x, dtype=float) for x in terms[:4])
    total = np.asarray(terms[4], dtype=float) if len(terms) > 4 else comp + mem + comm + over
    total = np.maximum(total, 1e-12)
    kernel = np.clip((total - comm - over) / total, 0.0, 1.0)
    hbm = np.clip(mem / total, 0.0, 1.0)
    return total, kernel, hbm


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
    from muxsim.errors import InputError, InputTypeError
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
