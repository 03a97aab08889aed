"""Turn an assignment (meshes of given sizes, each with its LLMs and estimate) into a Plan."""

from __future__ import annotations

from typing import Any

from muxsim.placement.estimator import UnitEstimate
from muxsim.placement.meshgroups import layout
from muxsim.placement.problem import Problem
from muxsim.plan import Mesh, Plan, Unit


def build_plan(problem: Problem, units: list[UnitEstimate], *, algorithm: str, mode: str,
               policy: str | None = None, limits: Any = None) -> Plan:
    """One mesh per estimate (empty meshes are left out: their GPUs stay unused). An LLM
    in several estimates has replicas: its estimate is their sum, and
    ``estimate.per_unit`` (mesh id -> LLM -> requests/s) gives each replica's. ``policy``
    and ``limits``: what the estimates assumed, recorded in the plan."""
    c = problem.cluster
    units = [u for u in units if u.members]
    places = layout([u.size for u in units], c.nodes, c.gpus_per_node, problem.node_gpus)
    meshes = []
    per_llm: dict[str, float] = {}
    per_place: dict[tuple[int, tuple[int, ...]], dict[str, float]] = {}
    for u, (node, gpus) in zip(units, places):
        out = []
        for k, i in enumerate(u.members):
            m = problem.llms[i]
            out.append(Unit(name=m.name, model=m.model, tp=u.size, prefill_sm=round(u.prefill_sm[k], 2),
                            decode_sm=round(u.decode_sm[k], 2), kv_share=_share(u.kv_share, k),
                            max_batch=int(u.max_batch[k])))
            per_llm[m.name] = per_llm.get(m.name, 0.0) + u.throughput[k]
            per_place.setdefault((node, tuple(sorted(gpus))), {})[m.name] = round(u.throughput[k], 6)
        meshes.append(Mesh(id="", node=node, gpus=gpus, units=tuple(out)))
    order = {m.name: k for k, m in enumerate(problem.llms)}
    per_llm = {name: round(v, 6) for name, v in sorted(per_llm.items(), key=lambda kv: order[kv[0]])}
    estimate: dict[str, object] = {"throughput_rps": round(sum(per_llm.values()), 6), "per_llm": per_llm}
    plan = Plan(cluster=c, meshes=tuple(meshes), algorithm=algorithm, mode=mode, estimate=estimate, policy=policy,
                limits=limits).normalize()
    if sum(len(u.members) for u in units) > len(per_llm):  # replicas
        estimate["per_unit"] = {m.id: per_place[(m.node, m.gpus)] for m in plan.meshes}
    return plan


def _share(shares: tuple[float, ...], k: int) -> float:
    # round down so that the shares of one mesh never sum past 1 after rounding
    return max(1e-6, int(shares[k] * 1e6) / 1e6)
