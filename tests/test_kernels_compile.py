"""Every Triton kernel compiles for Ampere and Hopper, without a GPU, with no register
spills, and the attention kernels use the matrix units (muxsim_kernels.aot)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

triton = pytest.importorskip("triton")

BIN = Path(triton.__file__).parent / "backends" / "nvidia" / "bin"
pytestmark = pytest.mark.skipif(not (BIN / "ptxas").exists() or not (BIN / "cuobjdump").exists(),
                                reason="the triton wheel's CUDA tools are not present")


def compile_report(*args: str) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_DEFAULT_FP_FUSION"] = "1"
    r = subprocess.run([sys.executable, "-m", "muxsim_kernels.aot", *args], capture_output=True,
                       text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])["kernels"]


def test_kernels_compile_for_hopper_and_ampere_without_spills():
    rows = compile_report("--arch", "90", "--dtype", "fp16")
    rows += compile_report("--arch", "80", "--dtype", "bf16",
                           "--kernels", "paged_decode_split,prefill_write_cache,rms_norm_residual")
    assert len(rows) == 9 + 3
    for row in rows:
        assert row["local"] == 0 and row["stack"] == 0, row  # nothing spilled
        assert row["reg"] <= 255, row
        if row["kernel"].startswith(("paged_decode", "prefill")):
            assert row["mma"], row  # tl.dot became tensor-core instructions
