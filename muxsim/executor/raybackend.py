"""The Ray backend: every worker a Ray actor, each mesh's workers in one placement group
pinned to the plan's node.

Plan node ``i`` is the ``i``-th alive node of the Ray cluster (ordered by address), so a
plan for 4 nodes runs on a 4-node cluster and is refused on a smaller one. Each mesh
gets one bundle on its node (CPUs on a CPU run, its GPUs on a GPU run) holding its
workers; a mesh's workers share its KV pool through a file on that node, as locally.
Without ``--address`` a local Ray is started for the run and shut down after it.
"""

from __future__ import annotations

import os
import time
from typing import Any

from muxsim.errors import InputError
from muxsim.executor.local import WorkerFailed, describe
from muxsim.executor.worker import UnitWorker, WorkerSpec


class ActorWorker:
    """A :class:`~muxsim.executor.worker.UnitWorker` as a Ray actor."""

    def __init__(self, spec: WorkerSpec) -> None:
        if spec.device != "cpu":
            os.environ["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] = str(spec.sm_pct)
        self.spec = spec
        self.worker = UnitWorker(spec)

    def ready(self) -> int:
        return os.getpid()

    def run(self, kind: str, payload: dict[str, Any]) -> tuple[list[int], float]:
        return self.worker.run(kind, payload)

    def unlink_pool(self) -> None:
        try:
            os.unlink(self.spec.pool_path)
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
        self.actors: list[Any] = []
        self.groups: list[Any] = []
        self.pending: dict[Any, tuple[int, int]] = {}  # object ref -> (job id, worker id)

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
        alive = sorted((n for n in ray.nodes() if n.get("Alive")), key=lambda n: (n["NodeManagerAddress"], n["NodeID"]))
        need = max(self.mesh_node.values(), default=0) + 1
        if need > len(alive):
            raise InputError(f"plan.meshes: the plan uses {need} nodes; the Ray cluster has {len(alive)}")
        meshes: dict[str, list[WorkerSpec]] = {}
        for s in self.specs:
            meshes.setdefault(s.mesh, []).append(s)
        cls = ray.remote(ActorWorker)
        by_wid: dict[int, Any] = {}
        for mesh, specs in meshes.items():
            ip = alive[self.mesh_node.get(mesh, 0)]["NodeManagerAddress"]
            bundle = {"CPU": 1.0, f"node:{ip}": 0.001}
            pg = placement_group([bundle], strategy="STRICT_PACK")
            self.groups.append(pg)
            ready = pg.ready()
            done, _ = ray.wait([ready], timeout=timeout_s)
            if not done:
                raise WorkerFailed(f"start-up timed out after {timeout_s:g} s placing mesh {mesh} on node {ip}")
            for s in specs:
                strategy = PlacementGroupSchedulingStrategy(placement_group=pg, placement_group_bundle_index=0)
                by_wid[s.wid] = cls.options(num_cpus=1.0 / len(specs), scheduling_strategy=strategy,
                                            max_restarts=0).remote(s)
        self.actors = [by_wid[s.wid] for s in self.specs]
        refs = {a.ready.remote(): s for a, s in zip(self.actors, self.specs)}
        deadline = time.monotonic() + timeout_s
        while refs:
            done, _ = ray.wait(list(refs), num_returns=len(refs), timeout=max(0.0, deadline - time.monotonic()))
            if not done:
                missing = ", ".join(describe(s) for s in refs.values())
                raise WorkerFailed(f"start-up timed out after {timeout_s:g} s waiting for {missing}")
            for ref in done:
                s = refs.pop(ref)
                try:
                    ray.get(ref)
                except Exception as e:
                    raise WorkerFailed(f"{describe(s)} failed to start: {_why(e)}") from None

    def submit(self, wid: int, kind: str, job_id: int, payload: dict[str, Any]) -> None:
        self.pending[self.actors[wid].run.remote(kind, payload)] = (job_id, wid)

    def poll(self, timeout: float) -> list[tuple[Any, ...]]:
        if not self.pending:
            time.sleep(max(0.0, timeout))
            return []
        ray = self.ray
        refs = list(self.pending)
        done, _ = ray.wait(refs, num_returns=1, timeout=max(0.0, timeout))
        if done:
            done, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        out = []
        for ref in sorted(done, key=lambda r: self.pending[r][0]):  # job order: results in a fixed order
            job_id, wid = self.pending.pop(ref)
            try:
                tokens, seconds = ray.get(ref)
            except Exception as e:
                raise WorkerFailed(f"{describe(self.specs[wid])}: {_why(e)}") from None
            out.append(("done", job_id, tokens, seconds))
        return out

    def stop(self) -> None:
        ray = self.ray
        if not ray.is_initialized():
            return
        seen: set[str] = set()
        for a, s in zip(self.actors, self.specs):
            if s.mesh not in seen:
                seen.add(s.mesh)
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
