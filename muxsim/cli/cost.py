"""``muxsim cost``: how long one prefill or decode step takes."""

from __future__ import annotations

import argparse
import math
from typing import Any

from muxsim.cli.common import add_format, print_json
from muxsim.errors import InputError


def register(sub: Any) -> None:
    p = sub.add_parser("cost", help="latency of one prefill or decode step",
                       description="Latency of one prefill (batch x seq_len tokens) or decode step (batch "
                                   "sequences of seq_len tokens of context) from the cost model.")
    p.add_argument("model", help="catalog name (llama-7b, ...) or a config.json path")
    p.add_argument("--gpu", required=True, help="GPU catalog name (a100-80gb, h100-80gb, ...)")
    p.add_argument("--phase", required=True, choices=["prefill", "decode"])
    p.add_argument("--batch", required=True, type=int)
    p.add_argument("--seq-len", required=True, type=int)
    p.add_argument("--tp", type=int, default=1, help="tensor-parallel degree (default 1)")
    p.add_argument("--sm", type=float, default=1.0, help="share of the SMs, in (0, 1] (default 1)")
    p.add_argument("--profile", help="measured profile (CSV/JSONL) to interpolate instead of the analytic model")
    p.add_argument("--params", help="fitted parameters from `muxsim calibrate` for the analytic model")
    p.add_argument("--engine", metavar="NAME",
                   help="per-step engine overhead preset: vllm-2024-ray, lean, none or datasheet (default vllm-2024-ray: vLLM of 2024 with Ray "
                        "tensor-parallel workers, as MuxServe ran; lean: the same without the Ray hop; "
                        "none: kernel time only)")
    add_format(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from muxsim.costmodel import cost_model

    if args.batch < 1:
        raise InputError(f"--batch: must be >= 1, got {args.batch}")
    if args.seq_len < 1:
        raise InputError(f"--seq-len: must be >= 1, got {args.seq_len}")
    if not (math.isfinite(args.sm) and 0 < args.sm <= 1):
        raise InputError(f"--sm: must be in (0, 1], got {args.sm}")
    if args.tp < 1:
        raise InputError(f"--tp: must be >= 1, got {args.tp}")
    cm = cost_model(args.gpu, profile=args.profile, params=args.params, engine=args.engine)
    ms = float(cm.phase_ms(args.phase, args.model, args.batch, args.seq_len, args.tp, args.sm))
    out = {"latency_ms": ms, "model": args.model, "gpu": cm.gpu.name, "phase": args.phase,
           "batch": args.batch, "seq_len": args.seq_len, "tp": args.tp, "sm": args.sm,
           "backend": cm.kind, "params_source": getattr(cm, "params_source", None) or
           getattr(getattr(cm, "fallback", None), "params_source", None)}
    if args.format == "json":
        print_json(out)
    else:
        print(f"{args.phase} {args.model} on {cm.gpu.name} (tp={args.tp}, sm={args.sm:.0%}, batch={args.batch}, "
              f"seq_len={args.seq_len}): {ms:.3f} ms [{cm.kind}]")
        if out["params_source"]:
            print(f"parameters: {out['params_source']}")
    return 0
