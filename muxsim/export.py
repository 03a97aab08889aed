"""Hand a plan to another serving engine: ``muxsim export PLAN --to vllm``.

vLLM serves one model per process, so each unit of the plan becomes one ``vllm serve``
process on its mesh's GPUs:

- ``--tensor-parallel-size``: the unit's TP (its mesh size);
- ``--gpu-memory-utilization``: the share of each GPU's memory the process may use, its
  weights and activation reserve (:class:`muxsim.memory.MemoryModel`) plus its
  ``kv_share`` of the mesh's KV pool, over the GPU's memory, rounded down to 0.001 so
  the processes of one mesh never ask for more than the plan gives them together;
- ``--max-num-seqs``: the unit's ``max_batch``; ``--max-model-len``: the model's
  context window when the catalog knows it;
- ``CUDA_VISIBLE_DEVICES``: the mesh's GPUs on its node;
- flex meshes (MuxServe) run their processes under one MPS daemon per node, each with
  ``CUDA_MPS_ACTIVE_THREAD_PERCENTAGE`` set to its larger SM share (a vLLM process runs
  prefill and decode with one share).

A router config maps each LLM name to the URL(s) that serve it (replicas are several).
What vLLM cannot reproduce is listed in :data:`VLLM_CAVEATS` and in every output.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

from muxsim.errors import InputError
from muxsim.gpus import get_gpu
from muxsim.memory import MemoryModel
from muxsim.models import hf_id, resolve_model
from muxsim.plan import Plan

TARGETS = ("vllm",)
BASE_PORT = 8000
MPS_PIPE = "/tmp/muxsim-mps-pipe"
MPS_LOG = "/tmp/muxsim-mps-log"

VLLM_CAVEATS = (
    "This is not MuxServe: vLLM runs each LLM as its own process with its own KV cache.",
    "ADBS's shared KV pool is not reproduced: each process gets a fixed slice (its kv_share) and no quota "
    "moves between LLMs while serving.",
    "Prefill and decode share one SM percentage per process (the larger of the plan's two), so MuxServe's "
    "separate prefill and decode shares and its prefill priority across LLMs are not reproduced.",
    "Temporal meshes (whole-mesh turns) become processes time-sliced by the GPU driver, not turns.",
    "vLLM profiles its own activation memory; if a process refuses to start, lower the other processes' "
    "--gpu-memory-utilization on that mesh, never raise the sum above 1.",
)


def _floor3(x: float) -> float:
    return math.floor(x * 1000 + 1e-9) / 1000


def vllm_units(plan: Plan, memory: MemoryModel | None = None) -> list[dict[str, Any]]:
    """One record per unit: where it runs and every number of its ``vllm serve``."""
    gpu = get_gpu(plan.cluster.gpu, "plan.cluster.gpu")
    if gpu.name == "cpu":
        raise InputError("plan.cluster.gpu: vLLM export needs a GPU plan, got the cpu pseudo-device")
    memory = memory or MemoryModel(gpu)
    ports: dict[int, int] = {}
    out = []
    for mi, mesh in enumerate(plan.meshes):
        pairs = [(resolve_model(u.model, f"plan.meshes[{mi}].units[{ui}].model"), u.tp)
                 for ui, u in enumerate(mesh.units)]
        pool = max(0.0, memory.kv_pool_bytes_per_gpu(pairs))
        for ui, u in enumerate(mesh.units):
            where = f"plan.meshes[{mi}].units[{ui}]"
            hf = hf_id(u.model)
            if hf is None:
                raise InputError(f"{where}.model: {u.name} has no Hugging Face id (an inline architecture or a "
                                 "config.json path); vLLM export needs catalog models")
            spec, tp = pairs[ui]
            reserved = memory.reserved_bytes_per_gpu(spec, tp)
            kv = u.kv_share * pool
            port = ports.get(mesh.node, BASE_PORT)
            ports[mesh.node] = port + 1
            flex = plan.mode == "flex" and len(mesh.units) > 1
            sm = max(u.prefill_sm, u.decode_sm)
            out.append({
                "name": u.name, "mesh": mesh.id, "node": mesh.node, "gpus": list(mesh.gpus), "port": port,
                "hf_id": hf, "tp": tp, "max_num_seqs": u.max_batch,
                "max_model_len": spec.max_context or None,
                "weights_gib": spec.weight_bytes_per_gpu(tp) / 2**30,
                "reserved_gib": reserved / 2**30, "kv_gib": kv / 2**30,
                "gpu_memory_utilization": _floor3((reserved + kv) / gpu.memory_bytes),
                "mps_active_thread_percentage": max(1, round(100 * sm)) if flex else None,
            })
    return out


def serve_command(u: dict[str, Any]) -> str:
    """The shell line starting one unit (environment, ``vllm serve``, in the background)."""
    env = [f"CUDA_VISIBLE_DEVICES={','.join(map(str, u['gpus']))}"]
    if u["mps_active_thread_percentage"] is not None:
        env.append(f"CUDA_MPS_ACTIVE_THREAD_PERCENTAGE={u['mps_active_thread_percentage']}")
    args = ["vllm", "serve", u["hf_id"], "--served-model-name", u["name"], "--port", str(u["port"]),
            "--tensor-parallel-size", str(u["tp"]),
            "--gpu-memory-utilization", f"{u['gpu_memory_utilization']:.3f}",
            "--max-num-seqs", str(u["max_num_seqs"])]
    if u["max_model_len"]:
        args += ["--max-model-len", str(u["max_model_len"])]
    return " ".join(env + [shlex.quote(a) for a in args]) + f" > {shlex.quote(u['name'])}.log 2>&1 &"


def node_script(plan: Plan, node: int, units: list[dict[str, Any]]) -> str:
    """A shell script for one node: the MPS daemon (flex meshes) and its units."""
    mine = [u for u in units if u["node"] == node]
    lines = ["#!/bin/sh", f"# muxsim export --to vllm: node {node} of a {plan.mode} plan ({plan.algorithm})", "#"]
    lines += [f"# {c}" for c in VLLM_CAVEATS]
    lines += ["set -e"]
    if any(u["mps_active_thread_percentage"] is not None for u in mine):
        lines += ["# one MPS daemon for the node's GPUs; every process below is its client",
                  f"export CUDA_MPS_PIPE_DIRECTORY={MPS_PIPE} CUDA_MPS_LOG_DIRECTORY={MPS_LOG}",
                  f"mkdir -p {MPS_PIPE} {MPS_LOG}",
                  "nvidia-cuda-mps-control -d"]
    for u in mine:
        lines.append(f"# {u['name']} on {u['mesh']}: weights {u['weights_gib']:.1f} GiB/GPU, "
                     f"KV {u['kv_gib']:.1f} GiB/GPU")
        lines.append(serve_command(u))
    lines += ["wait", ""]
    return "\n".join(lines)


def router_config(units: list[dict[str, Any]]) -> dict[str, Any]:
    """Which URLs serve which model name (OpenAI-compatible ``/v1``), replicas in plan order."""
    routes: dict[str, list[dict[str, Any]]] = {}
    for u in units:
        routes.setdefault(u["name"], []).append(
            {"node": u["node"], "port": u["port"], "url": f"http://node{u['node']}:{u['port']}/v1"})
    return {"models": routes, "note": "replace nodeN with the address of node N of the plan"}


def export_vllm(plan: Plan, memory: MemoryModel | None = None) -> dict[str, Any]:
    """Everything ``export --to vllm`` writes: units, per-node scripts, router, caveats."""
    units = vllm_units(plan, memory)
    nodes = sorted({u["node"] for u in units})
    return {"target": "vllm", "mode": plan.mode, "units": units,
            "scripts": {f"node{n}.sh": node_script(plan, n, units) for n in nodes},
            "router": router_config(units), "caveats": list(VLLM_CAVEATS)}


def fill_folder(doc: dict[str, Any]) -> Callable[[Path], None]:
    """What ``--out DIR`` holds: ``nodeN.sh``, ``router.json``, ``units.json``, ``README.txt``."""
    from muxsim.io import dumps_json

    def fill(tmp: Path) -> None:
        for name, text in doc["scripts"].items():
            (tmp / name).write_text(text)
            (tmp / name).chmod(0o755)
        (tmp / "router.json").write_text(dumps_json(doc["router"]) + "\n")
        (tmp / "units.json").write_text(dumps_json(doc["units"]) + "\n")
        readme = ["vLLM launch scripts exported by muxsim: run nodeN.sh on node N of the plan.", ""]
        readme += [f"- {c}" for c in doc["caveats"]]
        (tmp / "README.txt").write_text("\n".join(readme) + "\n")

    return fill
