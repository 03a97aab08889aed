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
from muxsim.limits import (
    DEFAULT_LIMITS,
    MAX_BATCH,
    MAX_GPUS_PER_NODE,
    MAX_NODES,
    MAX_PATH_CHARS,
    MIN_SM_SHARE,
    ServingLimits,
)

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


# The cluster a workload gets when none is given (workload synth and from-trace
# alike): the paper's 4 nodes x 8 A100-80GB.
DEFAULT_CLUSTER = Cluster("a100-80gb", 4, 8)


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
        try:
            v = float(v)
        except OverflowError:
            raise InputError(f"{where}.{key}: must be finite, got {shown_value(v)}") from None
    if not isinstance(v, kind) or (isinstance(v, bool) and kind is not bool):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise InputError(f"{where}.{key}: expected {names}, got {shown_value(v)}")
    if isinstance(v, float) and not math.isfinite(v):
        raise InputError(f"{where}.{key}: must be finite, got {shown_value(v)}")
    if isinstance(v, str) and len(v) > MAX_PATH_CHARS:
        raise InputError(f"{where}.{key}: may have at most {MAX_PATH_CHARS} characters")
    return v


def _int(d: dict[str, Any], key: str, where: str, lo: int, hi: int, default: Any = ...) -> int:
    v = _get(d, key, where, int, default)
    if not lo <= v <= hi:
        raise InputError(f"{where}.{key}: must be in [{lo}, {hi}], got {shown_value(v)}")
    return v


def _names(names: list[str]) -> str:
    shown = ", ".join(shown_value(n)[1:-1] for n in names[:5])
    return shown + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def shown_value(v: Any) -> str:
    """A value for an error message: short, whatever its size."""
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 10**20:
        return f"a number of {len(str(abs(v)))} digits"
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


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
    from muxsim.gpus import get_gpu

    cluster = Cluster(
        gpu=get_gpu(_get(c, "gpu", "plan.cluster", str), "plan.cluster.gpu").name,
        nodes=_int(c, "nodes", "plan.cluster", 1, MAX_NODES),
        gpus_per_node=_int(c, "gpus_per_node", "plan.cluster", 1, MAX_GPUS_PER_NODE),
    )
    meshes = []
    raw_meshes = _get(d, "meshes", "plan", list)
    if len(raw_meshes) > cluster.total_gpus:
        raise InputError(f"plan.meshes: {len(raw_meshes)} meshes for {cluster.total_gpus} GPUs")
    for i, m in enumerate(raw_meshes):
        w = f"plan.meshes[{i}]"
        if not isinstance(m, dict):
            raise InputError(f"{w}: expected an object")
        gpus = _get(m, "gpus", w, list)
        if not gpus or not all(isinstance(g, int) and not isinstance(g, bool) for g in gpus):
            raise InputError(f"{w}.gpus: expected a non-empty list of GPU indices")
        if len(gpus) > cluster.gpus_per_node:
            raise InputError(f"{w}.gpus: {len(gpus)} GPUs, more than a node's {cluster.gpus_per_node}")
        raw_units = _get(m, "units", w, list)
        units = []
        for j, u in enumerate(raw_units):
            wu = f"{w}.units[{j}]"
            if not isinstance(u, dict):
                raise InputError(f"{wu}: expected an object")
            units.append(Unit(
                name=_get(u, "name", wu, str),
                model=_get(u, "model", wu, (str, dict)),
                tp=_int(u, "tp", wu, 1, MAX_GPUS_PER_NODE, len(gpus)),
                prefill_sm=_get(u, "prefill_sm", wu, float, 1.0),
                decode_sm=_get(u, "decode_sm", wu, float, 1.0),
                kv_share=_get(u, "kv_share", wu, float, 1.0 / max(1, len(raw_units))),
                max_batch=_int(u, "max_batch", wu, 1, MAX_BATCH, DEFAULT_LIMITS.max_batch),
            ))
        meshes.append(Mesh(id=_get(m, "id", w, str, f"m{i}"),
                           node=_get(m, "node", w, int, 0),
                           gpus=tuple(gpus), units=tuple(units)))
    limits = d.get("limits")
    if limits is not None:
        try:
            limits = ServingLimits.from_dict(limits)
        except InputError as e:
            raise InputError(f"plan.{e}") from None
    plan = Plan(cluster=cluster, meshes=tuple(meshes), algorithm=_get(d, "algorithm", "plan", str, "manual"),
                mode=mode, estimate=_get(d, "estimate", "plan", dict, {}), version=version,
                limits=limits,
                policy=_get(d, "policy", "plan", str, None))
    verify_plan(plan)
    return plan


