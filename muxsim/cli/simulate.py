"""``muxsim simulate PLAN.json WORKLOAD.json``: score a plan in the discrete-event simulator."""

from __future__ import annotations

import argparse
from typing import Any

from muxsim.cli.common import (
    SEED,
    add_policy_flags,
    add_run_options,
    check_outputs,
    check_suffix,
    number,
    sim_config_from,
)
from muxsim.limits import MAX_TIME_S


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("simulate", help="simulate a plan serving a workload (results table or JSON)",
                              description="Replay the workload's requests against the plan and report "
                                          "throughput, TTFT, TPOT, end-to-end latency and SLO attainment.")
    p.add_argument("plan", metavar="PLAN.json", help="the plan (plan.json, from `muxsim plan --out`)")
    p.add_argument("workload", metavar="WORKLOAD.json", help="the workload the plan serves")
    p.add_argument("--seed", type=SEED, default=None, help="request seed (default: the workload's seed)")
    p.add_argument("--out", metavar="RESULTS.json", help="write the results document here (.json)")
    add_run_options(p)
    add_policy_flags(p)  # a plan placed for another policy runs with a warning
    p.add_argument("--drain", type=number(0, MAX_TIME_S, allow_inf=True), default=None, metavar="S",
                   help="serve at most S seconds after the last arrival (default 120; inf: until every request "
                        "is served or none can be)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from muxsim.io import write_json_atomic
    from muxsim.metrics import parse_percentiles
    from muxsim.plan import load_plan
    from muxsim.plancheck import check_plan_workload, plan_files
    from muxsim.progress import Progress
    from muxsim.sim import simulate
    from muxsim.tables import emit
    from muxsim.workload import input_files, load_workload

    check_suffix(args.out, (".json",), "--out")
    percentiles = parse_percentiles(args.percentiles)
    inputs = [("plan", args.plan), ("workload", args.workload)]
    outputs, folders = [("--out", args.out)], [("--out-dir", args.out_dir)]
    check_outputs(outputs, inputs, folders)
    plan = load_plan(args.plan)
    wl = load_workload(args.workload)
    inputs += input_files(wl) + plan_files(plan)
    check_outputs(outputs, inputs, folders)
    extra: dict[str, Any] = {}
    if args.drain is not None:
        extra["drain_s"] = args.drain
    config = sim_config_from(args, **extra)
    check_plan_workload(plan, wl, limits=config.limits)  # the first mismatch, before any work
    seed = wl.seed if args.seed is None else args.seed
    with Progress("simulate", unit="req", quiet=args.quiet) as bar:
        res = simulate(plan, wl, seed=seed, config=config, percentiles=percentiles, progress=bar.done_of,
                       truncate=args.truncate, max_requests=args.max_requests)
    notes = []
    if args.out:
        write_json_atomic(args.out, res.to_dict(), inputs=inputs)
        notes.append(f"wrote {args.out}")
    if args.out_dir:
        from muxsim.runfolder import Run, build_run_folder, write_run_folder

        folder = build_run_folder("simulate", wl, [Run(plan.algorithm, plan, res)], config=config, seed=seed,
                                  summary=res.to_dict())
        write_run_folder(args.out_dir, folder, workload=wl, figures=not args.no_figures, quiet=args.quiet,
                         inputs=inputs)
        notes.append(f"wrote {args.out_dir.rstrip('/')}/")
    if args.format == "table":
        print(res.table())
        for n in notes:
            print(n)
    else:
        emit(args.format, res.rows(), doc=res.to_dict())
    return 0
