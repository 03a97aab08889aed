"""Results of a run: aggregate, per_llm, utilization, run (the same shape as an
executor's results).

Metrics, per request: TTFT = first token - arrival; TPOT = (finish - first token) /
(output_len - 1) (undefined for one-token outputs); end-to-end = finish - arrival.
Percentiles cover finished requests (``None`` when there are none). A request meets
its SLO at scale s when it finished and its end-to-end latency is at most s times its
latency alone on a dedicated mesh (``slo_ms``); attainment is over every request that
arrived, so unfinished requests count as misses. ``tokens_per_s`` counts the output
tokens of completed requests.

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

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

FRAME_COLUMNS = ("name", "arrival_s", "prompt_len", "output_len", "first_token_s", "finish_s", "ttft_ms",
                 "tpot_ms", "e2e_ms", "slo_ms", "finished", "preemptions")


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
        return json.dumps(self.to_dict(), indent=indent)

    def to_frame(self) -> pd.DataFrame:
        """One row per request (arrival order)."""
        return self.frame.copy()

    def table(self) -> str:
        """A plain-text summary: one line per LLM and the total."""
        scales = list(self.aggregate["slo_attainment"])
        head = ["llm", "requests", "completed", "tput_rps", "ttft_p99_ms", "tpot_p99_ms", "e2e_p99_ms"]
        head += [f"slo@{s}" for s in scales]
        rows = [head]
        for name, m in [*self.per_llm.items(), ("total", self.aggregate)]:
            rows.append([name, str(m["requests"]), str(m["completed"]), f"{m['throughput_rps']:.3f}",
                         _fmt(m["ttft_ms"]["p99"]), _fmt(m["tpot_ms"]["p99"]), _fmt(m["e2e_ms"]["p99"])]
                        + [f"{m['slo_attainment'][s]:.3f}" for s in scales])
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                 for r in rows]
        r = self.run
        lines.append(f"simulated {r['sim_duration_s']:.1f} s, {r['events']} events, "
                     f"{r['preemptions']} preemptions, {r['unfinished']} unfinished")
        return "\n".join(lines)


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def _pcts(x: np.ndarray) -> dict[str, float | None]:
    x = x[np.isfinite(x)]
    if not len(x):
        return {"p50": None, "p90": None, "p99": None}
    q = np.percentile(x, [50, 90, 99])
    return {"p50": float(q[0]), "p90": float(q[1]), "p99": float(q[2])}


def _scale_key(s: float) -> str:
    return str(int(s)) if float(s).is_integer() else repr(float(s))


def metrics(df: pd.DataFrame, window_s: float, scales: list[float]) -> dict[str, Any]:
    """Metrics of a set of requests; rates over the arrival window ``window_s``."""
    fin = df["finished"].to_numpy(dtype=bool)
    e2e = df["e2e_ms"].to_numpy(dtype=float)
    slo = df["slo_ms"].to_numpy(dtype=float)
    n = len(df)
    completed = int(fin.sum())
    served = fin & (df["finish_s"].to_numpy(dtype=float) <= window_s)
    served_tokens = int(df["output_len"].to_numpy()[served].sum())
    att = {}
    for s in scales:
        ok = fin & (e2e <= s * slo * (1 + 1e-9))
        att[_scale_key(s)] = float(ok.sum() / n) if n else 0.0
    return {
        "requests": n,
        "completed": completed,
        "throughput_rps": int(served.sum()) / window_s if window_s > 0 else 0.0,
        "tokens_per_s": served_tokens / window_s if window_s > 0 else 0.0,
        "ttft_ms": _pcts(df["ttft_ms"].to_numpy(dtype=float)),
        "tpot_ms": _pcts(df["tpot_ms"].to_numpy(dtype=float)),
        "e2e_ms": _pcts(e2e),
        "slo_attainment": att,
    }


def build_results(sim: Any) -> Results:
    """The results of a finished :class:`~muxsim.sim.run.Simulation`."""
    req = sim.requests
    arrival = np.asarray(req.arrival, dtype=float)
    first = np.asarray(req.first, dtype=float)
    finish = np.asarray(req.finish, dtype=float)
    output = np.asarray(req.output, dtype=np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        tpot = np.where(output > 1, (finish - first) * 1e3 / np.maximum(output - 1, 1), np.nan)
    df = pd.DataFrame({
        "name": req.names,
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
    stop = sim.end_s
    # simulated time: until the last completion, or until serving stopped with work left
    duration = max(window, last) if bool(df["finished"].all()) else stop
    aggregate = metrics(df, window, sim.scales)
    per_llm = {name: metrics(df[df["name"] == name], window, sim.scales) for name in sim.by_name}
    utilization: dict[str, Any] = {"interval_s": sim.config.sample_interval_s, "meshes": {}}
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
        "mode": sim.plan.mode,
        "sim_duration_s": duration,
        "arrivals_until_s": float(arrival.max()) if len(arrival) else 0.0,
        "drain_limit_s": sim.end_s,
        "arrival_window_s": window,
        "events": sim.engine.processed,
        "preemptions": int(sum(m.preemptions for m in sim.meshes)),
        "unfinished": unfinished,
        "config": sim.config.to_dict(),
        "wall_s": sim.wall_s,
    }
    if sim.mismatch:  # run under another policy or other limits than the plan was placed for
        run["warnings"] = list(sim.mismatch)
    if not math.isfinite(run["sim_duration_s"]):
        run["sim_duration_s"] = 0.0
    return Results(aggregate, per_llm, utilization, run, df)
