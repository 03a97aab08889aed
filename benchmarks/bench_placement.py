"""Placement speed: the paper's 19-LLM / 32-GPU case, a 100-LLM / 256-GPU case, and the
ILP's time and the greedy's optimality gap on a 6-LLM / 8-GPU case.

Prints one JSON line. Run: ``python benchmarks/bench_placement.py [--alpha 2.1]``. The
19-LLM time is the median of 3 runs (``runs_s`` lists them).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

from muxsim.models import resolve_model
from muxsim.placement import solve_placement
from muxsim.placement.problem import LLM, Problem
from muxsim.plan import Cluster


def zipf_problem(mix: list[str], alpha: float, max_rate: float, nodes: int, gpus_per_node: int) -> Problem:
    """The paper's synthetic shape: rate_i = max_rate * (i + 1) ** -alpha, ShareGPT means."""
    llms = tuple(LLM(name=f"llm-{i}", model=m, spec=resolve_model(m), rate=max_rate * (i + 1) ** -alpha,
                     prompt_len=161.0, output_len=338.0) for i, m in enumerate(mix))
    return Problem(llms=llms, cluster=Cluster("a100-80gb", nodes, gpus_per_node))


def timed(problem: Problem, algorithm: str, repeat: int = 1, **options) -> dict:
    """Placement time; with ``repeat`` > 1 the median of that many runs, each with a fresh
    estimator (nothing memoized carries over), and every run's time."""
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        res = solve_placement(problem, algorithm, **options)
        runs.append(time.perf_counter() - t)
    extra = {"runs_s": [round(x, 3) for x in runs]} if repeat > 1 else {}
    return {"seconds": round(statistics.median(runs), 3), **extra, "status": res.status,
            "objective_rps": round(res.objective, 3), "stats": {k: v for k, v in res.stats.items()
                                                                if k in ("search", "groups", "groups_evaluated",
                                                                         "estimator_calls", "columns", "bound",
                                                                         "gap", "mesh_sizes")}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--alpha", type=float, default=2.1)
    ap.add_argument("--ilp-time-limit", type=float, default=120.0)
    args = ap.parse_args()
    import muxsim.costmodel
    import muxsim.sim.config  # noqa: F401

    paper_mix = ["llama-7b"] * 12 + ["llama-13b"] * 4 + ["llama-30b"] * 2 + ["llama-65b"]
    out: dict = {"bench": "placement", "python": platform.python_version(), "alpha": args.alpha}
    out["paper_19llm_32gpu"] = timed(zipf_problem(paper_mix, args.alpha, 40.0, 4, 8), "muxserve", repeat=3)
    big_mix = ["llama-7b"] * 60 + ["llama-13b"] * 24 + ["llama-30b"] * 10 + ["llama-65b"] * 6
    out["llm100_gpu256"] = timed(zipf_problem(big_mix, args.alpha, 200.0, 32, 8), "muxserve")
    small_mix = ["llama-7b"] * 3 + ["llama-13b"] * 2 + ["llama-30b"]
    gaps = []
    for alpha, max_rate in ((0.9, 30.0), (0.5, 30.0), (1.3, 60.0), (2.1, 80.0)):
        small = zipf_problem(small_mix, alpha, max_rate, 1, 8)
        greedy = timed(small, "muxserve")
        ilp = timed(small, "ilp", time_limit_s=args.ilp_time_limit)
        gap = (ilp["objective_rps"] - greedy["objective_rps"]) / ilp["objective_rps"]
        gaps.append({"alpha": alpha, "max_rate": max_rate, "offered_rps": round(small.total_rate, 3),
                     "ilp": ilp, "greedy": greedy, "greedy_gap": round(gap, 4)})
    out["ilp_6llm_8gpu"] = gaps
    print(json.dumps(out))


if __name__ == "__main__":
    main()
