"""The runbook's executor case: two colocated models on one device, as a workload and
a flex plan (``--device cuda``: two llama-shaped ~0.4B models on GPU 0 of the machine's
GPU; ``--device cpu``: two tiny models, the rehearsal).

    python experiments/gpu/case.py --device cuda --out DIR   # writes DIR/workload.json, DIR/plan.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# llama-shaped, head_dim 128 (one head-wise pool), small enough for two copies each
# (prefill and decode workers) of both models on one GPU with room to spare
GPU_MODELS = {"a": {"name": "llama-0.4b-a", "layers": 8, "hidden": 2048, "heads": 16, "kv_heads": 16,
                    "intermediate": 5504, "vocab": 32000, "dtype": "float16"},
              "b": {"name": "llama-0.3b-b", "layers": 6, "hidden": 2048, "heads": 16, "kv_heads": 16,
                    "intermediate": 5504, "vocab": 32000, "dtype": "float16"}}
CPU_MODELS = {"a": {"name": "tiny-2l-64h", "layers": 2, "hidden": 64, "heads": 4, "kv_heads": 4,
                    "intermediate": 128, "vocab": 256, "dtype": "float32"},
              "b": {"name": "tiny-2l-32h", "layers": 2, "hidden": 32, "heads": 2, "kv_heads": 2,
                    "intermediate": 64, "vocab": 256, "dtype": "float32"}}


def gpu_name() -> str:
    import torch

    name = torch.cuda.get_device_name(0).lower()
    return "h200-141gb" if "h200" in name else "a100-80gb" if "a100" in name else "h100-80gb"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args()
    cpu = args.device == "cpu"
    models = CPU_MODELS if cpu else GPU_MODELS
    cluster = {"gpu": "cpu" if cpu else gpu_name(), "nodes": 1, "gpus_per_node": 1}
    lengths = ({"prompt_len": {"dist": "fixed", "value": 16}, "output_len": {"dist": "fixed", "value": 8}} if cpu
               else {"prompt_len": {"dist": "fixed", "value": 256}, "output_len": {"dist": "fixed", "value": 64}})
    rates = {"a": 3.0, "b": 1.5} if cpu else {"a": 4.0, "b": 2.0}
    workload = {"cluster": cluster, "arrivals": {"process": "poisson"}, "duration_s": 3 if cpu else 30, "seed": 0,
                "models": [{"name": n, "model": m, "rate": rates[n], **lengths} for n, m in models.items()]}
    plan = {"version": 1, "algorithm": "manual", "mode": "flex", "cluster": cluster,
            "meshes": [{"id": "m0", "node": 0, "gpus": [0], "units": [
                {"name": n, "model": m, "tp": 1, "prefill_sm": 0.5, "decode_sm": 0.5, "kv_share": 0.5,
                 "max_batch": 32} for n, m in models.items()]}]}
    (args.out / "workload.json").write_text(json.dumps(workload, indent=2) + "\n")
    (args.out / "plan.json").write_text(json.dumps(plan, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
