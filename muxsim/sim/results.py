"""Results of a run, in the results shape of ``docs/design.md``: aggregate, per_llm,
utilization, run.

The metrics and their names are defined once, in :mod:`muxsim.metrics` (TTFT, TPOT and
end-to-end summaries; SLO attainment against scales of each request's latency alone,
``slo_ms``, and against the workload's absolute targets). ``per_llm`` lists the LLMs in
workload order; ``to_frame()`` has one row per request, in arrival order, with the
LLM's ``model`` and the ``mesh`` of the replica that served it.

The SLO unit ``slo_ms`` of a request is its latency alone on a dedicated mesh at full
SMs (see :meth:`muxsim.sim.run.Simulation.baseline_ms`).

Throughput. Arrivals stop at the end of the arrival window (``duration_s``, or the last
arrival of a given request table if later); serving goes on until everything finished
or the drain limit (``SimConfig.drain_s`` later), so that requests in flight finish
and count in ``completed`` and in the latency metrics. ``throughput_rps`` is the served
load: requests completed by the end of the arrival window over its length (and
``tokens_per_s`` their output tokens), so an overloaded LLM that catches up during the
drain is not credited with its offered rate, and one very long last request does not
stretch the denominator. A run that keeps up reports its offered rate less the
requests still in flight when arrivals stop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from muxsim.metrics import PERCENTILES, flatten, metrics, no_targets

FRAME_COLUMNS = ("name", "model", "mesh", "arrival_s", "prompt_len", "output_len", "first_token_s", "finish_s",
                 "ttft_ms", "tpot_ms", "e2e_ms", "slo_ms", "finished", "preemptions")


@dataclass(frozen=True)
class Results:
    aggregate: dict[str, Any]
    per_llm: dict[str, dict[str, Any]]
    utilization: dict[str, Any]
    run: dict[str, Any]
    frame: pd.DataFrame = field(repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"aggregate": self.aggregate, "per_llm": self.per_llm, "utilization": self.utilization,
                "run": self.run}

    def to_json(self, indent: int | None = 2) -> str:
        """Standard JSON (a value that is not a finite number, as an unbounded drain
        limit, is null)."""
        from muxsim.io import dumps_json

        return dumps_json(self.to_dict(), indent=indent)

    def to_frame(self) -> pd.DataFrame:
        """One row per request (arrival order), columns ``FRAME_COLUMNS``."""
        return self.frame.copy()

    def rows(self) -> list[dict[str, Any]]:
        """One flat row per LLM (workload order) and a last one, ``total``: what
        ``muxsim simulate`` prints and ``per_llm.csv`` holds (columns named as
        :func:`muxsim.metrics.flatten` names them)."""
        return results_rows(self.to_dict())

    def table(self) -> str:
        """A plain-text summary: one line per LLM and the total."""
        from muxsim.tables import render

        r = self.run
        return render(self.rows(), table_columns(self.aggregate)) + (
            f"\nsimulated {r['sim_duration_s']:.1f} s, {r['events']:,} events, "
            f"{r['preemptions']:,} preemptions, {r['unfinished']:,} unfinished")


def results_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The flat rows of a results document (see :meth:`Results.rows`)."""
    models = doc.get("run", {}).get("models", {})
    out = [{"name": n, "model": models.get(n, ""), **flatten(m)} for n, m in doc["per_llm"].items()]
    out.append({"name": "total", "model": "", **flatten(doc["aggregate"])})
    return out


def table_columns(agg: dict[str, Any]) -> list[str]:
    """The columns of the text table of results rows (the CSV has them all)."""
    cols = ["name", "model", "requests", "completed", "offered_rps", "throughput_rps",
            "ttft_ms.mean", "ttft_ms.p50", "ttft_ms.p99", "tpot_ms.mean", "tpot_ms.p99", "e2e_ms.p99"]
    cols += [f"slo_attainment.{s}" for s in agg["slo_attainment"]] + ["slo.min_scale"]
    if agg.get("slo", {}).get("attainment") is not None:
        cols += ["slo.attainment", "slo.met"]
    return cols


