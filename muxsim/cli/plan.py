"""``muxsim plan WORKLOAD.json``: choose a placement, print it and say whether it carries
the load (table, or JSON: the placement result with the plan inside)."""

from __future__ import annotations

import argparse
from typing import Any

from muxsim.cli.common import (
    add_format,
    add_policy_flags,
    add_quiet,
    check_outputs,
    check_suffix,
    sim_config_from,
)
from muxsim.cli.search import ALGORITHM_HELP, add_search_options, search_options
from muxsim.errors import InputError


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
    add_policy_flags(p)  # the simulator's: placement plans for the policy it will run (the plan records it)
    add_search_options(p)
    p.set_defaults(func=run)


def verdict_rows(per_llm: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per LLM the plan does not carry (name, rate, estimate, replicas, bottleneck)."""
    return [{"name": name, "rate_rps": d["rate_rps"], "estimate.throughput_rps": d["estimate.throughput_rps"],
             "replicas": d["replicas"], "bottleneck": d["bottleneck"]}
            for name, d in per_llm.items() if not d["carried"]]


def run(args: argparse.Namespace) -> int:
    from muxsim.placement import solve_placement
    from muxsim.placement.verdict import LISTED
    from muxsim.plan import plan_rows, plan_table, save_plan
    from muxsim.progress import Progress
    from muxsim.tables import emit, render
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
        res = solve_placement(wl, args.algorithm, sim_config=config, **search_options(args.algorithm, args))
    if res.plan is None:
        raise InputError(f"{args.workload}: {args.algorithm} found no plan: {res.message}")
    if args.out:
        save_plan(res.plan, args.out, inputs=inputs)
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
