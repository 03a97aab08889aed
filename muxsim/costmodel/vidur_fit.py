"""Fit the analytic cost model to a Vidur ``data/profiling`` tree (``muxsim calibrate --vidur``).

What is fitted, each on its own rows (the parts share no parameter, so separate fits are
the joint fit), by robust least squares on log time (scipy's trust-region reflective
solver, soft-L1 loss at 5%, parameters in log space within physical bounds):

- GEMMs (QKV, O, gate/up, down of every model and TP): ``gemm_eff``, ``gemm_big_eff``,
  ``bw_eff``, ``gemm_min_us``; the tiles are fixed (:data:`STRUCTURE`);
- each elementwise kind: its efficiency and minimum time (``norm`` also a per-row
  time), on its operator's rows (``embed`` on Vidur's ``emb``);
- all-reduce: latency and bus bandwidth per node topology and group size, on the
  single-node rows of ``network/<gpu>_dgx`` and ``network/<gpu>_pairwise_nvlink``,
  the two added or in quadrature (whichever fits better; see ``ops.AllReduce``);
- engine presets (when ``cpu_overheads.csv`` is there): each CPU component per decode
  step as non-negative least squares on ``1, seqs, seqs x vocab, [tp > 1]``;
- the SM-share exponents, to MuxServe's published LLaMA-7B profile (:data:`MUXSERVE_SM`).

Not in the data, so written down instead (:func:`analytic_attention`): the attention
core's prefill efficiency (FlashAttention-2's published fraction of the peak) and its
decode bandwidth (the fitted GEMM streaming efficiency, less PagedAttention's overhead).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from muxsim.costmodel import vidur
from muxsim.costmodel.analytic import AnalyticCostModel
from muxsim.costmodel.fidelity import OperatorPlan, VidurData, evaluate, summarize
from muxsim.costmodel.params import (
    DEFAULT_ENGINE,
    ENGINE_FIELDS,
    AllReduceFit,
    AnalyticParams,
    engine_preset,
)
from muxsim.errors import InputError
from muxsim.gpus import GPUSpec, get_gpu

UPSTREAM = "Vidur (microsoft/vidur, MIT license), data/profiling"
STRUCTURE = {"gemm_tile_m": 16.0, "gemm_tile_n": 64.0, "gemm_big_tile_m": 128.0, "gemm_big_tile_n": 128.0,
             "overlap_p": 2.0, "layer_overhead_us": 0.0}
GEMM_FIT = ("gemm_eff", "gemm_big_eff", "bw_eff", "gemm_min_us")
ELEM_FIT = {"norm": ("norm_eff", "norm_min_us", "norm_row_ns"), "rope": ("rope_eff", "rope_min_us"),
            "act": ("act_eff", "act_min_us"), "add": ("add_eff", "add_min_us"), "embed": ("embed_eff", "embed_min_us")}
BOUNDS = {"eff": (0.01, 1.0), "min_us": (0.01, 500.0), "row_ns": (1e-4, 100.0), "sm_compute_exp": (0.2, 1.5),
          "bw_sat_tau": (0.02, 3.0)}
START = {"eff": 0.8, "min_us": 3.0, "row_ns": 0.5}
# FlashAttention-2 forward, fraction of the dense peak: 50-73% on A100 (Dao, 2023); about 35%
# on H100 (Shah et al., FlashAttention-3, 2024). Other GPUs: the class default.
FLASH_ATTENTION_EFF = {"a100": 0.55, "h100": 0.35}
PAGED_ATTENTION_COST = 1.23  # PagedAttention kernels run 20-26% longer than contiguous ones (Kwon et al., 2023)
# MuxServe's profile (LLaMA-7B, A100, 128 tokens): slowdown at 30% of the SMs
MUXSERVE_SM = (("decode", 1, 1.45), ("decode", 8, 1.45), ("decode", 32, 1.45), ("decode", 128, 1.8),
               ("prefill", 1, 1.9), ("prefill", 128, 2.65))


FIT_DESCRIPTION = (
    "robust least squares on log time (scipy least_squares, trf, soft-L1 loss at 5%, parameters in log space "
    "within bounds), each part on its own rows: GEMM compute efficiencies (16x64 and 128x128 tiles, wave "
    "quantized), streaming efficiency and minimum time on the four GEMMs of every model and TP; efficiency and "
    "minimum time of each elementwise kind on its operator (norm also a per-row time); all-reduce latency and "
    "bus bandwidth per node topology and group size on the single-node rows (added or in quadrature, whichever "
    "fits better); engine presets by non-negative "
    "least squares of each CPU component on 1, seqs, seqs x vocab, [tp > 1]; SM-share exponents to MuxServe's "
    "published LLaMA-7B slowdowns at 30% of the SMs")


@dataclass
class VidurCalibration:
    gpu: str
    source: str
    files: list[str]
    models: list[dict[str, str]]
    fitted: list[str]
    analytic: dict[str, str]
    engines: dict[str, dict[str, float]] | None
    in_sample: dict[str, Any]
    leave_one_model_out: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


def load_vidur(path: str | Path | vidur.VidurFiles, gpu: str | GPUSpec) -> VidurData:
    """Read one GPU's measurements from a Vidur tree (see :mod:`muxsim.costmodel.vidur`)."""
    spec = get_gpu(gpu)
    files = path if isinstance(path, vidur.VidurFiles) else vidur.tree_files(path, spec)
    compute, models, ar, cpu = vidur.read_tree(files)
    return VidurData(spec.name, compute, models, ar, cpu, files.relative())


