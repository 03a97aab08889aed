"""``muxsim profile``: measure a model's prefill and decode step latencies.

Writes the tidy profile CSV of docs/design.md (plus ``<stem>.models.json`` for models
outside the catalog and ``<stem>.meta.json`` on how the run went); with
``--interference`` also runs prefill/decode co-location pairs into a companion CSV.
torch is imported only by the worker processes, so ``muxsim --help`` stays light.
"""

from __future__ import annotations

import argparse
import sys

from muxsim.cli.common import SEED, add_format, check_outputs, check_suffix, number, parse_sm_shares
from muxsim.errors import InputError
from muxsim.io import dumps_json
from muxsim.limits import MAX_GPUS_PER_NODE, MAX_TOKENS


def sm_percentages(text: str | None) -> list[int] | None:
    """``--sm-grid`` as whole percentages (MPS takes whole percentages)."""
    if text is None:
        return None
    out = []
    for share in parse_sm_shares(text, "--sm-grid"):
        pct = round(share * 100, 6)
        if not float(pct).is_integer():
            raise InputError(f"--sm-grid: {pct:g}% is not a whole percentage (MPS takes whole percentages)")
        out.append(int(pct))
    return sorted(set(out))


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "profile", help="measure prefill/decode latencies (GPU; tiny models on CPU)",
        description="Measure prefill (batch x seq_len tokens) and decode steps (batch sequences with "
                    "seq_len tokens of context) across SM shares; write a profile CSV.")
    p.add_argument("--model", required=True,
                   help="catalog name, tiny-<layers>l-<hidden>h, inline JSON architecture or config.json")
    p.add_argument("--tp", type=number(1, MAX_GPUS_PER_NODE, integer=True), default=1,
                   help="tensor-parallel degree (that many GPUs)")
    p.add_argument("--sm-grid", default=None,
                   help="SM shares to measure, as percentages or fractions: 30%%,50%%,100%% or 0.3,0.5,1 "
                        "(a bare whole number from 2 to 100 is a percentage, so 30,50,100 works too; whole "
                        "percentages from 1%% to 100%%; default 100%%)")
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda",
                   help="where to measure: a CUDA GPU, or the CPU (tiny models, for tests)")
    p.add_argument("--out", required=True, help="profile CSV to write (.csv)")
    p.add_argument("--prefill-batches", default=None, metavar="B,B,...",
                   help="prefill batch sizes (default GPU 1,2,4,8,16; CPU 1,2,4)")
    p.add_argument("--prefill-seq-lens", default=None, metavar="S,S,...",
                   help="prefill prompt lengths (default GPU 64,...,2048; CPU 16,32,64)")
    p.add_argument("--decode-batches", default=None, metavar="B,B,...",
                   help="decode batch sizes (default GPU 1,2,4,...,256; CPU 1,4,16)")
    p.add_argument("--decode-seq-lens", default=None, metavar="S,S,...",
                   help="decode context lengths (default GPU 64,...,2048; CPU 16,64,128)")
    p.add_argument("--max-prefill-tokens", type=number(1, MAX_TOKENS, integer=True), default=None,
                   help="skip prefill points above this many tokens (default GPU 16384, CPU 256)")
    p.add_argument("--warmup", type=number(0, 10_000, integer=True), default=3,
                   help="untimed runs before each point")
    p.add_argument("--repeats", type=number(1, 100_000, integer=True), default=10,
                   help="timed runs of each point (the median is kept)")
    p.add_argument("--rounds", type=number(1, 1000, integer=True), default=None,
                   help="passes over the grid, repeats split between them (default: 1 on a GPU, 3 on a CPU)")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the random weights and inputs")
    p.add_argument("--dtype", choices=["float16", "bfloat16", "float32"], default=None,
                   help="default: the model's dtype on a GPU, float32 on a CPU")
    p.add_argument("--weights", default=None, help="directory of *.safetensors (default: random weights)")
    p.add_argument("--mps", choices=["auto", "require", "off"], default="auto",
                   help="auto: use or start MPS for shares below 100, skip them if impossible")
    p.add_argument("--no-cuda-graphs", action="store_true",
                   help="time decode steps eagerly (default: captured in a CUDA graph on a GPU)")
    p.add_argument("--interference", default=None, help="also write a co-location CSV here")
    p.add_argument("--colocate", default="30:70,50:50,70:30", help="PREFILL_SM:DECODE_SM pairs")
    p.add_argument("--colocate-prefill", default=None, help="BxS prefill job (default GPU 1x1024, CPU 1x64)")
    p.add_argument("--colocate-decode", default=None, help="BxS decode job (default GPU 32x1024, CPU 8x64)")
    p.add_argument("--colocate-duration", type=number(0, 3600, lo_open=True), default=None,
                   help="seconds each run is timed")
    add_format(p, ("table", "json"))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from muxsim.profiler import config as pc

    grid = {
        "prefill_batches": pc.parse_ints(args.prefill_batches, "prefill-batches"),
        "prefill_seq_lens": pc.parse_ints(args.prefill_seq_lens, "prefill-seq-lens"),
        "decode_batches": pc.parse_ints(args.decode_batches, "decode-batches"),
        "decode_seq_lens": pc.parse_ints(args.decode_seq_lens, "decode-seq-lens"),
        "max_prefill_tokens": args.max_prefill_tokens,
    }
    check_suffix(args.out, (".csv",), "--out")
    check_suffix(args.interference, (".csv",), "--interference")
    sm = sm_percentages(args.sm_grid)
    cfg = pc.make_config(args.model, device=args.device, tp=args.tp, sm_grid=sm, warmup=args.warmup,
                         repeats=args.repeats, seed=args.seed, dtype=args.dtype or "", weights=args.weights,
                         extra={"cuda_graphs": not args.no_cuda_graphs, "rounds": args.rounds}, **grid)
    pairs = pc.parse_pairs(args.colocate, "colocate") if args.interference else []
    cpu = args.device == "cpu"
    pshape = pc.parse_shape(args.colocate_prefill or ("1x64" if cpu else "1x1024"), "colocate-prefill")
    dshape = pc.parse_shape(args.colocate_decode or ("8x64" if cpu else "32x1024"), "colocate-decode")
    pc.check_config(cfg, [pshape, dshape] if args.interference else [])
    duration = args.colocate_duration if args.colocate_duration is not None else (0.5 if cpu else 2.0)
    if args.interference and args.tp != 1:
        raise InputError("interference: co-location runs support tp 1 only")
    check_outputs(output_paths(args), [("--weights", args.weights)])

    from muxsim.profiler import runner

    def log(msg: str) -> None:
        if args.format == "table":
            print(msg, file=sys.stderr)

    try:
        return _measure_and_write(args, cfg, pairs, pshape, dshape, duration, log)
    except runner.WorkerError as e:  # the machine or a bug, not the input: exit 1, no traceback
        print(f"error: {e}", file=sys.stderr)
        return 1


