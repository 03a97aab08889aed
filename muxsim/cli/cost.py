"""``muxsim cost``: how long one prefill or decode step takes."""

from __future__ import annotations

import argparse
from typing import Any

from muxsim.cli.common import add_format, number, sm_share
from muxsim.errors import InputError
from muxsim.limits import MAX_BATCH, MAX_GPUS_PER_NODE, MAX_TOKENS
from muxsim.tables import emit


def register(sub: Any) -> None:
    p = sub.add_parser("cost", help="latency of one prefill or decode step",
                       description="Latency of one prefill (batch x seq_len tokens) or decode step (batch "
                                   "sequences of seq_len tokens of context) from the cost model.")
    p.add_argument("model", help="catalog name (llama-7b, ...), an alias or Hugging Face id "
                                 "(meta-llama/Llama-2-7b-hf), or a config.json path")
    p.add_argument("--gpu", required=True, help="GPU catalog name (a100-80gb, h100-80gb, ...)")
    p.add_argument("--phase", required=True, choices=["prefill", "decode"],
                   help="prefill: batch x seq-len prompt tokens at once; decode: one token for each of batch "
                        "sequences")
    p.add_argument("--batch", required=True, type=number(1, MAX_BATCH, integer=True), help="sequences in the batch")
    p.add_argument("--seq-len", required=True, type=number(1, MAX_TOKENS, integer=True),
                   help="tokens per sequence (prefill: prompt length; decode: context length), at most the "
                        "model's context window")
    p.add_argument("--tp", type=number(1, MAX_GPUS_PER_NODE, integer=True), default=1,
                   help="tensor-parallel degree (default 1)")
    p.add_argument("--sm", type=sm_share, default="100%",
                   help="share of the SMs: 50%% or 0.5, at least 1%% (a bare whole number from 2 to 100 is a "
                        "percentage)")
    p.add_argument("--profile", help="measured profile (CSV/JSONL) to interpolate instead of the analytic model")
    p.add_argument("--params", help="fitted parameters from `muxsim calibrate` for the analytic model")
    p.add_argument("--engine", metavar="NAME",
                   help="per-step engine overhead preset: vllm-2024-ray, lean, none or datasheet (default "
                        "vllm-2024-ray: vLLM of 2024 with Ray tensor-parallel workers, as MuxServe ran, or what "
                        "--params names; lean: the same without the Ray hop; none: kernel time only)")
    add_format(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from muxsim.costmodel import check_engine, cost_model
    from muxsim.models import resolve_model

    spec = resolve_model(args.model)
    if args.seq_len > spec.context_window:
        raise InputError(f"--seq-len: {args.seq_len} tokens exceed the {spec.context_window}-token context window "
                         f"of {spec.name}")
    check_engine(args.engine, "--engine")
    cm = cost_model(args.gpu, profile=args.profile, params=args.params, engine=args.engine)
    ms = float(cm.phase_ms(args.phase, args.model, args.batch, args.seq_len, args.tp, args.sm))
    source = getattr(cm, "params_source", None) or getattr(getattr(cm, "fallback", None), "params_source", None)
    out = {"latency_ms": ms, "model": args.model, "gpu": cm.gpu.name, "phase": args.phase,
           "batch": args.batch, "seq_len": args.seq_len, "tp": args.tp, "sm": args.sm,
           "backend": cm.kind, "engine": args.engine, "params_source": source}
    emit(args.format, [out], ["model", "gpu", "phase", "batch", "seq_len", "tp", "sm", "backend", "latency_ms"],
         doc=out, notes=[f"parameters: {source}"] if source else ())
    return 0
