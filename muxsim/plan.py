"""Plans: which LLMs share which GPUs and how they split them (``plan.json``).

A :class:`Plan` is plain frozen data: meshes (sets of GPUs inside one node), each with
units (one per LLM placed there) that carry the tensor-parallel degree, the SM shares of
the prefill and decode jobs, the share of the mesh's KV pool and a batch cap. ``mode``
says how colocated LLMs share the mesh: ``flex`` (MuxServe), ``spatial`` (one LLM per
mesh) or ``temporal`` (whole-mesh turns). A plan made by placement also records the
scheduling policy of its mode (``policy``, a name in :data:`muxsim.policy.POLICIES`) and
the serving limits (``limits``) it was estimated for; the simulator warns when it runs a
plan under others.

An LLM may have replicas: units of the same name (and model) on several meshes. Its
requests then go to whichever replica has the fewest outstanding (the simulator's
router), and the plan's estimate sums the replicas (``estimate.per_unit`` holds each
one's share, by mesh id).

Placement algorithms return plans; the simulator and the executor consume them; a plan
written by hand loads through :func:`plan_from_dict` with every bad field named.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from muxsim.errors import InputError
from muxsim.limits import DEFAULT_LIMITS, ServingLimits

MODES = ("flex", "spatial", "temporal")


@dataclass(frozen=True)
class Unit:
    """One LLM placed on a mesh."""

    name: str
    model: str | dict[str, Any]
    tp: int
    prefill_sm: float = 1.0
    decode_sm: float = 1.0
    kv_share: float = 1.0
    max_batch: int = DEFAULT_LIMITS.max_batch

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": self.model,
            "tp": self.tp,
            "prefill_sm": self.prefill_sm,
            "decode_sm": self.decode_sm,
            "kv_share": self.kv_share,
            "max_batch": self.max_batch,
        }


@dataclass(frozen=True)
class Mesh:
    """A set of GPUs inside one node, serving the units placed on it."""

    id: str
    node: int
    gpus: tuple[int, ...]
    units: tuple[Unit, ...] = ()

    @property
    def size(self) -> int:
        return len(self.gpus)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "node": self.node,
            "gpus": list(self.gpus),
            "units": [u.to_dict() for u in self.units],
        }


@dataclass(frozen=True)
class Cluster:
    gpu: str
    nodes: int
    gpus_per_node: int

    @property
    def total_gpus(self) -> int:
        return self.nodes * self.gpus_per_node

    def to_dict(self) -> dict[str, Any]:
        return {"gpu": self.gpu, "nodes": self.nodes, "gpus_per_node": self.gpus_per_node}


@dataclass(frozen=True)
class Plan:
    cluster: Cluster
    meshes: tuple[Mesh, ...]
    algorithm: str = "manual"
    mode: str = "flex"
    estimate: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    version: int = 1
    limits: ServingLimits | None = None  # the serving limits placement assumed (None: not recorded)
    policy: str | None = None  # the policy of its mode placement assumed (None: not recorded)

    # ---- lookups -----------------------------------------------------------------
    def units(self) -> list[tuple[Mesh, Unit]]:
        return [(m, u) for m in self.meshes for u in m.units]

    def replicas(self, name: str) -> list[tuple[Mesh, Unit]]:
        """Every (mesh, unit) serving ``name``, in mesh order (one unless replicated)."""
        return [(m, u) for m in self.meshes for u in m.units if u.name == name]

    def mesh_of(self, name: str) -> Mesh:
        """The mesh serving ``name`` (its first replica's)."""
        for m in self.meshes:
            if any(u.name == name for u in m.units):
                return m
        raise KeyError(name)

    def unit(self, name: str) -> Unit:
        """The unit serving ``name`` (its first replica)."""
        for m in self.meshes:
            for u in m.units:
                if u.name == name:
                    return u
        raise KeyError(name)

    # ---- (de)serialization -------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = {
            "version": self.version,
            "algorithm": self.algorithm,
            "mode": self.mode,
            "cluster": self.cluster.to_dict(),
            "meshes": [m.to_dict() for m in self.meshes],
            "estimate": self.estimate,
        }
        if self.policy is not None:
            d["policy"] = self.policy
        if self.limits is not None:
            d["limits"] = self.limits.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: Any) -> Plan:
        return plan_from_dict(d)

    def normalize(self) -> Plan:
        """Canonical order: meshes by (node, first GPU), units by name, ids m0, m1, ..."""
        meshes = sorted(self.meshes, key=lambda m: (m.node, min(m.gpus) if m.gpus else -1))
        out = []
        for i, m in enumerate(meshes):
            out.append(replace(m, id=f"m{i}", gpus=tuple(sorted(m.gpus)),
                               units=tuple(sorted(m.units, key=lambda u: u.name))))
        return replace(self, meshes=tuple(out))

    def verify(self, workload: Any = None, memory: Any = None, limits: ServingLimits | None = None) -> None:
        """Raise :class:`InputError` naming the first thing that makes the plan invalid.

        Structural checks always run (GPUs inside the cluster and used once, meshes
        inside a node, a name at most once per mesh and with one model across its
        replicas, SM shares in range, KV shares summing to at most one, TP equal to the
        mesh size). With ``workload``, every LLM of the workload must be placed (once,
        or as replicas) and nothing else. With ``memory`` (a :class:`muxsim.memory.MemoryModel`)
        the weights and reserves of each mesh must fit its GPUs. With ``limits`` (else the
        plan's own, if it records them), the decode SM shares of a ``flex`` mesh may sum to
        at most ``limits.overload`` and no unit's batch cap may pass ``limits.max_batch``.
        """
        verify_plan(self, workload=workload, memory=memory, limits=limits)


