"""The baselines MuxServe is measured against, built to be strong rather than straw men.

- ``greedy-memory``: over the same mesh groups as MuxServe, the largest models first,
  each onto the mesh with the most free memory (MuxServe's memory-greedy baseline, with
  one mesh object per mesh: their code aliases one across nodes).
- ``spatial``: every LLM alone on its own GPUs (vLLM per model). Each gets the smallest
  mesh its weights and KV need; spare GPUs then go, a step at a time, where estimated
  throughput gains most per GPU: doubling the meshes of an LLM (a larger TP) or adding
  a replica (one more mesh of its size, the rate split evenly, which is how the
  simulator's shortest-queue router spreads it); once nothing adds throughput, to the
  most loaded LLM (load > 0.5) to cut its latency.
- ``spatial-min``: the same without spending spare GPUs (every LLM on its smallest mesh,
  the rest idle), close to the paper's vLLM baseline (7B/13B on one GPU each).
- ``temporal``: MuxServe's colocation, with LLMs taking whole-mesh turns at full SMs.
"""

from __future__ import annotations

from muxsim.placement.estimator import Estimator, UnitEstimate
from muxsim.placement.meshgroups import packs, powers_of_two
from muxsim.placement.muxserve import GroupFill
from muxsim.placement.result import Deadline

_LOAD_WORTH_SPLITTING = 0.5


def memory_fill(est: Estimator, order: list[int], sizes: tuple[int, ...],
                deadline: Deadline | None = None) -> GroupFill | None:
    """Largest weights first, each onto the mesh with the most free memory (in bytes
    over all its GPUs) where it fits (SearchTimeout when ``deadline`` passes)."""
    p = est.problem
    mem = est.memory
    by_weight = sorted(range(len(p.llms)), key=lambda i: (-p.llms[i].spec.weight_bytes(), i))
    members: list[tuple[int, ...]] = [() for _ in sizes]
    units: list[UnitEstimate | None] = [None for _ in sizes]
    for i in by_weight:
        if deadline is not None:
            deadline.check()
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


def spatial_units(est: Estimator, spend_spare: bool = True,
                  deadline: Deadline | None = None) -> list[UnitEstimate] | str:
    """One dedicated mesh per LLM and replica; a string says why that is impossible.
    Without ``spend_spare`` every LLM keeps one smallest mesh and spare GPUs stay idle;
    spare GPUs stop being spent once ``deadline`` passes (the meshes so far are kept)."""
    p = est.problem
    c = p.cluster
    sizes_all = powers_of_two(c.gpus_per_node)
    size = []
    for i, m in enumerate(p.llms):
        s = est.min_size(i, sizes_all)
        if s is None:
            return f"{m.name} fits no mesh of up to {c.gpus_per_node} GPUs"
        size.append(s)
    reps = [1] * len(size)
    caps = p.capacities
    if not packs(size, caps):
        return (f"the {len(size)} LLMs need {sum(size)} dedicated GPUs in meshes of {sorted(size, reverse=True)}, "
                f"the cluster offers {p.usable_gpus}")

    def unit(i: int, s: int, r: int) -> UnitEstimate:  # one of r replicas of LLM i on s GPUs
        return est.split(r).dedicated(i, s)

    def meshes(sz: list[int], rp: list[int]) -> list[int]:
        return [s for s, r in zip(sz, rp) for _ in range(r)]

    while spend_spare and not (deadline is not None and deadline.passed()):
        best = None
        for i, (s, r) in enumerate(zip(size, reps)):
            if deadline is not None and deadline.passed():
                best = None  # a step cut short: keep the meshes of the steps taken
                break
            old = unit(i, s, r)
            options = [(s, r + 1)]  # a replica
            if 2 * s <= c.gpus_per_node and est.supports(i, 2 * s):
                options.append((2 * s, r))  # larger meshes
            for t, q in options:
                new = unit(i, t, q)
                if not new.feasible:
                    continue
                grown = meshes([*size[:i], t, *size[i + 1:]], [*reps[:i], q, *reps[i + 1:]])
                if not packs(grown, caps):
                    continue
                cost = t * q - s * r
                gain = (q * new.total - r * old.total) / cost
                # most throughput per GPU, then the most loaded LLM, then the lowest load
                # after the step, then the cheaper step
                key = (round(gain, 9), round(old.load, 9), -i, -round(new.load, 9), -cost)
                if gain > 1e-9 or old.load > _LOAD_WORTH_SPLITTING:
                    if best is None or key > best[0]:
                        best = (key, i, t, q)
        if best is None:
            break
        _, i, size[i], reps[i] = best
    return [unit(i, s, r) for i, (s, r) in enumerate(zip(size, reps)) for _ in range(r)]


def temporal_units(est: Estimator, fill: GroupFill) -> list[UnitEstimate]:
    """The same colocation, re-estimated with whole-mesh turns."""
    return [est.temporal(u.members, u.size) for u in fill.units if u is not None]
