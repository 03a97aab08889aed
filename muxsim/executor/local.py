"""The local backend: every worker a child process of the driver (``multiprocessing``,
spawn), talking over queues.

A worker of a tensor-parallel unit is ``tp`` processes (its ranks); a job goes to each
and rank 0 answers. Start-up waits for each process's ready message (a timeout stops the run); a worker that
dies is noticed at the driver's next poll (its exit code); stopping sends every worker
a stop message, waits briefly, then terminates and finally kills what is left, so no
worker outlives the run. A worker also exits on its own when its parent is gone.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import time
from typing import Any

from muxsim.executor.worker import WorkerSpec, worker_main


class WorkerFailed(RuntimeError):
    """A worker died or reported an error; the message says which and how."""


def describe(spec: WorkerSpec, rank: int | None = None) -> str:
    who = f"mesh {spec.mesh} {spec.unit} {spec.role} worker"
    return who if rank is None or spec.tp == 1 else f"{who} rank {rank}"


class LocalBackend:
    name = "local"

    def __init__(self, specs: list[WorkerSpec]) -> None:
        self.specs = specs
        self.ctx = mp.get_context("spawn")
        self.pools: dict[tuple[str, int], Any] = {}  # (mesh, rank) -> its KV pool on a GPU (CPU pools are files)
        self.outbox = self.ctx.Queue()
        self.ranks = [(s, r) for s in specs for r in range(s.tp)]  # one process each
        self.inboxes = [self.ctx.Queue() for _ in self.ranks]
        self.of_wid: dict[int, list[int]] = {}  # worker id -> its processes' indices
        for i, (s, _) in enumerate(self.ranks):
            self.of_wid.setdefault(s.wid, []).append(i)
        self.procs: list[Any] = []

    def start(self, timeout_s: float) -> None:
        parent = os.getpid()
        if any(s.device != "cpu" for s in self.specs):
            self._gpu_pools()
        for (s, r), inbox in zip(self.ranks, self.inboxes):
            p = self.ctx.Process(target=worker_main,
                                 args=(s, inbox, self.outbox, parent, self.pools.get((s.mesh, r)), r), daemon=True,
                                 name=f"muxsim-{s.mesh}-{s.unit}-{s.role}-{r}")
            p.start()
            self.procs.append(p)
        ready: set[tuple[int, int]] = set()
        deadline = time.monotonic() + timeout_s
        while len(ready) < len(self.ranks):
            left = deadline - time.monotonic()
            if left <= 0:
                missing = [describe(s, r) for s, r in self.ranks if (s.wid, r) not in ready]
                raise WorkerFailed(f"start-up timed out after {timeout_s:g} s waiting for {', '.join(missing)}")
            try:
                msg = self.outbox.get(timeout=min(left, 0.2))
            except queue.Empty:
                self.check()
                continue
            if msg[0] == "failed":
                raise WorkerFailed(f"{describe(self.specs[msg[1]])} failed to start: {msg[2]}")
            if msg[0] == "ready":
                ready.add((msg[1], msg[2]))

    def _gpu_pools(self) -> None:
        """One KV pool per mesh and rank on the rank's GPU, shared with the workers' ranks
        by CUDA IPC."""
        import torch
        import torch.multiprocessing  # registers the CUDA IPC reductions of tensors

        from muxsim.executor.worker import pool_elements

        for s, r in self.ranks:
            if (s.mesh, r) not in self.pools:
                self.pools[s.mesh, r] = torch.zeros(pool_elements(s.pool_blocks, s.head_dim),
                                                    dtype=getattr(torch, s.dtype), device=s.device_of(r))

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid is not None]

    def submit(self, wid: int, kind: str, job_id: int, payload: dict[str, Any]) -> None:
        for i in self.of_wid[wid]:
            self.inboxes[i].put((kind, job_id, payload))

    def poll(self, timeout: float) -> list[tuple[Any, ...]]:
        """Finished jobs ``("done", job_id, tokens, seconds)`` (waiting up to ``timeout``
        for the first); raises :class:`WorkerFailed` when a worker is dead or failed."""
        out = []
        try:
            msg = self.outbox.get(timeout=max(0.0, timeout))
            while True:
                if msg[0] == "failed":
                    raise WorkerFailed(f"{describe(self.specs[msg[1]])}: {msg[2]}")
                out.append(msg)
                msg = self.outbox.get_nowait()
        except queue.Empty:
            pass
        if not out:
            self.check()
        return out

    def check(self) -> None:
        for (s, r), p in zip(self.ranks, self.procs):
            if p.exitcode is not None:
                raise WorkerFailed(f"{describe(s, r)} (pid {p.pid}) exited with code {p.exitcode}")

    def stop(self) -> None:
        for inbox, p in zip(self.inboxes, self.procs):
            if p.exitcode is None:
                try:
                    inbox.put(None)
                except (OSError, ValueError):
                    pass
        deadline = time.monotonic() + 3.0
        for p in self.procs:
            p.join(max(0.0, deadline - time.monotonic()))
        for p in self.procs:
            if p.exitcode is None:
                p.terminate()
                p.join(1.0)
            if p.exitcode is None:
                p.kill()
                p.join(1.0)
        for q in [self.outbox, *self.inboxes]:
            q.close()
            q.cancel_join_thread()
        self.pools.clear()