def output_paths(args: argparse.Namespace) -> list[tuple[str, object]]:
    """Every file a profile run writes: the CSV, its sidecars, the co-location CSV."""
    from muxsim.profiler.schema import sidecar_path

    out = [("--out", args.out), ("--out models sidecar", sidecar_path(args.out, "models")),
           ("--out meta sidecar", sidecar_path(args.out, "meta"))]
    if args.interference:
        out.append(("--interference", args.interference))
        side = sidecar_path(args.interference, "models")
        if side != sidecar_path(args.out, "models"):
            out.append(("--interference models sidecar", side))
    return out


def _measure_and_write(args, cfg, pairs, pshape, dshape, duration, log) -> int:
    from muxsim.profiler import runner, schema

    result = runner.run_profile(cfg, mps=args.mps, log=log)
    if not result.rows:
        raise InputError("profile: no point could be measured (see the grid and the device's memory)")
    interference = []
    if args.interference:
        interference, imeta = runner.run_interference(cfg, pairs, pshape, dshape, duration_s=duration,
                                                      mps=args.mps, log=log)
        result.meta["interference"] = {"file": args.interference, **imeta}
        schema.write_interference(args.interference, interference, {cfg.model_name: cfg.model})
    schema.write_profile(args.out, result.rows, {cfg.model_name: cfg.model}, result.meta)
    summary = {"out": args.out, "rows": len(result.rows), "skipped": len(result.meta["skipped_points"]),
               "skipped_sm_pct": result.meta["skipped_sm_pct"], "device": result.meta["device"],
               "gpu": result.meta["gpu"], "sm_control": result.meta["sm_control"],
               "interference_rows": len(interference)}
    if args.format == "json":
        print(dumps_json(summary, indent=None))
    else:
        print(f"wrote {len(result.rows)} rows to {args.out} ({result.meta['device']}, "
              f"SM control: {result.meta['sm_control']}, {summary['skipped']} points skipped)")
        if interference:
            print(f"wrote {len(interference)} co-location rows to {args.interference}")
    return 0