def _log_fit(names: list[str], base: AnalyticParams, residual: Any) -> AnalyticParams:
    from scipy.optimize import least_squares  # slow to import; only fitting needs it

    lo, hi, x0 = [], [], []
    for n in names:
        kind = next(k for k in BOUNDS if n.endswith(k))
        b0, b1 = BOUNDS[kind]
        v = START.get(kind, getattr(base, n))
        lo.append(math.log(b0))
        hi.append(math.log(b1))
        x0.append(math.log(min(max(v, b0 * 1.001), b1 * 0.999)))

    def params(x: np.ndarray) -> AnalyticParams:
        return replace(base, **{n: float(math.exp(v)) for n, v in zip(names, x)})

    sol = least_squares(lambda x: residual(params(x)), np.array(x0), bounds=(np.array(lo), np.array(hi)),
                        method="trf", loss="soft_l1", f_scale=0.05, max_nfev=200 * (len(names) + 1))
    return params(sol.x)


def fit_compute(data: VidurData, base: AnalyticParams) -> AnalyticParams:
    """GEMM and elementwise parameters on ``data.compute``."""
    gpu = get_gpu(data.gpu)
    params = base
    for kernels, names in [(("qkv", "o", "up", "down"), GEMM_FIT), *[((k,), v) for k, v in ELEM_FIT.items()]]:
        rows = data.compute[data.compute["op"].map(vidur.OPERATORS).isin(kernels)].reset_index(drop=True)
        if rows.empty:
            continue
        plan = OperatorPlan(rows, data)
        meas = np.log(rows["ms"].to_numpy())

        def residual(p: AnalyticParams, plan: OperatorPlan = plan, meas: np.ndarray = meas) -> np.ndarray:
            return np.log(plan.predict(AnalyticCostModel(gpu, p))) - meas

        params = _log_fit(list(names), params, residual)
    return params


def fit_allreduce(data: VidurData) -> tuple[AllReduceFit, ...]:
    """Latency and bus bandwidth per (topology, group size), latency and transfer added or
    in quadrature, whichever fits better."""
    gpu = get_gpu(data.gpu)
    out = []
    for (topo, tp), g in data.allreduce.groupby(["topology", "tp"], sort=True):
        node = replace(gpu, node_topology=str(topo))
        fits = [_fit_allreduce_row(node, int(tp), blend, g["bytes"].to_numpy(), np.log(g["ms"].to_numpy()))
                for blend in (1.0, 2.0)]
        out.append(min(fits, key=lambda f: f[0])[1])
    return tuple(out)


