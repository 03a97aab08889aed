"""Changing the plan while the simulation runs: units added to a mesh, removed from it,
moved between meshes, or given other SM or KV shares.

``Simulation.change_plan(at_s, plan)`` switches to ``plan`` at simulated time ``at_s``
(the same mode and cluster; every mesh keeps its GPUs, and a new mesh may only use GPUs
no mesh used). At that time:

- The router sends new requests of an LLM to its replicas in the new plan, a unit still
  loading its weights included (the request waits there).
- Every mesh whose units or shares change stops scheduling, ends its decode runs after
  the step in progress and lets its prefills finish; then (a barrier, per mesh):

  * a unit leaving the mesh hands its requests over to its LLM's units in the new plan
    (fewest outstanding first): waiting ones as they are; running ones evicted (their KV
    blocks freed, to be recomputed there, counted as preemptions) or, with ``migrate``,
    moved with their KV: the blocks are freed here, sent over the GPU-to-GPU link (same
    node) or through the host, and taken there when they arrive and the unit serves (a
    request whose blocks do not fit there, or that lands on a mesh in the middle of
    another change, is recomputed after all);
  * units staying get their new shares; the KV pool is resized for the new set of
    weights (a leaving unit's weights free memory, an arriving unit's take it at once),
    evicting the newest running requests of the staying units if their blocks no longer
    fit: memory is never oversubscribed;
  * an arriving unit loads its weights: its per-GPU shard over the GPU-to-GPU link
    (``GPUSpec.interconnect_bw``) when a GPU of the same node held them before the
    change, else from the host (``GPUSpec.pcie_bw``). It serves nothing until loaded;
    then it joins its mesh and the mesh's policy starts over with it.
- A mesh on GPUs that were idle comes up when its first unit has loaded.

The policy of every reconfigured mesh starts over (turns, ADBS statistics, quotas from
the new plan's KV shares).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import numpy as np

from muxsim.errors import InputError, InputTypeError
from muxsim.limits import MAX_TIME_S, blocks_for
from muxsim.models import resolve_model
from muxsim.sim.batch import LLM
from muxsim.sim.engine import EventOrder


class _Loading:
    """Where requests routed to a unit that is loading its weights wait."""

    @staticmethod
    def on_arrival(llm: LLM, rid: int) -> None:
        llm.waiting.append(rid)


def change_plan(sim: Any, at_s: float, plan: Any, migrate: bool = False) -> None:
    """Switch ``sim`` to ``plan`` at simulated time ``at_s`` (see the module doc)."""
    from muxsim.plan import as_plan, verify_plan
    from muxsim.plancheck import check_plan_workload

    if isinstance(at_s, bool) or not isinstance(at_s, int | float | np.integer | np.floating):
        raise InputTypeError(f"at_s: expected a number of seconds, got {type(at_s).__name__}")
    if not (math.isfinite(at_s) and 0 <= at_s <= MAX_TIME_S):
        raise InputError(f"at_s: must be a number of seconds in [0, {MAX_TIME_S:g}], got {at_s!r}")
    if not at_s >= sim.engine.now:
        raise InputError(f"at_s: {at_s!r} is before the current time {sim.engine.now!r} s")
    if not isinstance(migrate, bool):
        raise InputTypeError(f"migrate: must be True or False, got {type(migrate).__name__}")
    plan = as_plan(plan)
    if plan.mode != sim.plan.mode or plan.cluster != sim.plan.cluster:
        raise InputError("plan: a plan change keeps the plan's mode and cluster")
    limits = sim.config.limits  # the new plan must fit the limits the simulator runs with
    if hasattr(sim.workload, "models") and hasattr(sim.workload, "cluster"):
        check_plan_workload(plan, sim.workload, limits=limits)
    else:
        verify_plan(plan, workload=sim.workload if hasattr(sim.workload, "models") else None, limits=limits)
    at_s = float(at_s)
    old = {_key(m.mesh): m for m in sim.meshes}
    used = {(node, g) for node, gpus in old for g in gpus}
    for m in plan.meshes:
        key = _key(m)
        if m.units and key not in old and used & {(key[0], g) for g in key[1]}:
            raise InputError(f"plan.meshes[{plan.meshes.index(m)}]: a plan change keeps each mesh's GPUs "
                             "(a new mesh may only use GPUs no mesh used)")
        if m.units and int(sim.memory.kv_blocks_per_gpu([(resolve_model(u.model), u.tp) for u in m.units])) <= 0:
            raise InputError(f"plan.meshes[{plan.meshes.index(m)}]: no memory left for the KV cache")
    sim.engine.schedule(at_s, EventOrder.PLAN_CHANGE, partial(_begin, sim, migrate), plan)


def _key(mesh: Any) -> tuple[int, tuple[int, ...]]:
    return mesh.node, tuple(sorted(mesh.gpus))


def _begin(sim: Any, migrate: bool, plan: Any) -> None:
    now = sim.engine.now
    meshes = {_key(m.mesh): m for m in sim.meshes}
    copies: dict[str, int] = {}
    for _, u in plan.units():
        copies[u.name] = copies.get(u.name, 0) + 1
    # where each LLM's weights are now (node -> names), for the load bandwidth
    held = {(key[0], u.name) for key, m in meshes.items() for u in m.units}
    reps: dict[str, list[LLM]] = {name: [] for name in sim.by_name}
    arriving: dict[tuple[int, tuple[int, ...]], list[LLM]] = {}
    for spec in plan.meshes:
        key = _key(spec)
        here = {u.name: u for u in meshes[key].units} if key in meshes else {}
        for u in spec.units:
            llm = here.get(u.name)
            if llm is None:  # a unit arriving on this mesh: it loads its weights first
                model = resolve_model(u.model)
                llm = LLM(len(arriving.get(key, [])), u, model, int(sim.memory.blocks_per_token_block(model, u.tp)))
                llm.gid = len(sim.llms)
                llm.loading = True
                bw = sim.gpu.interconnect_bw if (key[0], u.name) in held else sim.gpu.pcie_bw
                llm.load_s = model.weight_bytes_per_gpu(u.tp) / bw
                sim.llms.append(llm)
                sim.mesh_of.append(_Loading)
                arriving.setdefault(key, []).append(llm)
            llm.unit = u  # the new plan's unit (its shares apply at the mesh's barrier)
            llm.rate = sim.rates.get(u.name, 0.0) / copies[u.name]
            reps[u.name].append(llm)
    for name, units in reps.items():
        for llm in sim.by_name[name]:
            if llm not in units:
                llm.leaving = True
        sim.by_name[name][:] = units  # in place: each request's replica list follows
    sim.plan = plan
    specs = {_key(m): m for m in plan.meshes}
    for key, mesh in meshes.items():
        spec = specs.get(key)
        here = arriving.pop(key, [])
        if here or _changed(mesh, spec):
            mesh.hold(partial(_apply, sim, mesh, spec, here, migrate))
    for key, units in arriving.items():  # meshes on GPUs that were idle
        for llm in units:
            sim.engine.schedule(now + llm.load_s, EventOrder.PLAN_CHANGE, partial(_ready, sim, specs[key], None), llm)


def _changed(mesh: Any, spec: Any) -> bool:
    """Whether the plan changes ``mesh``'s units or their shares."""
    if spec is None:
        return bool(mesh.units)
    now = [(x.name, x.prefill_sm, x.decode_sm, x.kv_share, x.max_batch) for x in mesh.units]
    new = [(u.name, u.prefill_sm, u.decode_sm, u.kv_share, u.max_batch) for u in spec.units]
    return sorted(now) != sorted(new)


