"""Kernel benchmark: achieved HBM bandwidth of paged decode attention and achieved
TFLOP/s of varlen causal prefill attention, against the device's datasheet peak.

Prints one JSON line. Needs a CUDA device (prints a ``skipped`` line otherwise).
Each kernel is first checked against its PyTorch reference on the same inputs
(relative error), then timed with ``triton.testing.do_bench`` (CUDA events, median).

    python benchmarks/bench_kernels.py [--quick]

Bytes counted for decode: every cached K and V element of every sequence read once,
Q read and the output written once. FLOPs counted for prefill: 4 * head_dim per
query-key pair per head (QK^T and PV), over the causal pairs p(p+1)/2 of each prompt.
"""

from __future__ import annotations

import argparse
import json
import sys


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller shapes")
    args = ap.parse_args()
    try:
        import torch
        import triton
    except ImportError as e:
        print(json.dumps({"benchmark": "kernels", "skipped": f"needs torch and triton ({e.name})"}))
        return 0
    if not torch.cuda.is_available():
        print(json.dumps({"benchmark": "kernels", "skipped": "no CUDA device"}))
        return 0
    from muxsim_kernels import reference as ref
    from muxsim_kernels import triton_attention as tri
    from muxsim_kernels.cache import BLOCK_TOKENS
    from triton.testing import do_bench

    from muxsim.gpus import get_gpu
    from muxsim.profiler.config import catalog_gpu_name

    props = torch.cuda.get_device_properties(0)
    gpu_name = catalog_gpu_name(props.name, props.total_memory)
    try:
        gpu = get_gpu(gpu_name)
        peak_bw, peak_flops = gpu.hbm_bw, gpu.flops
    except Exception:
        peak_bw = peak_flops = float("nan")
    dtype, dev = torch.float16, "cuda"
    gen = torch.Generator(device=dev).manual_seed(0)

    def rel(a, b):
        return float((a.double() - b.double()).norm() / b.double().norm())

    decode_cases = [(64, 2048, 32, 32, 128), (64, 4096, 32, 8, 128), (256, 1024, 32, 8, 128),
                    (1, 32768, 32, 8, 128), (4, 8192, 32, 32, 128)]  # the last two split the context
    prefill_cases = [([2048] * 8, 32, 32, 128), ([512, 1024, 2048, 4096], 32, 8, 128)]
    if args.quick:
        decode_cases, prefill_cases = decode_cases[:1], prefill_cases[:1]

    ctx = {"torch": torch, "ref": ref, "tri": tri, "gen": gen, "dtype": dtype, "dev": dev, "rel": rel,
           "do_bench": do_bench, "peak_bw": peak_bw, "peak_flops": peak_flops, "BLOCK": BLOCK_TOKENS}
    decode = [bench_decode(ctx, *case) for case in decode_cases]
    prefill = [bench_prefill(ctx, *case) for case in prefill_cases]
    print(json.dumps({"benchmark": "kernels", "device": props.name, "gpu": gpu_name,
                      "torch": torch.__version__, "triton": triton.__version__, "dtype": "float16",
                      "peak_hbm_GB/s": peak_bw / 1e9, "peak_TFLOP/s": peak_flops / 1e12,
                      "decode_attention": decode, "prefill_attention": prefill}))
    return 0


def bench_decode(c: dict, n: int, context: int, heads: int, kv_heads: int, d: int) -> dict:
    torch, gen, dtype, dev = c["torch"], c["gen"], c["dtype"], c["dev"]
    nb = -(-context // c["BLOCK"])
    num_blocks = n * kv_heads * nb
    kc = torch.randn(num_blocks, c["BLOCK"], d, device=dev, dtype=dtype, generator=gen)
    vc = torch.randn(num_blocks, c["BLOCK"], d, device=dev, dtype=dtype, generator=gen)
    tables = torch.randperm(num_blocks, device=dev, generator=gen).to(torch.int32).view(n, kv_heads, nb)
    lens = torch.full((n,), context, dtype=torch.int32, device=dev)
    q = torch.randn(n, heads, d, device=dev, dtype=dtype, generator=gen)
    scale = d ** -0.5
    out = c["tri"].paged_decode_attention(q, kc, vc, tables, lens, scale, max_context=context)
    err = c["rel"](out[:4], c["ref"].paged_decode_attention(q[:4], kc, vc, tables[:4], lens[:4], scale))
    ms = c["do_bench"](lambda: c["tri"].paged_decode_attention(q, kc, vc, tables, lens, scale,
                                                                max_context=context),
                       return_mode="median")
    nbytes = 2 * n * kv_heads * context * d * 2 + 2 * q.numel() * 2
    gbs = nbytes / (ms * 1e-3) / 1e9
    return {"batch": n, "context": context, "heads": heads, "kv_heads": kv_heads, "head_dim": d,
            "ms": round(ms, 4), "GB/s": round(gbs, 1), "of_peak": round(gbs * 1e9 / c["peak_bw"], 3),
            "rel_err": err}


def bench_prefill(c: dict, lengths: list[int], heads: int, kv_heads: int, d: int) -> dict:
    torch, gen, dtype, dev = c["torch"], c["gen"], c["dtype"], c["dev"]
    total = sum(lengths)
    q = torch.randn(total, heads, d, device=dev, dtype=dtype, generator=gen)
    k = torch.randn(total, kv_heads, d, device=dev, dtype=dtype, generator=gen)
    v = torch.randn(total, kv_heads, d, device=dev, dtype=dtype, generator=gen)
    offsets = [0]
    for p in lengths:
        offsets.append(offsets[-1] + p)
    cu = torch.tensor(offsets, dtype=torch.int32, device=dev)
    scale = d ** -0.5
    tri, longest = c["tri"], max(lengths)
    out = tri.prefill_attention(q, k, v, cu, scale, max_seqlen=longest)
    b = lengths[0]
    err = c["rel"](out[:b], c["ref"].prefill_attention(q[:b], k[:b], v[:b], cu[:2], scale))
    ms = c["do_bench"](lambda: tri.prefill_attention(q, k, v, cu, scale, max_seqlen=longest),
                       return_mode="median")
    flops = 4 * d * heads * sum(p * (p + 1) / 2 for p in lengths)
    tfs = flops / (ms * 1e-3) / 1e12
    row = {"lengths": lengths, "heads": heads, "kv_heads": kv_heads, "head_dim": d, "ms": round(ms, 4),
           "TFLOP/s": round(tfs, 1), "of_peak": round(tfs * 1e12 / c["peak_flops"], 3), "rel_err": err}
    if len(set(lengths)) == 1:  # dense equal-length batch: torch's SDPA as a yardstick
        group = heads // kv_heads
        qb = q.view(len(lengths), b, heads, d).transpose(1, 2)
        kb = k.view(len(lengths), b, kv_heads, d).transpose(1, 2).repeat_interleave(group, 1)
        vb = v.view(len(lengths), b, kv_heads, d).transpose(1, 2).repeat_interleave(group, 1)
        sdpa = torch.nn.functional.scaled_dot_product_attention
        row["torch_sdpa_ms"] = round(c["do_bench"](lambda: sdpa(qb, kb, vb, is_causal=True),
                                                   return_mode="median"), 4)
    return row


if __name__ == "__main__":
    sys.exit(main())
