"""``muxsim validate PLAN.json WORKLOAD.json``: the simulator's prediction against a run."""

from __future__ import annotations

import argparse
from typing import Any

from muxsim.cli.common import add_format, check_suffix


def register(subparsers: Any) -> None:
    from muxsim.cli.execute import add_execute_options

    p = subparsers.add_parser(
        "validate", help="simulate and execute a plan on the same requests; predicted vs measured",
        description="Run the simulator and the executor on the same requests and print, per LLM and overall, "
                    "predicted and measured throughput, TTFT p50/p99 and TPOT p50/p99 with the relative "
                    "difference. The simulator's step costs come from --profile, or from a profile of the "
                    "plan's models measured on this machine just before (tiny models on a CPU).")
    add_execute_options(p, speed=False)
    p.add_argument("--profile", metavar="CSV", default=None,
                   help="profile of the plan's models on this machine (default: measure one now)")
    p.add_argument("--out", metavar="VALIDATE.json", help="write the comparison document here (.json)")
    add_format(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from muxsim.cli.execute import executor_kwargs, exit_status, load_inputs
    from muxsim.executor.validate import rows, validate
    from muxsim.io import check_input, write_json_atomic
    from muxsim.progress import Progress
    from muxsim.tables import emit

    check_suffix(args.out, (".json",), "--out")
    if args.profile is not None:
        check_input(args.profile, "--profile")
    plan, wl, inputs = load_inputs(args, [("--out", args.out)], extra=[("--profile", args.profile)])
    kw = executor_kwargs(args)
    device = kw.pop("device")
    with Progress("validate", unit="req", quiet=args.quiet) as bar:
        doc = validate(plan, wl, seed=args.seed, profile=args.profile, device=device, execute_kw=kw,
                       progress=bar.done_of)
    if args.out:
        write_json_atomic(args.out, doc, inputs=inputs)
    r = doc["run"]
    emit(args.format, rows(doc), ["name", "metric", "predicted", "measured", "diff_pct"],
         doc={k: v for k, v in doc.items() if k not in ("simulated", "executed")},
         notes=[f"{r['requests']} requests, seed {r['seed']}, executor {r['status']} ({r['backend']}); "
                f"simulator costs: {r['profile']}"])
    return exit_status(r["status"])
