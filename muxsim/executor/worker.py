"""A unit's worker: one model's weights, running its prefill or its decode jobs.

Each unit of a plan has two workers, a prefill worker and a decode worker (MuxServe's
split), each its own process. A worker holds its model's weights and its mesh's KV
pool, one head-wise paged pool shared by every worker of the mesh (the driver's block
tables say which blocks are whose): on a CPU a file each worker maps
(``torch.from_file(shared=True)``); on a GPU one tensor the driver allocates on the
mesh's first GPU and hands to its workers through CUDA IPC (``torch.multiprocessing``). A worker keeps no request state: a job carries the tokens and block tables it
needs, so a worker can be restarted or moved and the driver stays the only bookkeeper.

A unit of a mesh of ``tp`` GPUs (tensor parallelism) has each worker run as a group
of ``tp`` processes, rank ``r`` on the mesh's ``r``-th GPU (on a CPU: a process), joined
by a ``torch.distributed`` process group (gloo on a CPU, NCCL on a GPU) and holding its
rank's weight shards (``muxsim_kernels.weights.shard_weights`` of the full weights, so
the answers are the unsharded model's). The mesh's KV pool is sharded head-wise: rank
``r`` maps the ``r``-th of ``tp`` pools, of the same size, where each block of the
driver's tables holds one of its rank's KV heads. Every rank runs every job (the
collectives need them all); rank 0 answers.

On a CPU the worker's SM share is its thread count (``round(cores * share)``, at least
one); on a GPU it is the process's ``CUDA_MPS_ACTIVE_THREAD_PERCENTAGE``, set before
CUDA starts.

Messages (plain tuples, so both backends carry them): a job is ``("prefill" | "decode",
job_id, payload)``; the answer ``("done", job_id, next_tokens, seconds)``.
"""

from __future__ import annotations

import os
import queue
import signal
import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker process needs to start (picklable, no torch)."""

    wid: int  # index among all workers of the run
    mesh: str
    unit: str
    role: str  # "prefill" | "decode"
    model: dict[str, Any]  # the architecture (ModelSpec.to_dict())
    weight_seed: int
    pool_path: str
    pool_blocks: int
    head_dim: int
    device: str = "cpu"  # "cpu" or "cuda:<the mesh's first GPU>"
    threads: int = 1
    sm_pct: int = 100
    dtype: str = "float32"  # weights and KV pool: float32 on a CPU, the model's dtype on a GPU
    tp: int = 1  # processes (ranks) of this worker
    rank_devices: tuple[str, ...] = ()  # per rank (tp > 1): "cpu" or its GPU
    group: str = ""  # the ranks' rendezvous (a file path) when tp > 1 (the Ray backend: TCP instead)

    def device_of(self, rank: int) -> str:
        return self.rank_devices[rank] if self.rank_devices else self.device

    def pool_of(self, rank: int) -> str:
        """The pool file rank ``rank`` maps (a CPU): one per rank of the mesh."""
        return pool_file(self.pool_path, rank)


def pool_file(path: str, rank: int) -> str:
    """The file of a mesh's rank-``rank`` pool, ``path`` for rank 0."""
    return path if rank == 0 else f"{path}.{rank}"


def pool_elements(blocks: int, head_dim: int) -> int:
    """Floats in a mesh's pool file: K then V, each ``[blocks, BLOCK_TOKENS, head_dim]``."""
    from muxsim.limits import BLOCK_TOKENS

    return 2 * blocks * BLOCK_TOKENS * head_dim


