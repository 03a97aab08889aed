"""Calibration: fit the analytic model's efficiency parameters to measured rows.

Least squares on log latency (scipy's trust-region reflective solver, parameters in
log space within physical bounds). Which parameters are fitted follows from what the
training rows vary, so that nothing unidentifiable is fitted:

- always: GEMM efficiency, HBM efficiency, and the fixed overheads (one common scale
  for the per-step and per-layer overheads when every training row has the same layer
  count, since the two cannot then be told apart);
- attention efficiency when sequence lengths vary;
- the SM exponent and bandwidth saturation when SM shares vary;
- all-reduce efficiency and latency when TP degrees vary.

A tidy profile times whole steps, so it cannot tell the analytic model's kernels apart:
``gemm_eff`` moves both GEMM tile efficiencies together and ``bw_eff`` every streaming
efficiency (GEMM, attention, elementwise kernels) together, keeping their ratios. The
fit starts from the datasheet defaults (``AnalyticParams()``) unless given ``base``.

The error is reported on rows not used for fitting (a seeded random split unless the
caller chooses the training rows), as median and p90 absolute percentage error.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from muxsim.costmodel.analytic import AnalyticCostModel
from muxsim.costmodel.params import AnalyticParams, params_from_document
from muxsim.costmodel.profile import OPTIONAL, REQUIRED, load_profile, rows_for_gpu
from muxsim.errors import InputError, InputTypeError
from muxsim.gpus import GPUSpec
from muxsim.rowfilter import select_rows

FILTER_COLUMNS = (*REQUIRED, *OPTIONAL)  # what a --train filter may name

BOUNDS: dict[str, tuple[float, float]] = {
    "gemm_eff": (1e-4, 1.0),
    "attn_eff": (1e-4, 1.0),
    "bw_eff": (1e-4, 1.0),
    "sm_compute_exp": (0.2, 1.5),
    "bw_sat_tau": (0.02, 3.0),
    "overlap_p": (1.0, 8.0),
    "layer_overhead_us": (1e-3, 1e6),
    "step_overhead_ms": (1e-4, 1e5),
    "comm_eff": (1e-3, 1.0),
    "comm_latency_us": (1e-2, 1e5),
    "overhead_scale": (1e-4, 1e4),
}


@dataclass(frozen=True)
class CalibrationReport:
    gpu: str
    params: dict[str, float]
    fitted: list[str]
    n_train: int
    n_eval: int
    eval_on: str  # "held-out rows" or "training rows (no rows held out)"
    median_ape: float
    p90_ape: float
    train_median_ape: float
    per_group: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def predict_rows(cm: Any, df: pd.DataFrame) -> np.ndarray:
    """The cost model's latency for each profile row (vectorized per model/tp/phase)."""
    out = np.empty(len(df))
    for (_, tp, phase), idx in df.groupby(["model", "tp", "phase"], sort=False).indices.items():
        g = df.iloc[idx]
        out[idx] = cm.phase_ms(phase, g["spec"].iloc[0], g["batch"].to_numpy(float), g["seq_len"].to_numpy(float),
                               int(tp), g["sm_pct"].to_numpy(float) / 100.0)
    return out


def _choose_fit(train: pd.DataFrame) -> list[str]:
    names = ["gemm_eff", "bw_eff"]
    layers = {s.layers for s in train["spec"]}
    names += ["step_overhead_ms", "layer_overhead_us"] if len(layers) > 1 else ["overhead_scale"]
    if train["seq_len"].nunique() > 1:
        names.append("attn_eff")
    if train["sm_pct"].nunique() > 1:
        names += ["sm_compute_exp", "bw_sat_tau"]
    if train["tp"].nunique() > 1:
        names += ["comm_eff", "comm_latency_us"]
    return names


# what a whole-step profile can see of each fitted efficiency: the group moves together
GROUPS = {"gemm_eff": ("gemm_eff", "gemm_big_eff"),
          "bw_eff": ("bw_eff", "attn_bw_eff", "norm_eff", "rope_eff", "act_eff", "add_eff", "embed_eff")}


def _apply(base: AnalyticParams, names: list[str], x: np.ndarray) -> AnalyticParams:
    vals = dict(zip(names, np.exp(x)))
    scale = vals.pop("overhead_scale", None)
    changes = {}
    for k, v in vals.items():
        for f in GROUPS.get(k, (k,)):
            changes[f] = float(v) if f == k else float(getattr(base, f) * (v / getattr(base, k)))
    p = replace(base, **changes)
    if scale is not None:
        p = replace(p, step_overhead_ms=float(base.step_overhead_ms * scale),
                    layer_overhead_us=float(base.layer_overhead_us * scale))
    return p


def _select(df: pd.DataFrame, train: Any, holdout: float, seed: int) -> tuple[np.ndarray, str]:
    if train is None:
        if isinstance(holdout, bool) or not isinstance(holdout, int | float):
            raise InputTypeError(f"holdout: expected a number in [0, 1), got {type(holdout).__name__}")
        if not 0 <= holdout < 1:
            raise InputError(f"holdout: must be in [0, 1), got {holdout!r}")
        rng = np.random.default_rng(seed)
        mask = rng.random(len(df)) >= holdout
        if mask.sum() == 0:
            mask[:] = True
        return mask, "random split"
    if isinstance(train, str):
        return select_rows(df, train, FILTER_COLUMNS, "train"), train
    if callable(train):
        mask = np.asarray(train(df))
        how = getattr(train, "__name__", "callable")
    else:
        try:
            mask = np.asarray(train)
        except (TypeError, ValueError):
            raise InputError("train: expected a filter string, a boolean mask or a callable") from None
        how = "mask"
    if mask.dtype != bool or mask.shape != (len(df),):
        raise InputError(f"train: a mask must hold one boolean per profile row ({len(df)}), "
                         f"got {mask.dtype} of shape {mask.shape}")
    return mask, how


