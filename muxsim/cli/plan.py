"""``muxsim plan WORKLOAD.json``: choose a placement and print it (table or plan JSON)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from muxsim.errors import InputError


def register(subparsers: Any) -> None:
    from muxsim.cli.common import add_policy_flags
    from muxsim.placement import ALGORITHMS

    p = subparsers.add_parser("plan", help="place a workload's LLMs on the cluster (MuxServe and baselines)",
                              description="Choose which LLMs share which GPUs and how they split the SMs.")
    p.add_argument("workload", metavar="WORKLOAD.json")
    p.add_argument("--algorithm", default="muxserve", choices=list(ALGORITHMS))
    p.add_argument("--out", metavar="PLAN.json", help="write the plan here (atomically)")
    p.add_argument("--format", choices=["table", "json"], default="table")
    add_policy_flags(p)  # the simulator's: placement plans for the policy it will run
    p.add_argument("--time-limit", type=float, default=None, metavar="S",
                   help="stop the search after S seconds (ilp: best found so far, with its bound)")
    p.set_defaults(func=run)


def options_for(algorithm: str, time_limit: float | None) -> dict[str, Any]:
    if time_limit is None or algorithm.startswith("spatial"):
        return {}
    if time_limit <= 0:
        raise InputError(f"--time-limit: must be > 0, got {time_limit!r}")
    return {"time_limit_s": time_limit}


def run(args: argparse.Namespace) -> int:
    from muxsim.cli.common import sim_config_from
    from muxsim.placement import solve_placement
    from muxsim.plan import plan_table, save_plan
    from muxsim.workload import load_workload

    wl = load_workload(args.workload)
    config = sim_config_from(args)
    res = solve_placement(wl, args.algorithm, sim_config=config, **options_for(args.algorithm, args.time_limit))
    if res.plan is None:
        raise InputError(f"{args.workload}: {args.algorithm} found no plan: {res.message}")
    if args.out:
        save_plan(res.plan, args.out)
    if args.format == "json":
        sys.stdout.write(json.dumps(res.plan.to_dict(), indent=2) + "\n")
        return 0
    rates = {m.name: float(m.rate) for m in wl.models}
    print(plan_table(res.plan, rates))
    secs = res.stats.get("placement_s")
    print(f"status: {res.status} ({res.message})" + (f", placed in {secs:.2f} s" if secs is not None else ""))
    if args.out:
        print(f"wrote {args.out}")
    return 0