def _fit_allreduce_row(node: GPUSpec, tp: int, blend: float, nbytes: np.ndarray,
                       log_ms: np.ndarray) -> tuple[float, AllReduceFit]:
    from scipy.optimize import least_squares

    def row(x: np.ndarray) -> AllReduceFit:
        return AllReduceFit(node.node_topology, tp, float(math.exp(x[0])), float(math.exp(x[1])), blend)

    def residual(x: np.ndarray) -> np.ndarray:
        cm = AnalyticCostModel(node, AnalyticParams(allreduce=(row(x),)))
        return np.log(cm.allreduce_ms(tp, nbytes)) - log_ms

    sol = least_squares(residual, np.array([math.log(30.0), math.log(100.0)]),
                        bounds=(np.log([0.1, 0.1]), np.log([1e4, 1e4])), method="trf", loss="soft_l1", f_scale=0.1)
    return float(sol.cost), row(sol.x)


def fit_engines(cpu: pd.DataFrame) -> dict[str, dict[str, float]]:
    """``vllm-2024-ray`` and ``lean`` from the measured CPU components (see module doc)."""
    from scipy.optimize import nnls

    b = cpu["batch"].to_numpy(float)
    x = np.column_stack([np.ones_like(b), b, b * cpu["vocab"].to_numpy(float), (cpu["tp"] > 1).to_numpy(float)])
    coef = {c: nnls(x, cpu[c].to_numpy(float))[0] for c in vidur.CPU_COMPONENTS}

    def preset(components: list[str], with_tp: bool) -> dict[str, float]:
        s = np.sum([coef[c] for c in components], axis=0)
        return {"step_overhead_ms": float(s[0]), "layer_overhead_us": 0.0, "seq_overhead_us": float(s[1] * 1e3),
                "logit_overhead_ns": float(s[2] * 1e6), "tp_overhead_ms": float(s[3]) if with_tp else 0.0}

    comps = list(vidur.CPU_COMPONENTS)
    return {"vllm-2024-ray": preset(comps, True), "lean": preset([c for c in comps if not c.startswith("ray")], False)}


def fit_sm_share(gpu: GPUSpec, params: AnalyticParams) -> AnalyticParams:
    """``sm_compute_exp`` and ``bw_sat_tau`` that reproduce :data:`MUXSERVE_SM`."""
    def residual(p: AnalyticParams) -> np.ndarray:
        cm = AnalyticCostModel(gpu, p)
        return np.array([math.log(cm.phase_ms(ph, "llama-7b", b, 128, 1, 0.3) / cm.phase_ms(ph, "llama-7b", b, 128))
                         - math.log(r) for ph, b, r in MUXSERVE_SM])

    return _log_fit(["sm_compute_exp", "bw_sat_tau"], params, residual)


def analytic_attention(gpu: GPUSpec, params: AnalyticParams) -> tuple[AnalyticParams, dict[str, str]]:
    eff = FLASH_ATTENTION_EFF.get(gpu.name.split("-")[0], AnalyticParams().attn_eff)
    p = replace(params, attn_eff=eff, attn_bw_eff=params.bw_eff / PAGED_ATTENTION_COST, attn_min_us=params.gemm_min_us)
    return p, {
        "attn_eff": "FlashAttention-2 forward's fraction of the dense peak: 50-73% on A100 (Dao, 2023; 0.55 "
                    "taken), about 35% on H100 (Shah et al., FlashAttention-3, 2024)",
        "attn_bw_eff": f"the fitted bw_eff / {PAGED_ATTENTION_COST}: PagedAttention kernels take 20-26% longer "
                       "than contiguous ones (Kwon et al., SOSP 2023)",
        "attn_min_us": "the fitted gemm_min_us (a kernel's launch and tail)",
        "sm_compute_exp, bw_sat_tau": "fitted to MuxServe's published slowdowns at 30% of the SMs (LLaMA-7B, "
                                      "A100): decode 1.4-1.5x at batch 1-32, 1.8x at 128; prefill 1.9x at 1, "
                                      "2.65x at 128",
        "gemm tiles": "16 x 64 (MMA granularity, skinny GEMMs) and 128 x 128 (large GEMMs); not fitted",
    }