def verify_plan(plan: Plan, workload: Any = None, memory: Any = None, limits: ServingLimits | None = None) -> None:
    c = plan.cluster
    if limits is not None and not isinstance(limits, ServingLimits):
        from muxsim.errors import InputTypeError

        raise InputTypeError(f"limits: expected ServingLimits, got {type(limits).__name__}")
    limits = limits or plan.limits
    if plan.policy is not None:
        from muxsim.policy import POLICIES

        known = POLICIES.get(plan.mode, {})
        if plan.policy not in known:
            raise InputError(f"plan.policy: {shown_value(plan.policy)} is not a {plan.mode} policy "
                             f"(known: {', '.join(known)})")
    from muxsim.gpus import get_gpu

    get_gpu(c.gpu, "plan.cluster.gpu")
    if not (1 <= c.nodes <= MAX_NODES and 1 <= c.gpus_per_node <= MAX_GPUS_PER_NODE):
        raise InputError(f"plan.cluster: nodes must be in [1, {MAX_NODES}] and gpus_per_node in "
                         f"[1, {MAX_GPUS_PER_NODE}], got {c.nodes} and {c.gpus_per_node}")
    seen_gpus: set[tuple[int, int]] = set()
    names: dict[str, tuple[int, Any]] = {}  # name -> (first mesh, model)
    ids: set[str] = set()
    for i, m in enumerate(plan.meshes):
        w = f"plan.meshes[{i}]"
        if m.id in ids:
            raise InputError(f"{w}.id: duplicate mesh id {shown_value(m.id)}")
        ids.add(m.id)
        if not 0 <= m.node < c.nodes:
            raise InputError(f"{w}.node: {shown_value(m.node)} is outside the cluster's {c.nodes} node(s)")
        for g in m.gpus:
            if not 0 <= g < c.gpus_per_node:
                raise InputError(f"{w}.gpus: GPU {shown_value(g)} is outside node {m.node} ({c.gpus_per_node} GPUs)")
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
                raise InputError(f"{wu}.name: {shown_value(u.name)} is placed twice on this mesh")
            here.add(u.name)
            first = names.setdefault(u.name, (i, u.model))
            if first[1] != u.model:
                raise InputError(f"{wu}.model: a replica of {shown_value(u.name)} must run its model, "
                                 f"{first[1]!r} on plan.meshes[{first[0]}]")
            if u.tp != m.size:
                raise InputError(f"{wu}.tp: {shown_value(u.tp)} differs from the mesh size {m.size}")
            for f in ("prefill_sm", "decode_sm"):
                v = getattr(u, f)
                if not MIN_SM_SHARE <= v <= 1:
                    raise InputError(f"{wu}.{f}: must be in [{MIN_SM_SHARE:g}, 1], got {v!r}")
            if not 0 < u.kv_share <= 1:
                raise InputError(f"{wu}.kv_share: must be in (0, 1], got {u.kv_share!r}")
            if not 1 <= u.max_batch <= MAX_BATCH:
                raise InputError(f"{wu}.max_batch: must be in [1, {MAX_BATCH}], got {shown_value(u.max_batch)}")
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
            raise InputError(f"plan: LLM(s) {_names(missing)} of the workload are not placed")
        extra = sorted(set(names) - set(wanted))
        if extra:
            raise InputError(f"plan: LLM(s) {_names(extra)} are not in the workload")
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
    """Read and check a ``plan.json``; bad input raises InputError naming the field."""
    from muxsim.io import read_json

    return plan_from_dict(read_json(path, "plan"))


