"""How far the analytic cost model is from Vidur-format measurements.

Four comparisons, each a table of rows with ``measured_ms``, ``predicted_ms``, the signed
percentage error ``error`` and its absolute value ``ape``:

- operators: every timed operator of every profiled point (model, tokens, TP);
- layers: per point, the profiled operators of one layer plus its two all-reduces (the
  measured all-reduce at the layer's payload, ``tokens x hidden x 2`` bytes, read off the
  all-reduce table of the GPU's node topology between measured sizes; points whose
  payload lies outside the measured sizes are left out);
- all-reduce: every single-node all-reduce row, by topology, group size and payload;
- engine: the engine's CPU time per decode step against the model's engine overhead.

:func:`summarize` turns them into tables by operator group, TP and token band, each row
with ``points``, ``ape_pct`` (``p50`` and ``p90`` of the absolute percentage error; the
metric naming of :mod:`muxsim.metrics`) and ``bias_pct`` (the median signed error);
:func:`plot` draws predicted against measured, log-log, one panel per GPU.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from muxsim.costmodel.analytic import AnalyticCostModel
from muxsim.costmodel.vidur import CPU_COMPONENTS, OPERATORS, VidurModel, allreduce_at

GROUPS = {"qkv": "gemm", "o": "gemm", "up": "gemm", "down": "gemm", "norm": "norm", "rope": "rope", "act": "act",
          "add": "add", "embed": "embedding"}
TOKEN_BANDS = (0, 16, 64, 256, 1024, 4096, np.inf)
BAND_LABELS = ("1-16", "17-64", "65-256", "257-1024", "1025-4096", ">4096")
SIZE_BANDS = (0, 1 << 20, 1 << 22, 1 << 24, np.inf)
SIZE_LABELS = ("<=1 MiB", "1-4 MiB", "4-16 MiB", ">16 MiB")
DECODE_TOKENS = 256  # layer payloads of at most this many tokens count as decode sizes


@dataclass
class VidurData:
    """One GPU's measurements (see :func:`muxsim.costmodel.vidur_fit.load_vidur`)."""

    gpu: str
    compute: pd.DataFrame  # model, op, tokens, tp, ms
    models: list[VidurModel]
    allreduce: pd.DataFrame  # topology, tp, bytes, ms
    cpu: pd.DataFrame | None  # model, batch, tp, vocab, components
    files: list[str]

    def spec(self, folder: str) -> Any:
        return {m.folder: m.spec for m in self.models}[folder]

    def without(self, folder: str) -> VidurData:
        return replace(self, compute=self.compute[self.compute["model"] != folder])

    def only(self, folder: str) -> VidurData:
        return replace(self, compute=self.compute[self.compute["model"] == folder])


def adds_timed(spec: Any) -> int:
    """Residual adds inside Vidur's one timed ``add``: a parallel-residual layer (phi-2)
    adds attention and MLP outputs to the residual in that one operator."""
    return 2 if spec.parallel_residual else 1


class OperatorPlan:
    """Where each row of a compute table gets its prediction: per (model, TP), the
    distinct token counts and, per operator, the rows and their token positions. Built
    once; :meth:`predict` is what a fit calls for every trial of parameters."""

    def __init__(self, df: pd.DataFrame, data: VidurData) -> None:
        self.n = len(df)
        self.groups = []
        for (model, tp), idx in df.groupby(["model", "tp"], sort=False).indices.items():
            g = df.iloc[idx]
            spec = data.spec(model)
            tokens = np.unique(g["tokens"].to_numpy())
            pos = np.searchsorted(tokens, g["tokens"].to_numpy())
            parts = [(OPERATORS[op], adds_timed(spec) if OPERATORS[op] == "add" else 1, idx[sub], pos[sub])
                     for op, sub in g.groupby("op", sort=False).indices.items()]
            self.groups.append((spec, int(tp), tokens, parts))

    def predict(self, cm: AnalyticCostModel) -> np.ndarray:
        pred = np.full(self.n, np.nan)
        for spec, tp, tokens, parts in self.groups:
            kernels = cm.operator_ms(spec, tokens, tp)
            for kernel, scale, rows, pos in parts:
                pred[rows] = kernels[kernel][pos] * scale
        return pred


def operator_rows(cm: AnalyticCostModel, data: VidurData) -> pd.DataFrame:
    """``data.compute`` with ``kernel``, ``group``, ``predicted_ms`` and ``ape``."""
    df = data.compute.reset_index(drop=True)
    pred = OperatorPlan(df, data).predict(cm)
    kern = df["op"].map(OPERATORS)
    return _errors(df.assign(kernel=kern, group=kern.map(GROUPS), predicted_ms=pred).rename(
        columns={"ms": "measured_ms"}))