def calibrate_vidur(path: str | Path | VidurData, gpu: str | GPUSpec = "a100-80gb", *,
                    lomo: bool = False, source: str | None = None) -> AnalyticCostModel:
    """Fit the analytic model to one GPU's Vidur measurements; the result's
    ``.calibration`` (:class:`VidurCalibration`) says what was fitted and how well.
    ``lomo`` adds the leave-one-model-out error (one fit per model: slower); ``source``
    says where the tree came from (recorded in the provenance; default: Vidur)."""
    data = path if isinstance(path, VidurData) else load_vidur(path, gpu)
    spec = get_gpu(data.gpu)
    params, notes = fit_params(data)
    engines = fit_engines(data.cpu) if data.cpu is not None and not data.cpu.empty else None
    preset = engines[DEFAULT_ENGINE] if engines else engine_preset(DEFAULT_ENGINE)
    if engines is None:
        notes.append(f"no cpu_overheads.csv for {data.gpu}: the shipped {DEFAULT_ENGINE} preset is used")
    params = fit_sm_share(spec, replace(params, **preset))
    params, analytic = analytic_attention(spec, params)
    cm = AnalyticCostModel(spec, params)
    source = source or UPSTREAM
    cm.params_source = f"fitted to {source} ({data.gpu})"
    cm.calibration = VidurCalibration(
        gpu=data.gpu, source=source, files=data.files,
        models=[{"folder": m.folder, "model": m.spec.name, "matched": m.matched} for m in data.models],
        fitted=[*GEMM_FIT, *(n for v in ELEM_FIT.values() for n in v), "allreduce", "sm_compute_exp", "bw_sat_tau",
                *(["engines"] if engines else [])],
        analytic=analytic, engines=engines, in_sample=summarize(evaluate(cm, data)),
        leave_one_model_out=leave_one_model_out(data, params)[1] if lomo else None, notes=notes)
    return cm


def fit_params(data: VidurData, base: AnalyticParams | None = None) -> tuple[AnalyticParams, list[str]]:
    """Compute and all-reduce parameters (no engine, SM share or attention)."""
    if data.compute.empty:
        raise InputError(f"vidur: no operator rows for {data.gpu}")
    params = replace(base or AnalyticParams(), **STRUCTURE)
    params = fit_compute(data, params)
    notes = []
    rows = fit_allreduce(data) if not data.allreduce.empty else ()
    if not rows:
        notes.append(f"no all_reduce.csv for {data.gpu}: the datasheet all-reduce model is kept")
    return replace(params, allreduce=rows), notes


def leave_one_model_out(data: VidurData, params: AnalyticParams) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fit the compute parameters without each model in turn and evaluate on it; the
    all-reduce, engine and attention parameters are ``params``'s. Returns (rows, summary)."""
    gpu = get_gpu(data.gpu)
    parts: dict[str, list[pd.DataFrame]] = {}
    for m in sorted(data.compute["model"].unique()):
        fitted = fit_compute(data.without(m), params)
        rows = evaluate(AnalyticCostModel(gpu, fitted), data.only(m))
        for k, v in rows.items():
            if v is not None:
                parts.setdefault(k, []).append(v)
    rows = {k: pd.concat(v, ignore_index=True) for k, v in parts.items()}
    rows.setdefault("engine", None)
    for k in ("allreduce", "engine"):  # not model-dependent: evaluated once
        rows[k] = evaluate(AnalyticCostModel(gpu, params), data.only(data.compute["model"].iloc[0]))[k]
    return rows, summarize(rows)


def params_document(cm: AnalyticCostModel) -> dict[str, Any]:
    """PARAMS.json of a Vidur calibration: the parameters (engine fields apart), the
    engine preset they default to, the fitted presets, and the provenance."""
    rep: VidurCalibration = cm.calibration
    params = {k: v for k, v in cm.params.to_dict().items() if k not in ENGINE_FIELDS}
    doc: dict[str, Any] = {"gpu": rep.gpu, "params": params, "engine": DEFAULT_ENGINE}
    if rep.engines:
        doc["engines"] = rep.engines
    doc["provenance"] = {
        "source": rep.source, "files": rep.files, "models": rep.models,
        "fit": FIT_DESCRIPTION, "fitted": rep.fitted, "analytic": rep.analytic,
        "error_in_sample": rep.in_sample, "error_leave_one_model_out": rep.leave_one_model_out, "notes": rep.notes,
    }
    return doc
