"""Compile every Triton kernel for a CUDA architecture without a GPU, and report the
compiler's resource usage (registers, spills to local memory, shared memory) and
whether the attention kernels use the matrix units.

    python -m muxsim_kernels.aot [--arch 80,90] [--dtype fp16,bf16]   # prints one JSON line

Uses the ptxas/cuobjdump bundled with the Triton wheel. Run it without
``TRITON_INTERPRET`` (the interpreter replaces the compiler in its process).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

# Representative launches, with the launch options the Python wrappers use. Pointer
# element type "T" is the tensor dtype; arguments not listed are i32 scalars.
_DECODE_PTRS = {"q_ptr": "T", "kc_ptr": "T", "vc_ptr": "T", "bt_ptr": "i32", "lens_ptr": "i32", "out_ptr": "T",
                "part_m_ptr": "fp32", "part_l_ptr": "fp32", "part_acc_ptr": "fp32"}
KERNELS: dict[str, dict[str, Any]] = {
    "paged_decode_gqa8": {
        "fn": ("triton_attention", "_decode_kernel"),
        "ptr": _DECODE_PTRS,
        "fp32": ["scale"],
        "const": {"GROUP": 8, "GROUP_PAD": 16, "HEAD_DIM": 128, "D_PAD": 128, "BLOCK_T": 32,
                  "SPLIT": False, "PART_BLOCKS": 1},
    },
    "paged_decode_mha": {
        "fn": ("triton_attention", "_decode_kernel"),
        "ptr": _DECODE_PTRS,
        "fp32": ["scale"],
        "const": {"GROUP": 1, "GROUP_PAD": 16, "HEAD_DIM": 128, "D_PAD": 128, "BLOCK_T": 32,
                  "SPLIT": False, "PART_BLOCKS": 1},
    },
    "paged_decode_split": {
        "fn": ("triton_attention", "_decode_kernel"),
        "ptr": _DECODE_PTRS,
        "fp32": ["scale"],
        "const": {"GROUP": 8, "GROUP_PAD": 16, "HEAD_DIM": 128, "D_PAD": 128, "BLOCK_T": 32,
                  "SPLIT": True, "PART_BLOCKS": 16},
    },
    "decode_reduce": {
        "fn": ("triton_attention", "_decode_reduce_kernel"),
        "ptr": {"part_m_ptr": "fp32", "part_l_ptr": "fp32", "part_acc_ptr": "fp32", "out_ptr": "T"},
        "const": {"HEAD_DIM": 128, "D_PAD": 128, "P_PAD": 16},
    },
    "prefill_write_cache": {
        "fn": ("triton_attention", "_prefill_kernel"),
        "ptr": {"q_ptr": "T", "k_ptr": "T", "v_ptr": "T", "cu_ptr": "i32", "out_ptr": "T", "kc_ptr": "T",
                "vc_ptr": "T", "bt_ptr": "i32"},
        "fp32": ["scale"],
        "const": {"GROUP": 4, "HEAD_DIM": 128, "D_PAD": 128, "BLOCK_M": 64, "BLOCK_N": 32, "BLOCK_T": 32,
                  "WRITE_CACHE": True},
        "options": {"num_warps": 8},
    },
    "write_kv_cache": {
        "fn": ("triton_attention", "_write_kv_kernel"),
        "ptr": {"k_ptr": "T", "v_ptr": "T", "kc_ptr": "T", "vc_ptr": "T", "bt_ptr": "i32", "seq_ptr": "i32",
                "pos_ptr": "i32"},
        "const": {"HEAD_DIM": 128, "D_PAD": 128, "BLOCK_T": 32},
    },
    "rms_norm_residual": {
        "fn": ("triton_layers", "_rms_norm_kernel"),
        "ptr": {"x_ptr": "T", "res_ptr": "T", "w_ptr": "T", "y_ptr": "T", "res_out_ptr": "T"},
        "fp32": ["eps"],
        "const": {"HAS_RESIDUAL": True, "BLOCK": 8192},
        "options": {"num_warps": 8},
    },
    "rotary": {
        "fn": ("triton_layers", "_rotary_kernel"),
        "ptr": {"q_ptr": "T", "k_ptr": "T", "qo_ptr": "T", "ko_ptr": "T", "pos_ptr": "i32", "freq_ptr": "fp32"},
        "const": {"Q_HEADS": 32, "HALF": 64, "HALF_PAD": 64},
    },
    "silu_and_mul": {
        "fn": ("triton_layers", "_silu_mul_kernel"),
        "ptr": {"x_ptr": "T", "out_ptr": "T"},
        "const": {"BLOCK": 1024},
    },
}
MMA_KERNELS = ("paged_decode", "prefill")


def _resources(cubin: bytes, bindir: Path) -> dict[str, int]:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "k.cubin"
        path.write_bytes(cubin)
        out = subprocess.run([str(bindir / "cuobjdump"), "--dump-resource-usage", str(path)],
                             capture_output=True, text=True, check=True).stdout
    got = {k.lower(): int(v) for k, v in re.findall(r"\b(REG|STACK|SHARED|LOCAL):(\d+)", out)}
    return got


def compile_one(name: str, arch: int, dtype: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    import importlib

    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    spec = dict(KERNELS[name])
    spec["const"] = {**spec["const"], **(overrides or {}).get("const", {})}
    options = {**spec.get("options", {}), **(overrides or {}).get("options", {})}
    module, attr = spec["fn"]
    fn = getattr(importlib.import_module(f"muxsim_kernels.{module}"), attr)
    names = fn.arg_names
    sig = {}
    for arg in names:
        if arg in spec["ptr"]:
            t = spec["ptr"][arg]
            sig[arg] = "*" + (dtype if t == "T" else t)
        elif arg in spec["const"]:
            sig[arg] = "constexpr"
        elif arg in spec.get("fp32", []):
            sig[arg] = "fp32"
        else:
            sig[arg] = "i32"
    consts = {(names.index(k),): v for k, v in spec["const"].items()}
    kernel = triton.compile(ASTSource(fn=fn, signature=sig, constexprs=consts),
                            target=GPUTarget("cuda", arch, 32), options=options)
    bindir = Path(triton.__file__).parent / "backends" / "nvidia" / "bin"
    row = {"kernel": name, "arch": f"sm_{arch}", "dtype": dtype, "num_warps": kernel.metadata.num_warps,
           "num_stages": kernel.metadata.num_stages, "shared_dynamic": kernel.metadata.shared,
           **_resources(kernel.asm["cubin"], bindir)}
    if name.startswith(MMA_KERNELS):
        ptx = kernel.asm["ptx"]
        row["mma"] = bool(re.search(r"\b(mma\.sync|wgmma\.)", ptx))
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m muxsim_kernels.aot")
    ap.add_argument("--arch", default="80,90")
    ap.add_argument("--dtype", default="fp16,bf16")
    ap.add_argument("--kernels", default=",".join(KERNELS))
    args = ap.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        print("error: unset TRITON_INTERPRET to compile", file=sys.stderr)
        return 2
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    rows = [compile_one(k, int(a), d) for k in args.kernels.split(",") for a in args.arch.split(",")
            for d in args.dtype.split(",")]
    print(json.dumps({"benchmark": "kernel_resources", "kernels": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