def _get(d: dict[str, Any], key: str, where: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
    if key not in d:
        if default is ...:
            raise InputError(f"{where}.{key}: missing")
        return default
    v = d[key]
    if kind is float and isinstance(v, int) and not isinstance(v, bool):
        v = float(v)
    if not isinstance(v, kind) or (isinstance(v, bool) and kind is not bool):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise InputError(f"{where}.{key}: expected {names}, got {v!r}")
    if isinstance(v, float) and not math.isfinite(v):
        raise InputError(f"{where}.{key}: must be finite, got {v!r}")
    return v


def plan_from_dict(d: Any) -> Plan:
    if not isinstance(d, dict):
        raise InputError("plan: expected a JSON object")
    version = _get(d, "version", "plan", int, 1)
    if version != 1:
        raise InputError(f"plan.version: unsupported version {version!r} (this muxsim reads 1)")
    mode = _get(d, "mode", "plan", str, "flex")
    if mode not in MODES:
        raise InputError(f"plan.mode: must be one of {', '.join(MODES)}, got {mode!r}")
    c = _get(d, "cluster", "plan", dict)
    cluster = Cluster(
        gpu=_get(c, "gpu", "plan.cluster", str),
        nodes=_get(c, "nodes", "plan.cluster", int),
        gpus_per_node=_get(c, "gpus_per_node", "plan.cluster", int),
    )
    if cluster.nodes < 1 or cluster.gpus_per_node < 1:
        raise InputError("plan.cluster: nodes and gpus_per_node must be >= 1")
    meshes = []
    raw_meshes = _get(d, "meshes", "plan", list)
    for i, m in enumerate(raw_meshes):
        w = f"plan.meshes[{i}]"
        if not isinstance(m, dict):
            raise InputError(f"{w}: expected an object")
        gpus = _get(m, "gpus", w, list)
        if not gpus or not all(isinstance(g, int) and not isinstance(g, bool) for g in gpus):
            raise InputError(f"{w}.gpus: expected a non-empty list of GPU indices")
        units = []
        for j, u in enumerate(_get(m, "units", w, list)):
            wu = f"{w}.units[{j}]"
            if not isinstance(u, dict):
                raise InputError(f"{wu}: expected an object")
            units.append(Unit(
                name=_get(u, "name", wu, str),
                model=_get(u, "model", wu, (str, dict)),
                tp=_get(u, "tp", wu, int, len(gpus)),
                prefill_sm=_get(u, "prefill_sm", wu, float, 1.0),
                decode_sm=_get(u, "decode_sm", wu, float, 1.0),
                kv_share=_get(u, "kv_share", wu, float, 1.0 / max(1, len(m.get("units", [])))),
                max_batch=_get(u, "max_batch", wu, int, DEFAULT_LIMITS.max_batch),
            ))
        meshes.append(Mesh(id=_get(m, "id", w, str, f"m{i}"), node=_get(m, "node", w, int, 0),
                           gpus=tuple(gpus), units=tuple(units)))
    limits = d.get("limits")
    plan = Plan(cluster=cluster, meshes=tuple(meshes), algorithm=_get(d, "algorithm", "plan", str, "manual"),
                mode=mode, estimate=_get(d, "estimate", "plan", dict, {}), version=version,
                limits=None if limits is None else ServingLimits.from_dict(limits),
                policy=_get(d, "policy", "plan", str, None))
    verify_plan(plan)
    return plan


def verify_plan(plan: Plan, workload: Any = None, memory: Any = None, limits: ServingLimits | None = None) -> None:
    c = plan.cluster
    limits = limits or plan.limits
    if plan.policy is not None:
        from muxsim.policy import POLICIES

        known = POLICIES[plan.mode]
        if plan.policy not in known:
            raise InputError(f"plan.policy: {plan.policy!r} is not a {plan.mode} policy (known: {', '.join(known)})")
    from muxsim.gpus import get_gpu

    get_gpu(c.gpu, "plan.cluster.gpu")
    seen_gpus: set[tuple[int, int]] = set()
    names: dict[str, tuple[int, Any]] = {}  # name -> (first mesh, model)
    ids: set[str] = set()
    for i, m in enumerate(plan.meshes):
        w = f"plan.meshes[{i}]"
        if m.id in ids:
            raise InputError(f"{w}.id: duplicate mesh id {m.id!r}")
        ids.add(m.id)
        if not 0 <= m.node < c.nodes:
            raise InputError(f"{w}.node: {m.node} is outside the cluster's {c.nodes} node(s)")
        for g in m.gpus:
            if not 0 <= g < c.gpus_per_node:
                raise InputError(f"{w}.gpus: GPU {g} is outside node {m.node} ({c.gpus_per_node} GPUs)")
            if (m.node, g) in seen_gpus:
                raise InputError(f"{w}.gpus: GPU {g} of node {m.node} is in two meshes")
            seen_gpus.add((m.node, g))
        if plan.mode == "spatial" and len(m.units) > 1:
            raise InputError(f"{w}.units: a spatial plan puts one LLM on a mesh, found {len(m.units)}")
        kv_total = 0.0
        decode_total = 0.0
        here: set[str] = set()
        for j, u in enumerate(m.units):
            wu = f"{w}.units[{j}]"
            if u.name in here:
                raise InputError(f"{wu}.name: {u.name!r} is placed twice on this mesh")
            here.add(u.name)
            first = names.setdefault(u.name, (i, u.model))
            if first[1] != u.model:
                raise InputError(f"{wu}.model: a replica of {u.name!r} must run its model, "
                                 f"{first[1]!r} on plan.meshes[{first[0]}]")
            if u.tp != m.size:
                raise InputError(f"{wu}.tp: {u.tp} differs from the mesh size {m.size}")
            for f in ("prefill_sm", "decode_sm"):
                v = getattr(u, f)
                if not 0 < v <= 1:
                    raise InputError(f"{wu}.{f}: must be in (0, 1], got {v!r}")
            if not 0 < u.kv_share <= 1:
                raise InputError(f"{wu}.kv_share: must be in (0, 1], got {u.kv_share!r}")
            if u.max_batch < 1:
                raise InputError(f"{wu}.max_batch: must be >= 1, got {u.max_batch!r}")
            if limits is not None and u.max_batch > limits.max_batch:
                raise InputError(f"{wu}.max_batch: {u.max_batch} is above the batch limit {limits.max_batch}")
            kv_total += u.kv_share
            decode_total += u.decode_sm
        if kv_total > 1 + 1e-9:
            raise InputError(f"{w}.units: kv_share sums to {kv_total:.4g} > 1")
        if limits is not None and plan.mode == "flex" and decode_total > limits.overload + 1e-9:
            raise InputError(f"{w}.units: decode_sm sums to {decode_total:.4g} > the overload limit "
                             f"{limits.overload:g}")
    if workload is not None:
        wanted = [m.name for m in workload.models]
        missing = [n for n in wanted if n not in names]
        if missing:
            raise InputError(f"plan: LLM(s) {', '.join(missing)} of the workload are not placed")
        extra = sorted(set(names) - set(wanted))
        if extra:
            raise InputError(f"plan: LLM(s) {', '.join(extra)} are not in the workload")
    if memory is not None:
        for i, m in enumerate(plan.meshes):
            if not m.units:
                continue
            free = memory.kv_pool_bytes_per_gpu([(u.model, u.tp) for u in m.units])
            if free <= 0:
                raise InputError(
                    f"plan.meshes[{i}]: weights and reserves of {', '.join(u.name for u in m.units)} "
                    f"exceed the GPU memory by {-free / 2**30:.2f} GiB per GPU")


def load_plan(path: str | Path) -> Plan:
    from muxsim.io import read_json

    return plan_from_dict(read_json(path, "plan"))


def save_plan(plan: Plan, path: str | Path) -> Path:
    """Write ``plan.json`` atomically (whole or not at all)."""
    from muxsim.io import write_json_atomic

    return write_json_atomic(path, plan.to_dict())


def plan_table(plan: Plan, rates: dict[str, float] | None = None) -> str:
    """A readable table: one row per unit (mesh, GPUs, LLM, TP, SM shares, KV share,
    batch cap, estimated throughput and, with ``rates``, the request rate; a replica
    shows its even share of both), then the total. A mesh whose decode shares sum past
    100% is flagged (MPS oversubscription, up to the overload limit)."""
    per_llm = plan.estimate.get("per_llm", {}) if plan.estimate else {}
    per_unit = plan.estimate.get("per_unit", {}) if plan.estimate else {}
    head = ["mesh", "gpus", "llm", "model", "tp", "prefill_sm", "decode_sm", "kv_share", "max_batch", "est_rps"]
    if rates is not None:
        head.append("rate_rps")
    rows = []
    copies: dict[str, int] = {}
    for _, u in plan.units():
        copies[u.name] = copies.get(u.name, 0) + 1
    for m in plan.meshes:
        decode_total = sum(u.decode_sm for u in m.units)
        flag = " *" if plan.mode == "flex" and decode_total > 1 + 1e-9 else ""
        gpus = f"n{m.node}:{m.gpus[0]}-{m.gpus[-1]}" if len(m.gpus) > 1 else f"n{m.node}:{m.gpus[0]}"
        for u in m.units:
            model = u.model if isinstance(u.model, str) else str(u.model.get("name", "inline"))
            est = per_unit.get(m.id, {}).get(u.name, per_llm.get(u.name))
            row = [m.id + flag, gpus, u.name, model, str(u.tp), f"{u.prefill_sm:.2f}", f"{u.decode_sm:.2f}",
                   f"{u.kv_share:.3f}", str(u.max_batch), "-" if est is None else f"{est:.2f}"]
            if rates is not None:
                row.append(f"{rates.get(u.name, float('nan')) / copies[u.name]:.2f}")
            rows.append(row)
    widths = [max(len(h), *(len(r[k]) for r in rows)) if rows else len(h) for k, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    total = plan.estimate.get("throughput_rps") if plan.estimate else None
    gpus_used = sum(m.size for m in plan.meshes if m.units)
    summary = (f"{plan.algorithm} ({plan.mode}): {len(plan.meshes)} meshes, {gpus_used}/{plan.cluster.total_gpus} "
               f"{plan.cluster.gpu} GPUs")
    if total is not None:
        summary += f", estimated throughput {total:.2f} req/s"
        if rates is not None:
            summary += f" of {sum(rates.values()):.2f} offered"
    lines.append(summary)
    if any(sum(u.decode_sm for u in m.units) > 1 + 1e-9 for m in plan.meshes) and plan.mode == "flex":
        limit = (plan.limits or DEFAULT_LIMITS).overload
        lines.append(f"* decode SM shares on this mesh sum past 100% (MPS oversubscription, limit {limit:.0%})")
    return "\n".join(lines)