def _apply(sim: Any, mesh: Any, spec: Any, arriving: list[LLM], migrate: bool) -> None:
    """The barrier of ``mesh``: no job runs on it."""
    names = {u.name: u for u in spec.units} if spec is not None else {}
    if spec is not None:
        mesh.mesh = spec
    staying = []
    for llm in mesh.units:
        if llm.leaving:
            _hand_over(sim, mesh, llm, migrate)
        else:
            u = names[llm.name]
            llm.unit = u
            llm.prefill_sm, llm.decode_sm, llm.kv_share, llm.max_batch = u.prefill_sm, u.decode_sm, u.kv_share, u.max_batch
            staying.append(llm)
    order = [u.name for u in spec.units] if spec is not None else []
    staying.sort(key=lambda x: order.index(x.name))  # the plan's order
    weights = [(x.spec, x.tp) for x in staying + arriving]
    total = int(sim.memory.kv_blocks_per_gpu(weights)) if weights else mesh.kv.total
    while mesh.kv.used_total > total:  # the new weights need the room: evict the newest requests
        victim = max((x for x in staying if x.run), key=lambda x: (mesh.kv.used[x.idx], -x.idx))
        rid = next(reversed(victim.run))
        mesh.evict(victim, rid)
        victim.waiting.appendleft(rid)
    mesh.reconfigure(staying, total)
    now = sim.engine.now
    for llm in arriving:
        sim.engine.schedule(now + llm.load_s, EventOrder.PLAN_CHANGE, partial(_ready, sim, spec, mesh), llm)