def layer_rows(cm: AnalyticCostModel, data: VidurData, ops: pd.DataFrame) -> pd.DataFrame:
    """Per point: profiled operators of a layer plus its two all-reduces (see module doc)."""
    per = ops[ops["kernel"] != "embed"].groupby(["model", "tokens", "tp"], as_index=False, sort=True)[
        ["measured_ms", "predicted_ms"]].sum()
    topo = cm.gpu.node_topology
    meas_ar = np.zeros(len(per))
    pred_ar = np.zeros(len(per))
    for (model, tp), idx in per.groupby(["model", "tp"], sort=False).indices.items():
        if tp < 2:
            continue
        spec = data.spec(model)
        nbytes = per["tokens"].to_numpy()[idx] * float(spec.hidden * spec.dtype_bytes)
        meas_ar[idx] = allreduce_at(data.allreduce, topo, int(tp), nbytes)
        pred_ar[idx] = cm.allreduce_ms(int(tp), nbytes)
    per["measured_ms"] += 2 * meas_ar
    per["predicted_ms"] += 2 * pred_ar
    return _errors(per[np.isfinite(per["measured_ms"])].reset_index(drop=True))


def allreduce_rows(cm: AnalyticCostModel, data: VidurData) -> pd.DataFrame:
    """Every measured single-node all-reduce with the model's prediction."""
    ar = data.allreduce.reset_index(drop=True)
    pred = np.full(len(ar), np.nan)
    for (topo, tp), idx in ar.groupby(["topology", "tp"], sort=False).indices.items():
        other = AnalyticCostModel(replace(cm.gpu, node_topology=topo), cm.params)
        pred[idx] = other.allreduce_ms(int(tp), ar["bytes"].to_numpy()[idx])
    return _errors(ar.rename(columns={"ms": "measured_ms"}).assign(predicted_ms=pred))


def layer_allreduce_rows(cm: AnalyticCostModel, data: VidurData, layers: pd.DataFrame) -> pd.DataFrame:
    """The all-reduce alone at the payloads the profiled layers send (decode: at most
    :data:`DECODE_TOKENS` tokens; prefill: more)."""
    rows = layers[layers["tp"] > 1][["model", "tokens", "tp"]].copy()
    nbytes = np.array([data.spec(m).hidden * data.spec(m).dtype_bytes for m in rows["model"]], float)
    nbytes *= rows["tokens"].to_numpy()
    meas = np.full(len(rows), np.nan)
    pred = np.full(len(rows), np.nan)
    for tp, idx in rows.groupby("tp").indices.items():
        meas[idx] = allreduce_at(data.allreduce, cm.gpu.node_topology, int(tp), nbytes[idx])
        pred[idx] = cm.allreduce_ms(int(tp), nbytes[idx])
    return _errors(rows.assign(bytes=nbytes, measured_ms=meas, predicted_ms=pred,
                               phase=np.where(rows["tokens"] <= DECODE_TOKENS, "decode", "prefill")))


def engine_rows(cm: AnalyticCostModel, data: VidurData) -> pd.DataFrame | None:
    if data.cpu is None or data.cpu.empty:
        return None
    cpu = data.cpu
    meas = cpu[list(CPU_COMPONENTS)].sum(axis=1).to_numpy()
    known = {m.folder: m.spec for m in data.models}
    pred = np.array([float(cm.overhead_ms(known.get(r.model) or _vocab_only(r.vocab), r.batch, int(r.tp)))
                     for r in cpu.itertuples(index=False)])
    return _errors(pd.DataFrame({"model": cpu["model"], "tp": cpu["tp"], "batch": cpu["batch"], "measured_ms": meas,
                                 "predicted_ms": pred}))


def _errors(df: pd.DataFrame) -> pd.DataFrame:
    """``error``: (predicted - measured) / measured in percent (negative: too fast); ``ape``
    its absolute value."""
    err = (df["predicted_ms"] - df["measured_ms"]) / df["measured_ms"] * 100.0
    return df.assign(error=err, ape=err.abs())


def _vocab_only(vocab: float) -> dict[str, int]:
    return {"layers": 1, "hidden": 64, "heads": 1, "intermediate": 64, "vocab": int(vocab)}


