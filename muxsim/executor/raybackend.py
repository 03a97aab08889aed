"""The Ray backend: every worker a Ray actor (a tensor-parallel worker one actor per
rank), each mesh's workers in one placement group pinned to the plan's node.

Plan node ``i`` is the ``i``-th alive node of the Ray cluster (ordered by address), so a
plan for 4 nodes runs on a 4-node cluster and is refused on a smaller one. Each mesh
gets one bundle per rank of its widest unit on its node (a CPU each on a CPU run),
bundle ``r`` holding its workers' rank ``r``; a mesh's workers share its KV pools (one
per rank, as locally) through files on that node. The ranks of a worker join one gloo
group over TCP: rank 0's actor names its node's address and a free port, and every
rank initialises with ``tcp://ip:port``, so the ranks could sit on different machines.
A job goes to every rank; rank 0 answers, and a rank that dies or fails ends the run
naming that rank. Without ``--address`` a local Ray is started for the run and shut
down after it.
"""

from __future__ import annotations

import os
import time
from typing import Any, NoReturn

from muxsim.errors import InputError
from muxsim.executor.local import WorkerFailed, describe
from muxsim.executor.worker import UnitWorker, WorkerSpec

GRACE_S = 2.0  # after a rank's error, how long its partners' answers are awaited (to name a dead rank)


class ActorWorker:
    """Rank ``rank`` of a :class:`~muxsim.executor.worker.UnitWorker` as a Ray actor,
    built by :meth:`ready` (the ranks of a tensor-parallel worker meet there)."""

    def __init__(self, spec: WorkerSpec, rank: int = 0) -> None:
        if spec.device != "cpu":
            os.environ["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] = str(spec.sm_pct)
        self.spec = spec
        self.rank = rank
        self.worker: UnitWorker | None = None

    def rendezvous(self) -> str:
        """Where the worker's ranks meet: this node's address and a port free now."""
        import socket

        from ray.util import get_node_ip_address

        ip = get_node_ip_address()
        with socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET) as sock:
            sock.bind(("", 0))
            port = sock.getsockname()[1]
        return f"tcp://[{ip}]:{port}" if ":" in ip else f"tcp://{ip}:{port}"

    def ready(self, init_method: str | None = None) -> int:
        self.worker = UnitWorker(self.spec, rank=self.rank, init_method=init_method)
        return os.getpid()

    def run(self, kind: str, payload: dict[str, Any]) -> tuple[list[int], float]:
        assert self.worker is not None
        return self.worker.run(kind, payload)

    def unlink_pool(self) -> None:
        try:
            os.unlink(self.spec.pool_of(self.rank))
        except FileNotFoundError:
            pass


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise InputError("--backend: ray is not installed (pip install 'muxsim-lab[ray]')") from None
    return ray