class UnitWorker:
    """A unit's model over its mesh's shared pool; :meth:`run` carries out one job."""

    def __init__(self, spec: WorkerSpec, pool: Any = None, rank: int = 0, init_method: str | None = None) -> None:
        import torch
        from muxsim_kernels import weights as wts
        from muxsim_kernels.decoder import Decoder

        from muxsim.limits import BLOCK_TOKENS
        from muxsim.models import resolve_model

        self.spec = spec
        self.rank = rank
        torch.set_num_threads(max(1, spec.threads))
        model = resolve_model(spec.model)
        dtype = getattr(torch, spec.dtype)
        device = spec.device_of(rank)
        group = None
        if spec.tp > 1:
            import datetime

            import torch.distributed as dist

            init = init_method or f"file://{spec.group}"  # the Ray backend's ranks meet over TCP
            dist.init_process_group("gloo" if device == "cpu" else "nccl", init_method=init,
                                    rank=rank, world_size=spec.tp, timeout=datetime.timedelta(seconds=120))
            group = dist.group.WORLD
        full = wts.random_weights(model, seed=spec.weight_seed, dtype=dtype, device=device)  # the unsharded model's
        self.decoder = Decoder(model, wts.shard_weights(full, model, spec.tp, rank), num_blocks=1, device=device,
                               tp=spec.tp, rank=rank, group=group)
        del full
        n = pool_elements(spec.pool_blocks, spec.head_dim)
        flat = pool if pool is not None else torch.from_file(spec.pool_of(rank), shared=True, size=n, dtype=dtype)
        shape = (spec.pool_blocks, BLOCK_TOKENS, spec.head_dim)
        half = n // 2
        self.decoder.k_cache = flat[:half].view(shape)
        self.decoder.v_cache = flat[half:].view(shape)
        self.jobs = 0
        self.warm_up()

    def warm_up(self) -> None:
        """One small job of its kind before saying ready (the first forward pass pays for
        lazy set-up). It writes into block 0 only, before any job runs on the mesh; every
        block a job reads was written by the job's request first."""
        import torch

        layers, heads = self.decoder.spec.layers, self.decoder.kv_heads
        table = torch.zeros((1, layers, heads, 1), dtype=torch.int32)
        if self.spec.role == "prefill":
            self.decoder.prefill_step([0], torch.zeros(8, dtype=torch.long), [8], block_tables=table)
        else:
            self.decoder.decode_step([0], torch.zeros(1, dtype=torch.long), torch.zeros(1, dtype=torch.int32),
                                     block_tables=table, max_context=1)

    def run(self, kind: str, payload: dict[str, Any]) -> tuple[list[int], float]:
        """One job; returns each sequence's next token (greedy) and its seconds."""
        import numpy as np
        import torch

        self.jobs += 1
        t0 = time.perf_counter()
        tables = torch.from_numpy(np.asarray(payload["tables"], dtype=np.int32))
        ids = list(range(len(payload["tokens"])))
        if kind == "prefill":
            seqs = payload["tokens"]
            flat = torch.tensor([t for s in seqs for t in s], dtype=torch.long)
            logits = self.decoder.prefill_step(ids, flat, [len(s) for s in seqs], block_tables=tables)
        else:
            pos = payload["positions"]
            logits = self.decoder.decode_step(ids, torch.tensor(payload["tokens"], dtype=torch.long),
                                              torch.tensor(pos, dtype=torch.int32), block_tables=tables,
                                              max_context=max(pos) + 1)
        return [int(x) for x in logits.argmax(dim=-1).tolist()], time.perf_counter() - t0


def worker_main(spec: WorkerSpec, inbox: Any, outbox: Any, parent: int, pool: Any = None, rank: int = 0) -> None:
    """A local worker process (rank ``rank`` of its worker): build, say ready, run jobs
    until told to stop or the driver is gone (its parent changed), so no worker outlives
    its run. Only rank 0 answers a job."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    if spec.device != "cpu":  # before CUDA starts in this process
        os.environ["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] = str(spec.sm_pct)
    try:
        worker = UnitWorker(spec, pool, rank)
    except Exception as e:  # reported to the driver, which stops the run
        outbox.put(("failed", spec.wid, f"{type(e).__name__}: {e}"))
        return
    outbox.put(("ready", spec.wid, rank))
    while True:
        try:
            msg = inbox.get(timeout=1.0)
        except queue.Empty:
            if os.getppid() != parent:
                return
            continue
        if msg is None:
            return
        kind, job_id, payload = msg
        try:
            tokens, seconds = worker.run(kind, payload)
        except Exception as e:
            outbox.put(("failed", spec.wid, f"{type(e).__name__}: {e}"))
            return
        if rank == 0:
            outbox.put(("done", job_id, tokens, seconds))
