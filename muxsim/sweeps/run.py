"""One trial: make the workload, place it, simulate the plan (and ask for the capacity
when the trial says so), all through muxsim's public Python API; one flat row back.

:func:`run_trial` never raises for a trial that fails: the row says ``status = "error"``
and ``error`` holds one line. Columns under ``time.`` are wall-clock seconds (they vary
between runs); every other column is deterministic for the trial.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from muxsim.metrics import flatten
from muxsim.sweeps.spec import TrialParams, WorkloadParams
from muxsim.sweeps.trials import nest


def _scaled(wl: Any, scale: float) -> Any:
    """``wl`` with every rate (and every rate window) multiplied by ``scale``."""
    if scale == 1:
        return wl
    models = []
    for m in wl.models:
        update: dict[str, Any] = {}
        if m.rate is not None:
            update["rate"] = m.rate * scale
        if m.rate_schedule:
            update["rate_schedule"] = tuple(w.model_copy(update={"rate": w.rate * scale}) for w in m.rate_schedule)
        models.append(m.model_copy(update=update))
    return wl.model_copy(update={"models": tuple(models)})


def drift_trace(reqs: pd.DataFrame, names: list[str], windows: int, duration: float) -> pd.DataFrame:
    """Requests spread by popularity rank (``names`` in rank order) moved so that the
    ranking rotates over ``windows`` equal windows, as synthetic drift does
    (:func:`muxsim.workload.synth.drift_rank`)."""
    from muxsim.workload.synth import drift_rank

    n = len(names)
    if windows <= 1 or n < 2:
        return reqs
    rank_of = {name: r for r, name in enumerate(names)}
    window = np.minimum((reqs["arrival_s"].to_numpy() / duration * windows).astype(np.int64), windows - 1)
    ranks = reqs["name"].map(rank_of).to_numpy()
    model_at = np.empty((windows, n), dtype=np.int64)  # model holding each rank in each window
    for w in range(windows):
        for i in range(n):
            model_at[w, drift_rank(i, w, n, windows)] = i
    out = reqs.copy()
    out["name"] = np.asarray(names, dtype=object)[model_at[window, ranks]]
    return out


def make_workload(w: WorkloadParams, seed: int) -> tuple[Any, pd.DataFrame | None]:
    """The trial's workload and, for a trace, its requests."""
    import muxsim as mx
    from muxsim.workload import import_logs, parse_mix

    cluster = {"gpu": w.gpu, "nodes": w.nodes, "gpus_per_node": w.gpus_per_node}
    reqs = None
    if w.kind == "synth":
        wl = mx.synth_workload(w.mix, alpha=w.alpha, max_rate=w.max_rate * w.rate_scale, gpu=w.gpu, nodes=w.nodes,
                               gpus_per_node=w.gpus_per_node, duration=w.duration or 240.0, seed=seed,
                               arrivals=w.arrivals, drift_windows=w.drift_windows)
    elif w.kind == "file":
        wl = _scaled(mx.load_workload(w.path), w.rate_scale)
    else:
        models = parse_mix(w.mix)
        wl, reqs = import_logs([w.path], models, split=len(models), rate=w.rate * w.rate_scale, alpha=w.alpha,
                               seed=seed, duration=w.duration, cluster=cluster, truncate=w.truncate)
        if w.drift_windows > 1:
            reqs = drift_trace(reqs, wl.names(), w.drift_windows, wl.duration_s)
            counts = reqs["name"].value_counts()
            wl = wl.model_copy(update={"models": tuple(
                m.model_copy(update={"rate": max(int(counts.get(m.name, 0)), 1) / wl.duration_s})
                for m in wl.models)})
    if w.slo_scales:
        wl = wl.model_copy(update={"slo": wl.slo.model_copy(update={"scales": tuple(w.slo_scales)})})
    return wl, reqs


