"""The table cost model: interpolation of measured step latencies.

For each (model, tp, phase, SM share) the profile's rows form a grid over batch and
sequence length; latencies are interpolated bilinearly in (log batch, log seq_len,
log latency), which is exact at measured points and monotone when the grid is (the
grid is made monotone in batch and seq_len by a running maximum, so noisy
measurements cannot make a larger batch cheaper). Between measured SM shares the log
latency is interpolated linearly. Missing grid cells are filled from the analytic model
scaled by the group's geometric-mean measured/analytic ratio.

Outside the measured range (and for models or TP degrees the profile lacks) the model
falls back to the analytic model, scaled to agree with the table at the boundary; it
says so once per group through :mod:`warnings`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from muxsim.costmodel.analytic import (
    AnalyticCostModel,
    StepTerms,
    _check_batch_seq,
    _check_sm,
    _check_tp_arg,
    _scalar_if_0d,
)
from muxsim.costmodel.profile import load_profile, rows_for_gpu
from muxsim.errors import InputError
from muxsim.gpus import GPUSpec
from muxsim.models import ModelSpec, resolve_model


class ProfileRangeWarning(UserWarning):
    """A query fell outside what the profile measured; the analytic model filled in."""


@dataclass(frozen=True)
class _Grid:
    sm: float
    log_b: np.ndarray
    log_s: np.ndarray
    log_lat: np.ndarray  # shape (len(log_b), len(log_s))

    def interp(self, b: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Bilinear interpolation in log space at points clamped to the grid."""
        lb = np.clip(np.log(b), self.log_b[0], self.log_b[-1])
        ls = np.clip(np.log(s), self.log_s[0], self.log_s[-1])
        i, wi = _bracket(self.log_b, lb)
        j, wj = _bracket(self.log_s, ls)
        g = self.log_lat
        i1 = np.minimum(i + 1, len(self.log_b) - 1)
        j1 = np.minimum(j + 1, len(self.log_s) - 1)
        top = g[i, j] * (1 - wj) + g[i, j1] * wj
        bot = g[i1, j] * (1 - wj) + g[i1, j1] * wj
        return np.exp(top * (1 - wi) + bot * wi)

    def bounds(self) -> tuple[float, float, float, float]:
        return (float(np.exp(self.log_b[0])), float(np.exp(self.log_b[-1])),
                float(np.exp(self.log_s[0])), float(np.exp(self.log_s[-1])))