def as_plan(plan: Any, name: str = "plan") -> Plan:
    """A :class:`Plan` from a Plan (checked), a plan dict or a path to ``plan.json``."""
    from muxsim.errors import InputTypeError

    if isinstance(plan, Plan):
        try:  # built in Python: every field through the same checks as a file's
            d = plan.to_dict()
        except (AttributeError, TypeError):
            raise InputTypeError(f"{name}: a Plan whose cluster, meshes or units are not Cluster, Mesh and "
                                 "Unit objects") from None
        return plan_from_dict(d)
    if isinstance(plan, dict):
        return plan_from_dict(plan)
    if isinstance(plan, str | Path) or hasattr(plan, "__fspath__"):
        return load_plan(plan)
    raise InputTypeError(f"{name}: expected a Plan, a plan dict or a path to plan.json, got {type(plan).__name__}")


def save_plan(plan: Plan, path: str | Path, *, inputs: Any = ()) -> Path:
    """Write ``plan.json`` atomically (whole or not at all; never over ``inputs``)."""
    from muxsim.io import write_json_atomic

    return write_json_atomic(path, plan.to_dict(), inputs=inputs)


def plan_rows(plan: Plan, rates: dict[str, float] | None = None,
              order: list[str] | None = None) -> list[dict[str, Any]]:
    """One row per unit, meshes in plan order and units in ``order`` (the workload's;
    default: the rates' order): mesh, node, gpus, name, model, tp, SM and KV shares,
    batch cap, the estimated throughput (``estimate.throughput_rps``) and, with
    ``rates``, the offered rate (``rate_rps``). A replica shows its even share of both."""
    per_llm = plan.estimate.get("per_llm", {}) if plan.estimate else {}
    per_unit = plan.estimate.get("per_unit", {}) if plan.estimate else {}
    rank = {n: i for i, n in enumerate(order or list(rates or {}))}
    copies: dict[str, int] = {}
    for _, u in plan.units():
        copies[u.name] = copies.get(u.name, 0) + 1
    rows = []
    for m in plan.meshes:
        gpus = f"{m.gpus[0]}-{m.gpus[-1]}" if len(m.gpus) > 1 else str(m.gpus[0])
        for u in sorted(m.units, key=lambda u: rank.get(u.name, len(rank))):
            est = per_unit.get(m.id, {}).get(u.name, per_llm.get(u.name))
            row: dict[str, Any] = {
                "mesh": m.id, "node": m.node, "gpus": gpus, "name": u.name,
                "model": u.model if isinstance(u.model, str) else str(u.model.get("name", "inline")),
                "tp": u.tp, "prefill_sm": u.prefill_sm, "decode_sm": u.decode_sm, "kv_share": u.kv_share,
                "max_batch": u.max_batch, "estimate.throughput_rps": est}
            if rates is not None:
                row["rate_rps"] = rates.get(u.name, float("nan")) / copies[u.name]
            rows.append(row)
    return rows


def plan_table(plan: Plan, rates: dict[str, float] | None = None, order: list[str] | None = None) -> str:
    """A readable table (:func:`plan_rows`), then a summary line. A flex mesh whose decode
    shares sum past 100% is flagged (MPS oversubscription, up to the overload limit)."""
    from muxsim.tables import render

    rows = plan_rows(plan, rates, order)
    over = {m.id for m in plan.meshes if plan.mode == "flex" and sum(u.decode_sm for u in m.units) > 1 + 1e-9}
    for r in rows:
        if r["mesh"] in over:
            r["mesh"] += " *"
    lines = [render(rows)]
    total = plan.estimate.get("throughput_rps") if plan.estimate else None
    gpus_used = sum(m.size for m in plan.meshes if m.units)
    how = plan.algorithm if plan.algorithm == plan.mode else f"{plan.algorithm} ({plan.mode})"
    summary = f"{how}: {len(plan.meshes)} meshes, {gpus_used}/{plan.cluster.total_gpus} {plan.cluster.gpu} GPUs"
    if total is not None:
        summary += f", estimated throughput {total:.2f} req/s"
        if rates is not None:
            summary += f" of {sum(rates.values()):.2f} offered"
    lines.append(summary)
    if over:
        limit = (plan.limits or DEFAULT_LIMITS).overload
        lines.append(f"* decode SM shares on this mesh sum past 100% (MPS oversubscription, limit {limit:.0%})")
    return "\n".join(lines)
