"""``muxsim plan WORKLOAD.json``: choose a placement and print it (table or plan JSON)."""

from __future__ import annotations

import argparse
from typing import Any

from muxsim.cli.common import check_outputs, number, print_json
from muxsim.errors import InputError
from muxsim.limits import MAX_TIME_LIMIT_S


def register(subparsers: Any) -> None:
    from muxsim.placement import ALGORITHMS

    p = subparsers.add_parser("plan", help="place a workload's LLMs on the cluster (MuxServe and baselines)",
                              description="Choose which LLMs share which GPUs and how they split the SMs.")
    p.add_argument("workload", metavar="WORKLOAD.json")
    p.add_argument("--algorithm", default="muxserve", choices=list(ALGORITHMS))
    p.add_argument("--out", metavar="PLAN.json", help="write the plan here (atomically)")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--no-interference", action="store_true",
                   help="estimate as if co-running jobs did not slow each other (as `simulate --no-interference`)")
    p.add_argument("--time-limit", type=number(0, MAX_TIME_LIMIT_S, lo_open=True), default=None, metavar="S",
                   help="stop the search after S seconds (ilp: best found so far, with its bound)")
    p.set_defaults(func=run)


def options_for(algorithm: str, time_limit: float | None) -> dict[str, Any]:
    return {} if time_limit is None else {"time_limit_s": time_limit}


def run(args: argparse.Namespace) -> int:
    from muxsim.placement import solve_placement
    from muxsim.plan import plan_table, save_plan
    from muxsim.workload import input_files, load_workload

    check_outputs([("--out", args.out)], [("workload", args.workload)])
    wl = load_workload(args.workload)
    check_outputs([("--out", args.out)], input_files(wl))
    from muxsim.sim.config import SimConfig

    config = SimConfig(interference_on=not args.no_interference)
    res = solve_placement(wl, args.algorithm, sim_config=config, **options_for(args.algorithm, args.time_limit))
    if res.plan is None:
        raise InputError(f"{args.workload}: {args.algorithm} found no plan: {res.message}")
    if args.out:
        save_plan(res.plan, args.out, inputs=[("workload", args.workload)])
    if args.format == "json":
        print_json(res.plan.to_dict())
        return 0
    rates = {m.name: float(m.rate) for m in wl.models}
    print(plan_table(res.plan, rates))
    secs = res.stats.get("placement_s")
    print(f"status: {res.status} ({res.message})" + (f", placed in {secs:.2f} s" if secs is not None else ""))
    if args.out:
        print(f"wrote {args.out}")
    return 0
