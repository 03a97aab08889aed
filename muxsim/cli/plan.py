"""``muxsim plan WORKLOAD.json``: choose a placement, print it and say whether it carries
the load (table, or JSON: the placement result with the plan inside)."""

from __future__ import annotations

import argparse
import math
from typing import Any

from muxsim.cli.common import add_format, add_quiet, check_suffix
from muxsim.errors import InputError
from muxsim.placement.verdict import LISTED

ALGORITHM_HELP = ("flex-slo (flex, candidates re-scored by short simulations), flex (MuxServe's multiplexing "
                  "with replicas, estimator only), muxserve (MuxServe's enumeration greedy), greedy-memory, spatial "
                  "(dedicated GPUs, spare ones spent), spatial-min (the paper's spatial baseline), temporal "
                  "(whole-mesh turns), ilp (exact among plans whose replicas run alone; HiGHS)")


def register(subparsers: Any) -> None:
    from muxsim.placement import ALGORITHMS, DEFAULT_ALGORITHM

    p = subparsers.add_parser("plan", help="place a workload's LLMs on the cluster (MuxServe and baselines)",
                              description="Choose which LLMs share which GPUs and how they split the SMs, and "
                                          "say whether the plan carries each LLM's rate (by the estimator).")
    p.add_argument("workload", metavar="WORKLOAD.json", help="the workload to place (workload.json)")
    p.add_argument("--algorithm", default=DEFAULT_ALGORITHM, choices=list(ALGORITHMS),
                   help=f"placement algorithm: {ALGORITHM_HELP}")
    p.add_argument("--out", metavar="PLAN.json", help="write the plan here (.json)")
    add_format(p)
    add_quiet(p)
    p.add_argument("--no-interference", action="store_true",
                   help="estimate as if co-running jobs did not slow each other (as `simulate --no-interference`)")
    add_search_options(p)
    p.set_defaults(func=run)


def add_search_options(p: argparse.ArgumentParser, time_limit: float | None = None) -> None:
    """Options of the searches (plan, compare and capacity share them)."""
    from muxsim.placement.scoring import HORIZON_S
    from muxsim.placement.slo import BUDGET

    p.add_argument("--time-limit", type=float, default=time_limit, metavar="S",
                   help="stop each search after S seconds, model building included (ilp: best found so far, "
                        "with its gap)" + ("" if time_limit is not None else "; default: no limit but the ilp's 60 s"))
    p.add_argument("--budget", type=int, default=BUDGET, metavar="N",
                   help="flex-slo: candidate plans it simulates")
    p.add_argument("--score-horizon", type=float, default=HORIZON_S, metavar="S",
                   help="flex-slo: seconds of requests each candidate is simulated on")
    p.add_argument("--score-seed", type=int, default=None, metavar="N",
                   help="flex-slo: seed of the scoring requests (default: the workload's seed + 1, so that "
                        "placement is not scored on the run it is evaluated with)")
    p.add_argument("--slo-scale", type=float, default=None, metavar="X",
                   help="flex-slo: maximize SLO attainment at X times each request's latency alone (default: the "
                        "workload's absolute targets if it sets any, else 8)")


def search_options(algorithm: str, args: argparse.Namespace) -> dict[str, Any]:
    """The options ``algorithm`` takes, from the parsed command line (bad values: InputError)."""
    time_limit = getattr(args, "time_limit", None)
    opts: dict[str, Any] = {}
    if time_limit is not None:
        if not (math.isfinite(time_limit) and time_limit > 0):
            raise InputError(f"--time-limit: must be > 0, got {time_limit!r}")
        if not algorithm.startswith("spatial"):
            opts["time_limit_s"] = time_limit
    budget, horizon = getattr(args, "budget", None), getattr(args, "score_horizon", None)
    scale = getattr(args, "slo_scale", None)
    if budget is not None and budget < 1:
        raise InputError(f"--budget: must be >= 1, got {budget!r}")
    if horizon is not None and not (math.isfinite(horizon) and 0 < horizon <= 1e6):
        raise InputError(f"--score-horizon: must be in (0, 1e6] seconds, got {horizon!r}")
    if scale is not None and not (math.isfinite(scale) and 0 < scale <= 1e6):
        raise InputError(f"--slo-scale: must be a positive number, got {scale!r}")
    seed = getattr(args, "score_seed", None)
    if seed is not None and seed < 0:
        raise InputError(f"--score-seed: must be >= 0, got {seed!r}")
    if algorithm == "flex-slo":
        opts.update({k: v for k, v in (("budget", budget), ("score_horizon_s", horizon), ("score_seed", seed),
                                       ("slo_scale", scale)) if v is not None})
    return opts


def verdict_rows(per_llm: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per LLM the plan does not carry (name, rate, estimate, replicas, bottleneck)."""
    return [{"name": name, "rate_rps": d["rate_rps"], "estimate.throughput_rps": d["estimate.throughput_rps"],
             "replicas": d["replicas"], "bottleneck": d["bottleneck"]}
            for name, d in per_llm.items() if not d["carried"]]


def run(args: argparse.Namespace) -> int:
    from muxsim.placement import solve_placement
    from muxsim.plan import plan_rows, plan_table, save_plan
    from muxsim.progress import Progress
    from muxsim.tables import emit, render
    from muxsim.workload import load_workload

    check_suffix(args.out, (".json",), "--out")
    opts = search_options(args.algorithm, args)
    wl = load_workload(args.workload)
    from muxsim.sim.config import SimConfig

    config = SimConfig(interference_on=not args.no_interference)
    with Progress(f"plan ({args.algorithm})", quiet=args.quiet) as bar:
        bar.status("searching")
        res = solve_placement(wl, args.algorithm, sim_config=config, **opts)
    if res.plan is None:
        raise InputError(f"{args.workload}: {args.algorithm} found no plan: {res.message}")
    if args.out:
        save_plan(res.plan, args.out)
    rates = {m.name: float(m.rate or 0.0) for m in wl.models}
    if args.format != "table":
        emit(args.format, plan_rows(res.plan, rates, wl.names()), doc=res.to_dict())
        return 0
    print(plan_table(res.plan, rates, wl.names()))
    secs = res.stats.get("placement_s")
    print(f"status: {res.status} ({res.message})" + (f", placed in {secs:.2f} s" if secs is not None else ""))
    print(f"verdict: {res.verdict}")
    short = verdict_rows(res.per_llm)
    if len(short) > LISTED:  # the verdict names only the first few
        print(render(short))
    if args.out:
        print(f"wrote {args.out}")
    return 0
