"""``muxsim simulate PLAN.json WORKLOAD.json``: score a plan in the discrete-event simulator."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from muxsim.errors import InputError


def register(subparsers: Any) -> None:
    from muxsim.policy import FLEX_POLICIES, TEMPORAL_POLICIES
    from muxsim.sim.config import KV_CACHES

    p = subparsers.add_parser("simulate", help="simulate a plan serving a workload (results table or JSON)",
                              description="Replay the workload's requests against the plan and report "
                                          "throughput, TTFT, TPOT, end-to-end latency and SLO attainment.")
    p.add_argument("plan", metavar="PLAN.json")
    p.add_argument("workload", metavar="WORKLOAD.json")
    p.add_argument("--seed", type=int, default=None, help="request seed (default: the workload's seed)")
    p.add_argument("--out", metavar="RESULTS.json", help="write the results JSON here (atomically)")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--flex-policy", choices=list(FLEX_POLICIES), default="adbs",
                   help="scheduler of flex meshes (adbs is MuxServe's)")
    p.add_argument("--temporal-policy", choices=list(TEMPORAL_POLICIES), default="fcfs")
    p.add_argument("--kv-cache", choices=list(KV_CACHES), default="unified")
    p.add_argument("--initial-quota", choices=["plan", "rate"], default="plan",
                   help="initial KV quotas: the plan's kv_share, or rate x layers x KV heads (ADBS)")
    p.add_argument("--no-interference", action="store_true", help="co-running jobs do not slow each other")
    p.add_argument("--drain", type=float, default=None, metavar="S",
                   help="serve at most S seconds after the last arrival (default 120)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from muxsim.io import write_json_atomic
    from muxsim.plan import load_plan
    from muxsim.sim import SimConfig, simulate
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
    config = SimConfig(flex_policy=args.flex_policy, temporal_policy=args.temporal_policy,
                       kv_cache=args.kv_cache, initial_quota=args.initial_quota,
                       interference_on=not args.no_interference, **extra)
    seed = wl.seed if args.seed is None else args.seed
    res = simulate(plan, wl, seed=seed, config=config)
    if args.out:
        write_json_atomic(args.out, res.to_dict())
    if args.format == "json":
        sys.stdout.write(json.dumps(res.to_dict(), indent=2) + "\n")
    else:
        print(res.table())
        if args.out:
            print(f"wrote {args.out}")
    return 0
