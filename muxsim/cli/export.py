"""``muxsim export PLAN.json --to vllm [--out DIR]``: launch commands for another engine."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from muxsim.cli.common import add_format, check_outputs


def register(subparsers: Any) -> None:
    from muxsim.export import TARGETS

    p = subparsers.add_parser(
        "export", help="turn a plan into launch commands for another serving engine (vLLM)",
        description="Per unit of the plan, the `vllm serve` command line (tensor parallel size, GPU memory "
                    "share from its weights and KV share, batch cap, Hugging Face id) with its "
                    "CUDA_VISIBLE_DEVICES and, on flex meshes, the MPS daemon and the unit's "
                    "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE; plus a router config. What vLLM cannot reproduce "
                    "(ADBS's shared KV quotas, separate prefill and decode SM shares) is stated in every output.")
    p.add_argument("plan", metavar="PLAN.json", help="the plan (from `muxsim plan --out`)")
    p.add_argument("--to", choices=list(TARGETS), required=True, help="the engine to export to")
    p.add_argument("--out", metavar="DIR",
                   help="write a folder (new or empty): nodeN.sh per node, router.json, units.json, README.txt; "
                        "default: print the scripts")
    add_format(p, ("table", "json"))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from muxsim.export import export_vllm, fill_folder
    from muxsim.io import write_dir_atomic
    from muxsim.plan import load_plan
    from muxsim.plancheck import plan_files
    from muxsim.tables import print_json

    inputs = [("plan", args.plan)]
    check_outputs([], inputs, [("--out", args.out)])
    plan = load_plan(args.plan)
    plan.verify()
    inputs += plan_files(plan)
    check_outputs([], inputs, [("--out", args.out)])
    doc = export_vllm(plan)
    if args.out:
        write_dir_atomic(args.out, fill_folder(doc), what="--out", inputs=inputs)
    if args.format == "json":
        print_json(doc)
    elif args.out:
        n = len(doc["scripts"])
        print(f"wrote {args.out.rstrip('/')}/: {n} node script{'s' * (n != 1)}, router.json, units.json, "
              f"README.txt ({len(doc['units'])} vllm serve processes)")
        for c in doc["caveats"]:
            print(f"note: {c}")
    else:
        for name, text in doc["scripts"].items():
            sys.stdout.write(f"# ---- {name}\n{text}")
    return 0
