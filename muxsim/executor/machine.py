"""Does a plan fit this machine? Checked before any worker starts.

Refused (bad input, exit status 2): more nodes than the backend has (the local backend
is one node), more devices on a node than present (on a CPU every plan GPU is a core),
the workers' weights and KV pools over the memory available, and, on a GPU, a flex mesh
of several units without MPS, more worker processes than ``MAX_WORKER_PROCESSES`` (a
unit has 2 x tp), and a unit whose model cannot be split ``tp`` ways. Also refused for
now: colocated models whose head sizes differ (one head-wise pool per mesh needs one
block shape), and the Ray backend on a GPU.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

from muxsim.errors import InputError
from muxsim.executor.worker import WorkerSpec, pool_elements
from muxsim.limits import MAX_WORKER_PROCESSES
from muxsim.profiler.runner import cpu_cores

_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}


def _bytes(spec: WorkerSpec) -> int:
    return _BYTES.get(spec.dtype, 4)


def available_bytes() -> int:
    """Memory available to new processes (MemAvailable), else physical memory."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_fits(plan: Any, specs: list[WorkerSpec], pools: dict[str, tuple[int, Any]], backend: str,
               address: str | None = None, *, devices: int | None = None, memory: int | None = None) -> None:
    """Raise :class:`InputError` (one line) if the plan cannot run here."""
    from muxsim.models import resolve_model

    nodes = sorted({m.node for m in plan.meshes if m.units})
    if backend == "local" and len(nodes) > 1:
        raise InputError(f"plan.meshes: the plan uses {len(nodes)} nodes; the local backend runs on one "
                         "(use --backend ray on a cluster of that many nodes)")
    from muxsim_kernels.weights import check_shardable

    for mi, m in enumerate(plan.meshes):
        heads = set()
        for ui, u in enumerate(m.units):
            where = f"plan.meshes[{mi}].units[{ui}]"
            try:
                check_shardable(resolve_model(u.model), u.tp)
            except ValueError as e:
                raise InputError(f"{where}.{e}") from None
            heads.add(resolve_model(u.model).head_dim)
        if len(heads) > 1:
            raise InputError(f"plan.meshes[{mi}]: its models' head sizes differ ({sorted(heads)}); one head-wise "
                             "KV pool per mesh needs one head size")
    procs = sum(s.tp for s in specs)
    if procs > MAX_WORKER_PROCESSES:
        raise InputError(f"plan.meshes: {procs} worker processes (2 x tp per unit); the executor runs at most "
                         f"{MAX_WORKER_PROCESSES} on one machine")
    device = specs[0].device if specs else "cpu"
    if devices is None:
        devices = cpu_cores() if device == "cpu" else _cuda_devices()
    kind = "CPU cores" if device == "cpu" else "GPUs"
    for node in nodes:
        used = {g for m in plan.meshes if m.node == node and m.units for g in m.gpus}
        need = max(used) + 1 if used else 0
        if need > devices:
            raise InputError(f"plan.meshes: node {node} needs {need} devices (GPUs {sorted(used)}); this machine "
                             f"has {devices} {kind}")
    weights = sum(resolve_model(s.model).param_count() * _bytes(s) for s in specs)
    kv = sum(pool_elements(blocks, resolve_model(u.model).head_dim) * 4 * u.tp for blocks, u in pools.values())
    have = available_bytes() if memory is None else memory
    if device == "cpu" and weights + kv > 0.8 * have:
        raise InputError(f"plan: the workers' weights ({weights / 2**30:.2f} GiB) and KV pools ({kv / 2**30:.2f} GiB) "
                         f"exceed 80% of the {have / 2**30:.1f} GiB of memory available")
    if device != "cpu":
        if backend != "local":
            raise InputError("--backend: the ray backend runs CPU workers in this version; use --backend local on a GPU")
        _check_gpu_memory(specs, pools)
    if device != "cpu" and plan.mode == "flex" and any(len(m.units) > 1 for m in plan.meshes):
        if shutil.which("nvidia-cuda-mps-control") is None:
            raise InputError("plan.mode: a flex plan with colocated units needs MPS on a GPU "
                             "(nvidia-cuda-mps-control not found)")


def _check_gpu_memory(specs: list[WorkerSpec], pools: dict[str, tuple[int, Any]]) -> None:
    """Per GPU: the weights of its workers' ranks (a prefill and a decode copy per unit,
    a rank holding ``1/tp`` of them) and its mesh's pool (one per rank), against the
    device's memory (90%: CUDA contexts and activations)."""
    import torch

    from muxsim.models import resolve_model

    need: dict[str, float] = {}
    for s in specs:
        for r in range(s.tp):
            dev = s.device_of(r)
            need[dev] = need.get(dev, 0.0) + resolve_model(s.model).param_count() * _bytes(s) / s.tp
    for s in {s.mesh: s for s in specs}.values():
        blocks, unit = pools[s.mesh]
        for r in range(s.tp):
            need[s.device_of(r)] += pool_elements(blocks, resolve_model(unit.model).head_dim) * _bytes(s)
    for dev, n in need.items():
        have = torch.cuda.get_device_properties(torch.device(dev)).total_memory
        if n > 0.9 * have:
            raise InputError(f"plan: {dev} would hold {n / 2**30:.1f} GiB of weights and KV pool, over 90% of its "
                             f"{have / 2**30:.1f} GiB")


def _cuda_devices() -> int:
    try:
        import torch
    except ImportError:
        raise InputError("--device: torch is not installed (pip install 'muxsim-lab[gpu]')") from None
    return torch.cuda.device_count()