def _scalars(d: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The numbers, text and flags of a nested dict, flattened under ``prefix``."""
    return {f"{prefix}{k}": v for k, v in flatten(d).items()
            if v is None or isinstance(v, bool | int | float | str | np.integer | np.floating)}


def trial_metrics(params: TrialParams) -> dict[str, Any]:
    """Run one trial and return its metrics (raises whatever the run raises). A trace
    workload's requests are written to a temporary trace file, as ``muxsim workload
    from-trace`` writes them, for as long as the trial runs."""
    import tempfile

    from muxsim.workload import write_trace

    wl, reqs = make_workload(params.workload, params.seed)
    if reqs is None:
        return _metrics(params, wl, None)
    with tempfile.TemporaryDirectory(prefix="muxsim-trial-") as tmp:
        path = write_trace(reqs, Path(tmp) / "trace.parquet")
        return _metrics(params, wl.model_copy(update={"trace": str(path)}), reqs)


def _metrics(params: TrialParams, wl: Any, reqs: pd.DataFrame | None) -> dict[str, Any]:
    import muxsim as mx
    from muxsim.placement import solve_placement
    from muxsim.sim import SimConfig

    cost = mx.cost_model(wl.cluster.gpu, **params.cost)
    config = SimConfig.from_dict(dict(params.config))
    out: dict[str, Any] = {"offered_rps": float(sum(m.rate or 0.0 for m in wl.models)), "llms": len(wl.models),
                           "cluster_gpus": wl.cluster.nodes * wl.cluster.gpus_per_node}
    algorithm = params.algorithm or "muxserve"
    if params.plan is not None:
        plan = mx.load_plan(params.plan)
        out["placement.status"] = "given"
    else:
        t0 = time.perf_counter()
        res = solve_placement(wl, algorithm, cost=cost, sim_config=config, **params.place)
        out["time.placement_s"] = time.perf_counter() - t0
        out["placement.status"] = res.status
        out["placement.objective"] = float(res.objective)
        if res.plan is None:
            raise PlacementFailed(f"placement ({algorithm}): {res.message}", out)
        plan = res.plan
    out["plan.mode"] = plan.mode
    out["plan.gpus"] = sum(m.size for m in plan.meshes if m.units)
    out["plan.meshes"] = sum(1 for m in plan.meshes if m.units)
    out.update(_scalars({k: v for k, v in plan.estimate.items() if k != "per_llm"}, "estimate."))
    if params.stop_after == "place":
        return out
    t0 = time.perf_counter()
    sim = mx.simulate(plan, wl, seed=params.seed, cost=cost, config=config, requests=reqs, **params.simulate)
    out["time.simulate_s"] = time.perf_counter() - t0
    out.update(_scalars(sim.aggregate, ""))
    out.update({f"run.{k}": v for k, v in sim.run.items()
                if k in ("events", "preemptions", "unfinished", "sim_duration_s")})
    if params.capacity is not None:
        t0 = time.perf_counter()
        cap = mx.capacity(wl, algorithm=algorithm, cost=cost, config=config, **params.capacity)
        out["time.capacity_s"] = time.perf_counter() - t0
        doc = cap.to_dict() if hasattr(cap, "to_dict") else cap
        out.update(_scalars({k: v for k, v in doc.items() if k != "plan"}, "capacity."))
    return out


class PlacementFailed(Exception):
    """No plan: the trial fails, keeping what placement said."""

    def __init__(self, message: str, partial: dict[str, Any]) -> None:
        super().__init__(message)
        self.partial = partial


def one_line(e: BaseException) -> str:
    from muxsim.errors import InputError

    text = " ".join(str(e).split())[:1000]
    return text if isinstance(e, InputError | PlacementFailed) else f"{type(e).__name__}: {text}"


def run_trial(params: dict[str, Any]) -> dict[str, Any]:
    """One row: ``status`` ("ok" or "error"), ``error`` (one line or ""), ``warnings``
    (what the run warned about, such as requests cut to fit; "" when nothing), the metrics
    and ``time.trial_s``. Takes the trial's flat parameters (:meth:`Trial.as_dict`)."""
    import warnings

    t0 = time.perf_counter()
    row: dict[str, Any] = {"status": "ok", "error": ""}
    with warnings.catch_warnings(record=True) as caught:  # kept in the row, not printed once per trial
        warnings.simplefilter("always")
        try:
            row.update(trial_metrics(TrialParams.model_validate(nest(params))))
        except Exception as e:  # a failing trial is recorded, never stops the sweep
            row.update(getattr(e, "partial", {}))
            row.update({"status": "error", "error": one_line(e)})
    said = dict.fromkeys(" ".join(str(w.message).split()) for w in caught)
    row["warnings"] = "; ".join(said)[:1000]
    row["time.trial_s"] = time.perf_counter() - t0
    return {k: float(v) if isinstance(v, np.floating) else int(v) if isinstance(v, np.integer) else v
            for k, v in row.items()}