def build_results(sim: Any, percentiles: Sequence[float] | None = None) -> Results:
    """The results of a finished :class:`~muxsim.sim.run.Simulation`."""
    req = sim.requests
    arrival = np.asarray(req.arrival, dtype=float)
    first = np.asarray(req.first, dtype=float)
    finish = np.asarray(req.finish, dtype=float)
    output = np.asarray(req.output, dtype=np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        tpot = np.where(output > 1, (finish - first) * 1e3 / np.maximum(output - 1, 1), np.nan)
    models = {x.name: x.spec.name for x in sim.llms}
    df = pd.DataFrame({
        "name": req.names,
        "model": [models[n] for n in req.names],
        "mesh": [_mesh_id(sim, x or sim.by_name[n][0]) for x, n in zip(sim.req_llm, req.names)],
        "arrival_s": arrival,
        "prompt_len": np.asarray(req.prompt, dtype=np.int64),
        "output_len": output,
        "first_token_s": first,
        "finish_s": finish,
        "ttft_ms": (first - arrival) * 1e3,
        "tpot_ms": tpot,
        "e2e_ms": (finish - arrival) * 1e3,
        "slo_ms": sim.baseline_ms(),
        "finished": np.isfinite(finish),
        "preemptions": np.asarray(req.preempt, dtype=np.int64),
    }, columns=list(FRAME_COLUMNS))
    last = float(np.nanmax(finish)) if np.isfinite(finish).any() else 0.0
    window = max(sim.duration_s, float(arrival.max()) if len(arrival) else 0.0)
    # an unbounded drain stops when nothing can change any more: at the clock's last event
    stop = sim.end_s if math.isfinite(sim.end_s) else max(window, sim.engine.now)
    # simulated time: until the last completion, or until serving stopped with work left
    duration = max(window, last) if bool(df["finished"].all()) else stop
    wl = sim.workload
    names = [n for n in (wl.names() if hasattr(wl, "names") else []) if n in sim.by_name]
    names += [n for n in sim.by_name if n not in names]  # workload order, then the plan's
    targets = wl.slo_targets() if hasattr(wl, "slo_targets") else {n: no_targets() for n in names}
    target = float(getattr(getattr(wl, "slo", None), "target_attainment", no_targets()["target_attainment"]))
    pcts = tuple(percentiles) if percentiles is not None else PERCENTILES
    aggregate = metrics(df, window, sim.scales, targets=targets, target_attainment=target, percentiles=pcts)
    rows_of = df.groupby("name", sort=False).indices
    per_llm = {n: metrics(df.iloc[rows_of.get(n, [])], window, sim.scales, targets=targets,
                          target_attainment=float(targets.get(n, {}).get("target_attainment") or target),
                          percentiles=pcts) for n in names}
    utilization: dict[str, Any] = {"interval_s": sim.sample_interval_s, "meshes": {}}
    for mesh in sim.meshes:
        s = sim.samples[mesh.id]
        sm = s["sm"]
        utilization["meshes"][mesh.id] = {
            "llms": [x.name for x in mesh.units],
            "kv_blocks": mesh.kv.total,
            "mean_sm": float(np.mean(sm)) if sm else 0.0,
            "t": s["t"], "sm": sm, "kv": s["kv"],
        }
    unfinished = int(len(df) - aggregate["completed"])
    run = {
        "seed": sim.seed,
        "algorithm": sim.plan.algorithm,
        "mode": sim.plan.mode,
        "sim_duration_s": duration,
        "arrivals_until_s": float(arrival.max()) if len(arrival) else 0.0,
        "drain_limit_s": sim.end_s,
        "arrival_window_s": window,
        "events": sim.engine.processed,
        "preemptions": int(sum(m.preemptions for m in sim.meshes)),
        "unfinished": unfinished,
        "models": {n: models[n] for n in names},
        "percentiles": list(pcts),
        "config": sim.config.to_dict(),
        "wall_s": sim.wall_s,
    }
    if sim.mismatch:  # run under another policy or other limits than the plan was placed for
        run["warnings"] = list(sim.mismatch)
    if not math.isfinite(run["sim_duration_s"]):
        run["sim_duration_s"] = 0.0
    return Results(aggregate, per_llm, utilization, run, df)


def _mesh_id(sim: Any, llm: Any) -> str:
    """The mesh a unit serves on (for a unit still loading its weights after a plan
    change, the plan's mesh that holds it)."""
    mesh = sim.mesh_of[llm.gid]
    if hasattr(mesh, "id"):
        return mesh.id
    return next(m.id for m in sim.plan.meshes if any(u is llm.unit for u in m.units))
