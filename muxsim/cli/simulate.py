"""``muxsim simulate PLAN.json WORKLOAD.json``: score a plan in the discrete-event simulator."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from muxsim.errors import InputError


def register(subparsers: Any) -> None:
    from muxsim.cli.common import add_policy_flags

    p = subparsers.add_parser("simulate", help="simulate a plan serving a workload (results table or JSON)",
                              description="Replay the workload's requests against the plan and report "
                                          "throughput, TTFT, TPOT, end-to-end latency and SLO attainment.")
    p.add_argument("plan", metavar="PLAN.json")
    p.add_argument("workload", metavar="WORKLOAD.json")
    p.add_argument("--seed", type=int, default=None, help="request seed (default: the workload's seed)")
    p.add_argument("--out", metavar="RESULTS.json", help="write the results JSON here (atomically)")
    p.add_argument("--format", choices=["table", "json"], default="table")
    add_policy_flags(p)
    p.add_argument("--drain", type=float, default=None, metavar="S",
                   help="serve at most S seconds after the last arrival (default 120)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import warnings

    from muxsim.cli.common import sim_config_from
    from muxsim.io import write_json_atomic
    from muxsim.plan import load_plan
    from muxsim.sim import simulate
    from muxsim.workload import load_workload

    plan = load_plan(args.plan)
    wl = load_workload(args.workload)
    if plan.cluster.gpu != wl.cluster.gpu:
        raise InputError(f"plan.cluster.gpu: {plan.cluster.gpu!r} differs from the workload's {wl.cluster.gpu!r}")
    extra: dict[str, Any] = {}
    if args.drain is not None:
        if not args.drain >= 0:
            raise InputError(f"--drain: must be >= 0, got {args.drain!r}")
        extra["drain_s"] = args.drain
    config = sim_config_from(args, **extra)
    seed = wl.seed if args.seed is None else args.seed
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = simulate(plan, wl, seed=seed, config=config)
    for w in caught:  # e.g. a plan placed for another policy
        sys.stderr.write(f"warning: {w.message}\n")
    if args.out:
        write_json_atomic(args.out, res.to_dict())
    if args.format == "json":
        sys.stdout.write(json.dumps(res.to_dict(), indent=2) + "\n")
    else:
        print(res.table())
        if args.out:
            print(f"wrote {args.out}")
    return 0