def _hand_over(sim: Any, mesh: Any, llm: LLM, migrate: bool) -> None:
    """Every request of a leaving unit goes to its LLM's units in the new plan."""
    req = sim.requests
    moving = []
    for rid in list(llm.run):  # running: evicted, or moved with its KV (oldest first)
        if migrate:
            base = req.base[rid]
            ctx = base + llm.steps
            blocks = llm.remove(rid, base) * llm.cost_blocks
            llm.dec_blocks -= blocks
            mesh.kv.release(llm.idx, blocks)
            req.migrating(rid, ctx)
            moving.append((rid, ctx))
        else:
            mesh.evict(llm, rid)
            moving.append((rid, 0))
    moving += [(rid, 0) for rid in llm.waiting]
    llm.waiting.clear()
    reps = sim.by_name[llm.name]
    now = sim.engine.now
    for rid, ctx in moving:
        dest = min(reps, key=lambda x: x.outstanding)
        llm.outstanding -= 1
        dest.outstanding += 1
        sim.req_llm[rid] = dest
        if ctx:  # its KV over the link: the blocks of every GPU of the mesh in parallel
            same = _node(sim, dest) == mesh.mesh.node
            bw = sim.gpu.interconnect_bw if same else sim.gpu.pcie_bw
            t = ctx * llm.spec.kv_bytes_per_token_per_gpu(llm.tp) / bw
            sim.engine.schedule(now + t, EventOrder.PLAN_CHANGE, partial(_deliver, sim, dest), (rid, ctx))
        else:
            sim.mesh_of[dest.gid].on_arrival(dest, rid)
    sim.ensure_ticks()  # requests reached meshes without arriving: the periodic work is awake
    assert mesh.kv.used[llm.idx] == 0 and llm.outstanding == 0


def _node(sim: Any, llm: LLM) -> int:
    """The node of the plan mesh ``llm`` serves on."""
    return next(m.node for m in sim.plan.meshes if any(u is llm.unit for u in m.units))


def _deliver(sim: Any, dest: LLM, item: tuple[int, int]) -> None:
    """A migrated request's KV has arrived at ``dest``: it joins the batch if the unit
    serves and its blocks fit, else it is recomputed there."""
    if dest.loading:
        dest.incoming.append(item)  # it joins when the unit does
        return
    mesh = sim.mesh_of[dest.gid]
    _land(sim, mesh, dest, [item])
    if not mesh.held:
        mesh._carry(mesh.scheduler.schedule())


def _land(sim: Any, mesh: Any, dest: LLM, items: list[tuple[int, int]]) -> None:
    req = sim.requests
    for rid, ctx in items:
        blocks = blocks_for(ctx) * dest.cost_blocks
        if mesh.held or blocks > mesh.kv.limit(dest.idx):
            req.preempted(rid, ctx)  # recomputed after all
            mesh.preemptions += 1
            dest.waiting.append(rid)
            continue
        mesh.kv.take(dest.idx, blocks)
        dest.pre_blocks += blocks
        dest.pending.append(rid)
    sim.ensure_ticks()
    if dest.pending:
        if dest.decode is not None:
            mesh.truncate(dest.decode)  # they join when the run ends, after its step in progress
        else:
            mesh._join_pending(dest)


def _ready(sim: Any, spec: Any, mesh: Any, llm: LLM) -> None:
    """``llm`` has loaded its weights: it joins its mesh at the mesh's next barrier (a
    mesh on GPUs that were idle comes up now)."""
    llm.ready_s = sim.engine.now
    if mesh is None:
        mesh = next((m for m in sim.meshes if _key(m.mesh) == _key(spec)), None)
    if mesh is None:
        from muxsim.sim.mesh import Mesh

        llm.idx = 0
        llm.loading = False
        mesh = Mesh(sim, spec, [llm], int(sim.memory.kv_blocks_per_gpu([(llm.spec, llm.tp)])), sim.policy)
        sim.meshes.append(mesh)
        sim.samples.setdefault(mesh.id, {"t": [], "sm": [], "kv": []})
        sim.mesh_of[llm.gid] = mesh
        _arrived(sim, mesh, llm)
        mesh._carry(mesh.scheduler.schedule())
    else:
        mesh.hold(partial(_join, sim, mesh, llm))
    sim.ensure_ticks()


def _join(sim: Any, mesh: Any, llm: LLM) -> None:
    llm.loading = False
    sim.mesh_of[llm.gid] = mesh
    order = [u.name for u in mesh.mesh.units]  # the plan's order
    units = sorted([*mesh.units, llm], key=lambda x: order.index(x.name))
    mesh.reconfigure(units, int(sim.memory.kv_blocks_per_gpu([(x.spec, x.tp) for x in units])))
    _arrived(sim, mesh, llm)


def _arrived(sim: Any, mesh: Any, llm: LLM) -> None:
    """Migrated requests that reached ``llm`` while it loaded join it now."""
    items, llm.incoming = llm.incoming, []
    _land(sim, mesh, llm, items)  # at a barrier (no job runs) or on a mesh just made
