"""Placement speed: the default algorithm (flex-slo) and its pure-estimator path (flex)
on the paper's 19-LLM / 32-GPU case, MuxServe's greedy beside them, a 100-LLM / 256-GPU
case, the ILP against the heuristics on a 6-LLM / 8-GPU case, and the ILP's time limit
on 24 LLMs / 32 GPUs (the limit covers building the model).

Prints one JSON line. Run: ``python benchmarks/bench_placement.py [--alpha 2.1]``. The
19-LLM times are the median of 3 runs (``runs_s`` lists them), each from scratch.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from typing import Any

import muxsim as mx
from muxsim.models import resolve_model
from muxsim.placement import DEFAULT_ALGORITHM, solve_placement
from muxsim.placement.problem import LLM, Problem
from muxsim.plan import Cluster

PAPER_MIX = "12xllama-7b,4xllama-13b,2xllama-30b,1xllama-65b"
STATS = ("search", "groups", "groups_evaluated", "estimator_calls", "columns", "bound", "gap", "mesh_sizes", "origin",
         "chosen", "moves", "simulated_groups", "build_s", "solve_s", "columns_complete")


def zipf_problem(mix: list[str], alpha: float, max_rate: float, nodes: int, gpus_per_node: int) -> Problem:
    """The paper's synthetic shape: rate_i = max_rate * (i + 1) ** -alpha, ShareGPT means."""
    llms = tuple(LLM(name=f"llm-{i}", model=m, spec=resolve_model(m), rate=max_rate * (i + 1) ** -alpha,
                     prompt_len=161.0, output_len=338.0) for i, m in enumerate(mix))
    return Problem(llms=llms, cluster=Cluster("a100-80gb", nodes, gpus_per_node))


def timed(problem: Any, algorithm: str, repeat: int = 1, **options: Any) -> dict[str, Any]:
    """Placement time; with ``repeat`` > 1 the median of that many runs, each with a fresh
    estimator (nothing memoized carries over), and every run's time."""
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        res = solve_placement(problem, algorithm, **options)
        runs.append(time.perf_counter() - t)
    extra = {"runs_s": [round(x, 3) for x in runs]} if repeat > 1 else {}
    return {"seconds": round(statistics.median(runs), 3), **extra, "status": res.status,
            "objective_rps": round(res.objective, 3), "verdict": res.verdict[:80],
            "stats": {k: v for k, v in res.stats.items() if k in STATS}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--alpha", type=float, default=2.1)
    ap.add_argument("--ilp-time-limit", type=float, default=120.0)
    args = ap.parse_args()
    import muxsim.costmodel
    import muxsim.sim.config  # noqa: F401

    out: dict[str, Any] = {"bench": "placement", "python": platform.python_version(), "alpha": args.alpha,
                           "default": DEFAULT_ALGORITHM}
    wl = mx.synth_workload(PAPER_MIX, alpha=args.alpha, max_rate=40.0, duration=240, seed=0)
    out["paper_19llm_32gpu"] = {a: timed(wl, a, repeat=3) for a in (DEFAULT_ALGORITHM, "flex", "muxserve")}
    big_mix = ["llama-7b"] * 60 + ["llama-13b"] * 24 + ["llama-30b"] * 10 + ["llama-65b"] * 6
    big = zipf_problem(big_mix, args.alpha, 200.0, 32, 8)
    out["llm100_gpu256"] = {a: timed(big, a) for a in ("flex", "muxserve")}
    small_mix = ["llama-7b"] * 3 + ["llama-13b"] * 2 + ["llama-30b"]
    gaps = []
    for alpha, max_rate in ((0.9, 30.0), (0.5, 30.0), (1.3, 60.0), (2.1, 80.0)):
        small = zipf_problem(small_mix, alpha, max_rate, 1, 8)
        ilp = timed(small, "ilp", time_limit_s=args.ilp_time_limit)
        row: dict[str, Any] = {"alpha": alpha, "max_rate": max_rate, "offered_rps": round(small.total_rate, 3),
                               "ilp": ilp}
        for a in ("muxserve", "flex"):  # gap to the ILP's optimum (negative: better than the ILP's space)
            r = timed(small, a)
            row[a] = r
            row[f"{a}_gap"] = round((ilp["objective_rps"] - r["objective_rps"]) / ilp["objective_rps"], 4)
        gaps.append(row)
    out["ilp_6llm_8gpu"] = gaps
    mix24 = ["llama-7b"] * 16 + ["llama-13b"] * 4 + ["llama-30b"] * 2 + ["llama-65b"] * 2
    limits = []
    for limit in (2.0, 5.0, 20.0):
        r = timed(zipf_problem(mix24, 0.5, 60.0, 4, 8), "ilp", time_limit_s=limit)
        limits.append({"time_limit_s": limit, **r})
    out["ilp_24llm_32gpu_time_limit"] = limits
    print(json.dumps(out))


if __name__ == "__main__":
    main()