def _ape(pred: np.ndarray, meas: np.ndarray) -> np.ndarray:
    return np.abs(pred - meas) / meas * 100.0


def calibrate(profile: str | Path | pd.DataFrame, gpu: str | GPUSpec | None = None, *,
              train: str | np.ndarray | Callable[[pd.DataFrame], Any] | None = None,
              fit: list[str] | None = None, holdout: float = 0.25, seed: int = 0,
              base: AnalyticParams | None = None) -> AnalyticCostModel:
    """Fit the analytic model to a measured profile; returns a model with ``.calibration``.

    ``train`` picks the rows to fit (a filter such as
    ``"model == 'llama-7b' and tp == 1 and sm_pct == 100"``, see
    :mod:`muxsim.rowfilter`; a boolean mask; or a callable returning one); the rest are
    where the error is reported. Without it a seeded random ``holdout`` fraction is
    held out.
    """
    from scipy.optimize import least_squares  # scipy is slow to import; only calibration needs it

    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= seed < 2**63:
        raise InputError(f"seed: must be an integer >= 0, got {seed!r}")
    if fit is not None and (isinstance(fit, str) or not all(isinstance(n, str) for n in fit)):
        raise InputTypeError(f"fit: expected a list of parameter names, got {fit!r}")
    if base is not None and not isinstance(base, AnalyticParams):
        raise InputTypeError(f"base: expected AnalyticParams, got {type(base).__name__}")
    spec, df = rows_for_gpu(load_profile(profile), gpu)
    mask, how = _select(df, train, holdout, seed)
    tr = df[mask].reset_index(drop=True)
    ev = df[~mask].reset_index(drop=True)
    if len(tr) < 3:
        raise InputError(f"train: {len(tr)} row(s) selected; calibration needs at least 3")
    base = base or AnalyticParams()
    names = list(fit) if fit else _choose_fit(tr)
    for n in names:
        if n not in BOUNDS:
            raise InputError(f"fit: unknown parameter {n!r} (known: {', '.join(BOUNDS)})")
    meas_tr = tr["latency_ms"].to_numpy(float)
    x0 = []
    lo, hi = [], []
    for n in names:
        v = 1.0 if n == "overhead_scale" else getattr(base, n)
        b0, b1 = BOUNDS[n]
        x0.append(math.log(min(max(v, b0 * 1.0001), b1 * 0.9999)))
        lo.append(math.log(b0))
        hi.append(math.log(b1))

    def residual(x: np.ndarray) -> np.ndarray:
        cm = AnalyticCostModel(spec, _apply(base, names, x))
        return np.log(predict_rows(cm, tr)) - np.log(meas_tr)

    sol = least_squares(residual, np.array(x0), bounds=(np.array(lo), np.array(hi)), method="trf",
                        x_scale=1.0, max_nfev=400)
    params = _apply(base, names, sol.x)
    model = AnalyticCostModel(spec, params)
    train_ape = _ape(predict_rows(model, tr), meas_tr)
    if len(ev):
        eval_ape = _ape(predict_rows(model, ev), ev["latency_ms"].to_numpy(float))
        eval_on = f"held-out rows ({how})"
        groups = []
        ev2 = ev.assign(ape=eval_ape)
        for (m, tp, phase), g in ev2.groupby(["model", "tp", "phase"], sort=True):
            groups.append({"model": m, "tp": int(tp), "phase": phase, "rows": len(g),
                           "median_ape": float(np.median(g["ape"])), "p90_ape": float(np.percentile(g["ape"], 90))})
    else:
        eval_ape = train_ape
        eval_on = "training rows (no rows held out)"
        groups = []
    fitted = [n for n in names if n != "overhead_scale"] + (
        ["step_overhead_ms", "layer_overhead_us (common scale)"] if "overhead_scale" in names else [])
    model.calibration = CalibrationReport(
        gpu=spec.name, params=params.to_dict(), fitted=fitted, n_train=len(tr), n_eval=len(ev) or len(tr),
        eval_on=eval_on, median_ape=float(np.median(eval_ape)), p90_ape=float(np.percentile(eval_ape, 90)),
        train_median_ape=float(np.median(train_ape)), per_group=groups)
    return model


def load_params(path: str | Path | dict[str, Any]) -> tuple[AnalyticParams, str | None]:
    """Read ``PARAMS.json`` as ``muxsim calibrate`` writes it (or a bare params dict)."""
    if isinstance(path, dict):
        raw = path
    elif not isinstance(path, str | Path):
        raise InputTypeError(f"params: expected a PARAMS.json path or a dict, got {type(path).__name__}")
    else:
        from muxsim.io import read_json

        raw = read_json(path, "params")
    if not isinstance(raw, dict):
        raise InputError("params: expected a JSON object")
    gpu = raw.get("gpu") if isinstance(raw.get("gpu"), str) else None
    return params_from_document(raw), gpu


def params_document(model: AnalyticCostModel) -> dict[str, Any]:
    rep = getattr(model, "calibration", None)
    doc: dict[str, Any] = {"gpu": model.gpu.name, "params": model.params.to_dict()}
    if rep is not None:
        doc["fit"] = {k: v for k, v in rep.to_dict().items() if k not in ("params", "gpu")}
    return doc


def dumps_params(model: AnalyticCostModel) -> str:
    return json.dumps(params_document(model), indent=2) + "\n"
