"""The baselines MuxServe is measured against, built to be strong rather than straw men.

- ``greedy-memory``: over the same mesh groups as MuxServe, the largest models first,
  each onto the mesh with the most free memory (MuxServe's memory-greedy baseline, with
  one mesh object per mesh: their code aliases one across nodes).
- ``spatial``: every LLM alone on its own GPUs (vLLM per model). Each gets the smallest
  mesh its weights and KV need; spare GPUs then double the mesh of the LLM whose
  estimated throughput gains most per GPU, and once no doubling adds throughput, of the
  most loaded LLM (load > 0.5) to cut its latency. No replicas: one mesh per LLM.
- ``spatial-min``: the same without spending spare GPUs (every LLM on its smallest mesh,
  the rest idle), close to the paper's vLLM baseline (7B/13B on one GPU each).
- ``temporal``: MuxServe's colocation, with LLMs taking whole-mesh turns at full SMs.
"""

from __future__ import annotations

from muxsim.errors import InputError
from muxsim.placement.estimator import Estimator, UnitEstimate
from muxsim.placement.meshgroups import layout, powers_of_two
from muxsim.placement.muxserve import GroupFill

_LOAD_WORTH_SPLITTING = 0.5


def memory_fill(est: Estimator, order: list[int], sizes: tuple[int, ...]) -> GroupFill | None:
    """Largest weights first, each onto the mesh with the most free memory (in bytes
    over all its GPUs) where it fits."""
    p = est.problem
    mem = est.memory
    by_weight = sorted(range(len(p.llms)), key=lambda i: (-p.llms[i].spec.weight_bytes(), i))
    members: list[tuple[int, ...]] = [() for _ in sizes]
    units: list[UnitEstimate | None] = [None for _ in sizes]
    for i in by_weight:
        best = None
        for k, size in enumerate(sizes):
            if len(members[k]) >= est.max_colocated:
                continue
            free = mem.kv_pool_bytes_per_gpu([(p.llms[j].spec, size) for j in members[k]]) * size
            if best is not None and free <= best[0]:
                continue
            u = est.flex((*members[k], i), size)
            if u.feasible:
                best = (free, k, u)
        if best is None:
            return None
        _, k, u = best
        members[k], units[k] = u.members, u
    return GroupFill(sizes=sizes, units=tuple(units), total=sum(u.total for u in units if u is not None))


def spatial_units(est: Estimator, spend_spare: bool = True) -> list[UnitEstimate] | str:
    """One dedicated mesh per LLM; a string says why that is impossible. Without
    ``spend_spare`` every LLM keeps its smallest mesh and spare GPUs stay idle."""
    p = est.problem
    c = p.cluster
    sizes_all = powers_of_two(c.gpus_per_node)
    size = []
    for i, m in enumerate(p.llms):
        s = est.min_size(i, sizes_all)
        if s is None:
            return f"{m.name} fits no mesh of up to {c.gpus_per_node} GPUs"
        size.append(s)
    if not _packs(size, c.nodes, c.gpus_per_node):
        return (f"the {len(size)} LLMs need {sum(size)} dedicated GPUs in meshes of {sorted(size, reverse=True)}, "
                f"the cluster has {c.total_gpus}")
    while spend_spare:
        best = None
        for i, s in enumerate(size):
            t = 2 * s
            if t > c.gpus_per_node or not est.supports(i, t):
                continue
            new = est.dedicated(i, t)
            if not new.feasible or not _packs([*size[:i], t, *size[i + 1:]], c.nodes, c.gpus_per_node):
                continue
            old = est.dedicated(i, s)
            gain = (new.total - old.total) / s
            key = (round(gain, 9), round(old.load, 9), -i)
            if gain > 1e-9 or old.load > _LOAD_WORTH_SPLITTING:
                if best is None or key > best[0]:
                    best = (key, i, t)
        if best is None:
            break
        size[best[1]] = best[2]
    return [est.dedicated(i, s) for i, s in enumerate(size)]


def _packs(sizes: list[int], nodes: int, gpus_per_node: int) -> bool:
    if sum(sizes) > nodes * gpus_per_node:
        return False
    try:
        layout(sizes, nodes, gpus_per_node)
    except InputError:
        return False
    return True


def temporal_units(est: Estimator, fill: GroupFill) -> list[UnitEstimate]:
    """The same colocation, re-estimated with whole-mesh turns."""
    return [est.temporal(u.members, u.size) for u in fill.units if u is not None]
