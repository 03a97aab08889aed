"""``muxsim plan WORKLOAD.json``: choose a placement and print it (table or plan JSON)."""

from __future__ import annotations

import argparse
from typing import Any

from muxsim.cli.common import (
    add_format,
    add_policy_flags,
    add_quiet,
    check_outputs,
    check_suffix,
    number,
    sim_config_from,
)
from muxsim.errors import InputError
from muxsim.limits import MAX_SEARCH, MAX_TIME_LIMIT_S


def register(subparsers: Any) -> None:
    from muxsim.placement import ALGORITHMS

    p = subparsers.add_parser("plan", help="place a workload's LLMs on the cluster (MuxServe and baselines)",
                              description="Choose which LLMs share which GPUs and how they split the SMs.")
    p.add_argument("workload", metavar="WORKLOAD.json", help="the workload to place (workload.json)")
    p.add_argument("--algorithm", default="muxserve", choices=list(ALGORITHMS),
                   help="placement algorithm: muxserve (MuxServe's enumeration greedy), greedy-memory, spatial "
                        "(dedicated GPUs, spare ones spent), spatial-min (the paper's spatial baseline), "
                        "temporal (whole-mesh turns), ilp (exact, PuLP + HiGHS)")
    p.add_argument("--out", metavar="PLAN.json", help="write the plan here (.json)")
    add_format(p)
    add_quiet(p)
    add_policy_flags(p)  # the simulator's: placement plans for the policy it will run (the plan records it)
    p.add_argument("--time-limit", type=number(0, MAX_TIME_LIMIT_S, lo_open=True), default=None, metavar="S",
                   help="stop the search after S seconds (ilp: best found so far, with its bound; default: "
                        f"no limit but the ilp's 60 s; searches of over {MAX_SEARCH:,} LLM x mesh fills need one)")
    p.set_defaults(func=run)


def options_for(algorithm: str, time_limit: float | None) -> dict[str, Any]:
    return {} if time_limit is None else {"time_limit_s": time_limit}


def run(args: argparse.Namespace) -> int:
    from muxsim.placement import solve_placement
    from muxsim.plan import plan_rows, plan_table, save_plan
    from muxsim.progress import Progress
    from muxsim.tables import emit
    from muxsim.workload import input_files, load_workload

    check_suffix(args.out, (".json",), "--out")
    inputs = [("workload", args.workload)]
    check_outputs([("--out", args.out)], inputs)
    wl = load_workload(args.workload)
    inputs += input_files(wl)
    check_outputs([("--out", args.out)], inputs)
    config = sim_config_from(args)
    with Progress(f"plan ({args.algorithm})", quiet=args.quiet) as bar:
        bar.status("searching")
        res = solve_placement(wl, args.algorithm, sim_config=config, **options_for(args.algorithm, args.time_limit))
    if res.plan is None:
        raise InputError(f"{args.workload}: {args.algorithm} found no plan: {res.message}")
    if args.out:
        save_plan(res.plan, args.out, inputs=inputs)
    rates = {m.name: float(m.rate or 0.0) for m in wl.models}
    if args.format != "table":
        emit(args.format, plan_rows(res.plan, rates, wl.names()), doc=res.plan.to_dict())
        return 0
    print(plan_table(res.plan, rates, wl.names()))
    secs = res.stats.get("placement_s")
    print(f"status: {res.status} ({res.message})" + (f", placed in {secs:.2f} s" if secs is not None else ""))
    if args.out:
        print(f"wrote {args.out}")
    return 0