def _bracket(axis: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(axis) == 1:
        return np.zeros(np.shape(x), dtype=int), np.zeros(np.shape(x))
    i = np.clip(np.searchsorted(axis, x, side="right") - 1, 0, len(axis) - 2)
    w = (x - axis[i]) / (axis[i + 1] - axis[i])
    return i, np.clip(w, 0.0, 1.0)


class TableCostModel:
    """Measured-profile cost model with the same interface as the analytic one."""

    kind = "table"

    def __init__(self, profile: str | Path | pd.DataFrame, gpu: str | GPUSpec | None = None,
                 fallback: AnalyticCostModel | None = None) -> None:
        self.gpu, df = rows_for_gpu(load_profile(profile), gpu)
        self.fallback = fallback or AnalyticCostModel(self.gpu)
        self.source = str(profile) if not isinstance(profile, pd.DataFrame) else "<frame>"
        self._grids: dict[tuple[str, int, str], list[_Grid]] = {}
        self._specs: dict[str, ModelSpec] = {}
        self._warned: set[tuple[Any, ...]] = set()
        for (_name, tp, phase), g in df.groupby(["model", "tp", "phase"], sort=True):
            spec = g["spec"].iloc[0]
            self._specs[spec.name] = spec
            levels = []
            for sm_pct, gs in g.groupby("sm_pct", sort=True):
                levels.append(self._build_grid(spec, int(tp), str(phase), float(sm_pct) / 100.0, gs))
            self._grids[(spec.name, int(tp), str(phase))] = levels

    def __repr__(self) -> str:
        return f"TableCostModel(gpu={self.gpu.name!r}, groups={len(self._grids)}, source={self.source!r})"

    def _build_grid(self, spec: ModelSpec, tp: int, phase: str, sm: float, rows: pd.DataFrame) -> _Grid:
        med = rows.groupby(["batch", "seq_len"])["latency_ms"].median()
        bs = np.array(sorted(rows["batch"].unique()), dtype=float)
        ss = np.array(sorted(rows["seq_len"].unique()), dtype=float)
        lat = np.full((len(bs), len(ss)), np.nan)
        bi = {b: i for i, b in enumerate(bs)}
        si = {s: j for j, s in enumerate(ss)}
        for (b, s), v in med.items():
            lat[bi[float(b)], si[float(s)]] = v
        if np.isnan(lat).any():
            bb, sg = np.meshgrid(bs, ss, indexing="ij")
            ana = self.fallback.phase_ms(phase, spec, bb, sg, tp, sm)
            known = ~np.isnan(lat)
            ratio = float(np.exp(np.mean(np.log(lat[known] / ana[known]))))
            lat = np.where(known, lat, ana * ratio)
        lat = np.maximum.accumulate(np.maximum.accumulate(lat, axis=0), axis=1)
        return _Grid(sm, np.log(bs), np.log(ss), np.log(lat))

    # ---- queries ------------------------------------------------------------------
    def covers(self, model: Any, tp: int, phase: str) -> bool:
        return (resolve_model(model).name, int(tp), phase) in self._grids

    def _warn_once(self, key: tuple[Any, ...], msg: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(msg, ProfileRangeWarning, stacklevel=4)

    def phase_ms(self, phase: str, model: Any, batch: Any, seq_len: Any, tp: int = 1, sm: Any = 1.0) -> Any:
        if phase not in ("prefill", "decode"):
            raise InputError(f"phase: must be prefill or decode, got {phase!r}")
        spec = resolve_model(model)
        tp = _check_tp_arg(tp)
        b, s = _check_batch_seq(batch, seq_len)
        smv = _check_sm(sm)
        levels = self._grids.get((spec.name, tp, phase))
        if levels is None:
            self._warn_once((spec.name, tp, phase), f"profile has no {phase} rows for {spec.name} at tp={tp}; "
                            "using the analytic model")
            return self.fallback.phase_ms(phase, spec, b, s, tp, smv)
        b, s, smv = np.broadcast_arrays(b, s, smv)
        out = np.empty(b.shape)
        for sm_val in np.unique(smv):
            mask = smv == sm_val
            out[mask] = self._at_sm(spec, tp, phase, levels, b[mask], s[mask], float(sm_val))
        return _scalar_if_0d(out)

    def _at_level(self, spec: ModelSpec, tp: int, phase: str, grid: _Grid, b: np.ndarray, s: np.ndarray) -> np.ndarray:
        val = grid.interp(b, s)
        b0, b1, s0, s1 = grid.bounds()
        outside = (b < b0 * (1 - 1e-12)) | (b > b1 * (1 + 1e-12)) | (s < s0 * (1 - 1e-12)) | (s > s1 * (1 + 1e-12))
        if outside.any():
            self._warn_once((spec.name, tp, phase, "range"),
                            f"{phase} of {spec.name} (tp={tp}) queried outside the profiled range "
                            f"(batch {b0:g}..{b1:g}, seq_len {s0:g}..{s1:g}); the analytic model, scaled to "
                            "agree at the boundary, fills in")
            bc, sc = np.clip(b[outside], b0, b1), np.clip(s[outside], s0, s1)
            fb = self.fallback
            val[outside] *= (fb.phase_ms(phase, spec, b[outside], s[outside], tp, grid.sm)
                             / fb.phase_ms(phase, spec, bc, sc, tp, grid.sm))
        return val

    def _at_sm(self, spec: ModelSpec, tp: int, phase: str, levels: list[_Grid], b: np.ndarray, s: np.ndarray,
               sm: float) -> np.ndarray:
        sms = np.array([g.sm for g in levels])
        k = int(np.searchsorted(sms, sm))
        if k < len(sms) and abs(sms[k] - sm) < 1e-9:
            return self._at_level(spec, tp, phase, levels[k], b, s)
        if k == 0 or k == len(sms):
            g = levels[0] if k == 0 else levels[-1]
            self._warn_once((spec.name, tp, phase, "sm"),
                            f"{phase} of {spec.name} (tp={tp}) queried at {sm:.0%} of the SMs, outside the "
                            f"profiled shares ({sms.min():.0%}..{sms.max():.0%}); scaling by the analytic model")
            fb = self.fallback
            return (self._at_level(spec, tp, phase, g, b, s)
                    * fb.phase_ms(phase, spec, b, s, tp, sm) / fb.phase_ms(phase, spec, b, s, tp, g.sm))
        lo, hi = levels[k - 1], levels[k]
        w = (sm - lo.sm) / (hi.sm - lo.sm)
        return np.exp((1 - w) * np.log(self._at_level(spec, tp, phase, lo, b, s))
                      + w * np.log(self._at_level(spec, tp, phase, hi, b, s)))

    def prefill_ms(self, model: Any, batch: Any, seq_len: Any, tp: int = 1, sm: Any = 1.0) -> Any:
        return self.phase_ms("prefill", model, batch, seq_len, tp, sm)

    def decode_ms(self, model: Any, batch: Any, seq_len: Any, tp: int = 1, sm: Any = 1.0) -> Any:
        return self.phase_ms("decode", model, batch, seq_len, tp, sm)

    def forward_terms(self, model: Any, tokens: Any, seqs: Any, attn_pairs: Any, kv_tokens: Any,
                      tp: int = 1, sm: Any = 1.0) -> StepTerms:
        """A ragged step: the table at the uniform batch of the same size and mean length,
        corrected by the analytic model's ratio between the ragged and uniform steps."""
        spec = resolve_model(model)
        t, b, pairs, kvt, smv = np.broadcast_arrays(*(np.asarray(x, dtype=float)
                                                      for x in (tokens, seqs, attn_pairs, kv_tokens, sm)))
        fb = self.fallback
        exact = fb.forward_terms(spec, t, b, pairs, kvt, tp, smv)
        is_prefill = t > b
        seq = np.where(is_prefill, t / np.maximum(b, 1), kvt / np.maximum(b, 1))
        seq = np.maximum(seq, 1.0)
        bb = np.maximum(b, 1.0)
        table = np.empty(t.shape)
        uniform = np.empty(t.shape)
        for phase, mask in (("prefill", is_prefill), ("decode", ~is_prefill)):
            if mask.any():
                table[mask] = self.phase_ms(phase, spec, bb[mask], seq[mask], tp, smv[mask])
                uniform[mask] = fb.phase_ms(phase, spec, bb[mask], seq[mask], tp, smv[mask])
        ratio = table / uniform
        return StepTerms(exact.compute_ms * ratio, exact.memory_ms * ratio, exact.comm_ms * ratio,
                         exact.overhead_ms * ratio, exact.total_ms * ratio)

    def forward_ms(self, model: Any, tokens: Any, seqs: Any, attn_pairs: Any, kv_tokens: Any,
                   tp: int = 1, sm: Any = 1.0) -> Any:
        return _scalar_if_0d(self.forward_terms(model, tokens, seqs, attn_pairs, kv_tokens, tp, sm).total_ms)