def evaluate(cm: AnalyticCostModel, data: VidurData) -> dict[str, pd.DataFrame | None]:
    ops = operator_rows(cm, data)
    layers = layer_rows(cm, data, ops)
    return {"operators": ops, "layers": layers, "allreduce": allreduce_rows(cm, data),
            "layer_allreduce": layer_allreduce_rows(cm, data, layers), "engine": engine_rows(cm, data)}


# ---- tables ------------------------------------------------------------------------------

def _stats(df: pd.DataFrame, by: str | list[str]) -> list[dict[str, Any]]:
    out = []
    for key, g in df.groupby(by, sort=True, observed=True):
        key = key if isinstance(key, tuple) else (key,)
        names = by if isinstance(by, list) else [by]
        row = {n: (k.item() if hasattr(k, "item") else k) for n, k in zip(names, key)}
        out.append(row | _ape(g))
    return out


def _ape(df: pd.DataFrame) -> dict[str, Any]:
    """Points, the median and p90 absolute percentage error (``ape_pct``), and the median
    signed percentage error (``bias_pct``: negative when the model is too fast)."""
    g = df[np.isfinite(df["ape"])]
    if g.empty:
        return {"points": 0, "ape_pct": {"p50": None, "p90": None}, "bias_pct": None}
    return {"points": len(g), "ape_pct": {"p50": float(np.median(g["ape"])), "p90": float(np.percentile(g["ape"], 90))},
            "bias_pct": float(np.median(g["error"]))}


def summarize(rows: dict[str, pd.DataFrame | None]) -> dict[str, Any]:
    """Median and p90 APE tables (lists of dicts) from :func:`evaluate`'s rows."""
    ops, layers = rows["operators"], rows["layers"]
    band = pd.cut(layers["tokens"], TOKEN_BANDS, labels=BAND_LABELS)
    ar = rows["allreduce"]
    ar_band = pd.cut(ar["bytes"], SIZE_BANDS, labels=SIZE_LABELS)
    out = {
        "layer": _ape(layers),
        "by_operator": _stats(ops, "group"),
        "by_tp": _stats(layers, "tp"),
        "by_tokens": _stats(layers.assign(tokens=band), "tokens"),
        "allreduce": _ape(ar),
        "allreduce_by_size": _stats(ar.assign(size=ar_band), ["topology", "tp", "size"]),
        "allreduce_at_layer_sizes": _stats(rows["layer_allreduce"], "phase"),
    }
    if rows.get("engine") is not None:
        out["engine"] = _ape(rows["engine"])
    return out


def plot(panels: dict[str, dict[str, pd.DataFrame | None]], what: str = "") -> Any:
    """A figure (:class:`matplotlib.figure.Figure`; save it with :func:`muxsim.plot.save`):
    predicted against measured per-layer time, log-log, one panel per GPU; ``what``
    (which parameters, judged how) goes into the title."""
    from muxsim.plot.style import figure, outside_legend

    fig = figure(5.6 * len(panels) + 1.2, 5.2)
    axes = fig.subplots(1, len(panels), squeeze=False)
    colors = {1: "#1b9e77", 2: "#d95f02", 4: "#7570b3", 8: "#e7298a"}
    handles: dict[str, Any] = {}
    for ax, (gpu, rows) in zip(axes[0], panels.items()):
        layers = rows["layers"]
        lo = float(min(layers["measured_ms"].min(), layers["predicted_ms"].min())) * 0.8
        hi = float(max(layers["measured_ms"].max(), layers["predicted_ms"].max())) * 1.25
        xs = np.array([lo, hi])
        handles["within 12%"] = ax.fill_between(xs, xs / 1.12, xs * 1.12, color="0.86")
        ax.plot(xs, xs, color="0.4", lw=0.8)
        for tp, g in layers.groupby("tp"):
            handles.setdefault(f"TP {tp}", ax.scatter(g["measured_ms"], g["predicted_ms"], s=5, alpha=0.5,
                                                      color=colors.get(int(tp), "k"), rasterized=True))
        s = _ape(layers)
        ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi), xlabel="measured time per layer (ms)",
               ylabel="predicted time per layer (ms)",
               title=f"{gpu}: median {s['ape_pct']['p50']:.1f}%, p90 {s['ape_pct']['p90']:.1f}% ({s['points']} points)")
        ax.grid(True, which="major", color="0.85", lw=0.6)
    outside_legend(fig, list(handles.values()), list(handles))
    fig.suptitle("One decoder layer (profiled operators + two all-reduces): cost model vs measurement"
                 + (f"\n{what}" if what else ""), fontsize=11)
    return fig