class RayBackend:
    name = "ray"

    def __init__(self, specs: list[WorkerSpec], address: str | None, nodes: dict[str, int] | None = None) -> None:
        self.ray = _ray()
        self.specs = specs
        self.address = address
        self.mesh_node = nodes or {}
        self.owns_ray = False
        self.ranks = [(s, r) for s in specs for r in range(s.tp)]  # one actor each
        self.actors: list[Any] = []  # per entry of self.ranks
        self.of_wid: dict[int, list[int]] = {}  # worker id -> its ranks' indices
        for i, (s, _) in enumerate(self.ranks):
            self.of_wid.setdefault(s.wid, []).append(i)
        self.groups: list[Any] = []
        self.pending: dict[Any, tuple[int, int, int]] = {}  # object ref -> (job id, worker id, rank)

    def _init(self) -> None:
        ray = self.ray
        if ray.is_initialized():
            return
        kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        if self.address is None:
            kw["num_cpus"] = max(2, os.cpu_count() or 1)
            self.owns_ray = True
        ray.init(address=self.address, **kw)

    def start(self, timeout_s: float) -> None:
        from ray.util.placement_group import placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        ray = self.ray
        self._init()
        deadline = time.monotonic() + timeout_s
        alive = sorted((n for n in ray.nodes() if n.get("Alive")), key=lambda n: (n["NodeManagerAddress"], n["NodeID"]))
        need = max(self.mesh_node.values(), default=0) + 1
        if need > len(alive):
            raise InputError(f"plan.meshes: the plan uses {need} nodes; the Ray cluster has {len(alive)}")
        meshes: dict[str, list[WorkerSpec]] = {}
        for s in self.specs:
            meshes.setdefault(s.mesh, []).append(s)
        cls = ray.remote(ActorWorker)
        by_rank: dict[tuple[int, int], Any] = {}
        for mesh, specs in meshes.items():
            ip = alive[self.mesh_node.get(mesh, 0)]["NodeManagerAddress"]
            width = max(s.tp for s in specs)
            pg = placement_group([{"CPU": 1.0, f"node:{ip}": 0.001} for _ in range(width)], strategy="STRICT_PACK")
            self.groups.append(pg)
            done, _ = ray.wait([pg.ready()], timeout=max(0.0, deadline - time.monotonic()))
            if not done:
                raise WorkerFailed(f"start-up timed out after {timeout_s:g} s placing mesh {mesh} on node {ip}")
            for r in range(width):
                strategy = PlacementGroupSchedulingStrategy(placement_group=pg, placement_group_bundle_index=r)
                in_bundle = [s for s in specs if s.tp > r]
                for s in in_bundle:
                    by_rank[s.wid, r] = cls.options(num_cpus=1.0 / len(in_bundle), scheduling_strategy=strategy,
                                                    max_restarts=0).remote(s, r)
        self.actors = [by_rank[s.wid, r] for s, r in self.ranks]
        meet = {self.actors[self.of_wid[s.wid][0]].rendezvous.remote(): (s, 0) for s in self.specs if s.tp > 1}
        inits = {s.wid: ray.get(ref) for ref, (s, _) in self._wait_all(meet, deadline, timeout_s).items()}
        refs = {a.ready.remote(inits.get(s.wid)): (s, r) for a, (s, r) in zip(self.actors, self.ranks)}
        self._wait_all(refs, deadline, timeout_s)

    def _wait_all(self, refs: dict[Any, tuple[WorkerSpec, int]], deadline: float,
                  timeout_s: float) -> dict[Any, tuple[WorkerSpec, int]]:
        """Wait for every start-up call of ``refs`` (ref -> (spec, rank)) by ``deadline``."""
        ray = self.ray
        left, ok = dict(refs), {}
        while left:
            done, _ = ray.wait(list(left), num_returns=len(left), timeout=max(0.0, deadline - time.monotonic()))
            if not done:
                missing = ", ".join(describe(s, r) for s, r in left.values())
                raise WorkerFailed(f"start-up timed out after {timeout_s:g} s waiting for {missing}")
            for ref in done:
                s, r = ok[ref] = left.pop(ref)
                try:
                    ray.get(ref)
                except Exception as e:
                    raise WorkerFailed(f"{describe(s, r)} failed to start: {_why(e)}") from None
        return ok

    def submit(self, wid: int, kind: str, job_id: int, payload: dict[str, Any]) -> None:
        for i in self.of_wid[wid]:
            self.pending[self.actors[i].run.remote(kind, payload)] = (job_id, wid, self.ranks[i][1])

    def poll(self, timeout: float) -> list[tuple[Any, ...]]:
        """Rank 0's finished jobs ``("done", job_id, tokens, seconds)``, in job order;
        raises :class:`WorkerFailed` naming the rank when any rank died or failed."""
        if not self.pending:
            time.sleep(max(0.0, timeout))
            return []
        ray = self.ray
        refs = list(self.pending)
        done, _ = ray.wait(refs, num_returns=1, timeout=max(0.0, timeout))
        if done:
            done, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        out = []
        for ref in sorted(done, key=lambda r: self.pending[r][0::2]):  # job order: results in a fixed order
            job_id, wid, rank = self.pending.pop(ref)
            try:
                tokens, seconds = ray.get(ref)
            except Exception as e:
                self._failed(wid, rank, e)
            if rank == 0:
                out.append(("done", job_id, tokens, seconds))
        return out

    def _failed(self, wid: int, rank: int, error: BaseException) -> NoReturn:
        """Raise for rank ``rank``'s error, or for a partner rank of the worker that died
        (a rank's collective fails when its partner dies: the dead one is the news)."""
        ray = self.ray
        others = [ref for ref, (_, w, r) in self.pending.items() if w == wid and r != rank]
        if others and not isinstance(error, ray.exceptions.RayActorError):
            done, _ = ray.wait(others, num_returns=len(others), timeout=GRACE_S)
            for ref in done:
                try:
                    ray.get(ref)
                except ray.exceptions.RayActorError as e:
                    rank, error = self.pending[ref][2], e
                    break
                except Exception:
                    pass
        raise WorkerFailed(f"{describe(self.specs[wid], rank)}: {_why(error)}") from None

    def stop(self) -> None:
        ray = self.ray
        if not ray.is_initialized():
            return
        seen: set[tuple[str, int]] = set()
        for a, (s, r) in zip(self.actors, self.ranks):
            if (s.mesh, r) not in seen:
                seen.add((s.mesh, r))
                try:
                    ray.get(a.unlink_pool.remote(), timeout=5)
                except Exception:
                    pass
        for a in self.actors:
            try:
                ray.kill(a)
            except Exception:
                pass
        from ray.util.placement_group import remove_placement_group

        for pg in self.groups:
            try:
                remove_placement_group(pg)
            except Exception:
                pass
        if self.owns_ray:
            ray.shutdown()


def _why(e: BaseException) -> str:
    return " ".join(f"{type(e).__name__}: {e}".split())[:300]
