"""Whether a plan carries its load, per LLM and as a whole, by the estimator.

An LLM is *carried* when its estimated throughput (summed over its replicas) reaches its
rate. One that is not is named with its bottleneck, read off the estimate of its most
loaded replica:

- ``memory-bound: KV for N sequences``: its batch is at the cap its KV share allows
  (with ``weights take X% of GPU memory`` when the weights on the mesh take over half);
- ``SM share: decode on X% of the SMs``: it shares the mesh and its decode job runs on
  part of the SMs;
- ``compute-bound: ...``: neither; the mesh is simply too slow for the rate (alone at
  its largest batch, or taking turns / sharing time with the LLMs named).

The plan's verdict is ``meets load`` or ``overloaded: llm-3 (2.24 of 2.30 req/s,
memory-bound: KV for 49 sequences), ...``. A plan that meets its load by the estimator
can still miss SLOs in simulation (bursts, queueing); the verdict is the estimator's.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from muxsim.placement.estimator import Estimator, UnitEstimate

MEETS = "meets load"
_TOL = 1e-6  # relative: plan estimates are rounded to 1e-6 req/s
LISTED = 3  # LLMs named in the one-line verdict, at most


def unit_estimates(est: Estimator, plan: Any) -> list[tuple[Any, UnitEstimate]]:
    """Each mesh of ``plan`` with the estimator's verdict on it, a replica of one of r
    replicas estimated at its LLM's rate / r (as the algorithms do)."""
    p = est.problem
    index = {m.name: i for i, m in enumerate(p.llms)}
    reps: dict[str, int] = {}
    for _, u in plan.units():
        reps[u.name] = reps.get(u.name, 0) + 1
    if any(r > 1 for r in reps.values()):
        est = est.for_problem(replace(p, llms=tuple(replace(m, rate=m.rate / reps.get(m.name, 1))
                                                    for m in p.llms)))
    out = []
    for mesh in plan.meshes:
        members = tuple(index[u.name] for u in mesh.units)
        if not members:
            continue
        if plan.mode == "temporal":
            u = est.temporal(members, mesh.size)
        elif plan.mode == "spatial":
            u = est.dedicated(members[0], mesh.size)
        else:
            u = est.flex(members, mesh.size)
        out.append((mesh, u))
    return out


def verdicts(est: Estimator, plan: Any) -> tuple[str, dict[str, dict[str, Any]]]:
    """(the plan's verdict, per LLM in problem order: ``rate_rps``,
    ``estimate.throughput_rps``, ``estimate.capacity_rps``, ``replicas``, ``carried``,
    ``bottleneck`` (None when carried))."""
    p = est.problem
    per: dict[str, dict[str, Any]] = {}
    worst: dict[str, tuple[float, Any, UnitEstimate, int]] = {}
    for mesh, u in unit_estimates(est, plan):
        for k, i in enumerate(u.members):
            name = p.llms[i].name
            d = per.setdefault(name, {"rate_rps": p.llms[i].rate, "estimate.throughput_rps": 0.0,
                                      "estimate.capacity_rps": 0.0, "replicas": 0})
            d["replicas"] += 1
            if not u.feasible:
                continue
            d["estimate.throughput_rps"] += u.throughput[k]
            d["estimate.capacity_rps"] += u.capacity[k]
            load = u.rates[k] / u.capacity[k] if u.capacity[k] > 0 else float("inf")
            if name not in worst or load > worst[name][0]:
                worst[name] = (load, mesh, u, k)
    out: dict[str, dict[str, Any]] = {}
    short = []
    for m in p.llms:
        d = per.get(m.name, {"rate_rps": m.rate, "estimate.throughput_rps": 0.0, "estimate.capacity_rps": 0.0,
                             "replicas": 0})
        carried = d["estimate.throughput_rps"] >= m.rate * (1 - _TOL) - _TOL
        why = None
        if not carried:
            why = (_bottleneck(est, plan, *worst[m.name][1:]) if m.name in worst
                   else "not placed" if not d["replicas"] else "infeasible mesh")
            short.append(f"{m.name} ({d['estimate.throughput_rps']:.2f} of {m.rate:.2f} req/s, {why})")
        out[m.name] = {**{k: (round(v, 6) if isinstance(v, float) else v) for k, v in d.items()},
                       "carried": carried, "bottleneck": why}
    if not short:
        return MEETS, out
    more = f", and {len(short) - LISTED} more" if len(short) > LISTED else ""
    return "overloaded: " + ", ".join(short[:LISTED]) + more, out


def _bottleneck(est: Estimator, plan: Any, mesh: Any, u: UnitEstimate, k: int) -> str:
    others = [est.problem.llms[i].name for i in u.members if i != u.members[k]]
    if u.max_batch[k] < est.max_batch and u.batch[k] >= u.max_batch[k]:
        why = f"memory-bound: KV for {u.max_batch[k]} sequences"
        share = _weight_share(est, mesh)
        return why + (f", weights take {share:.0%} of GPU memory" if share is not None and share > 0.5 else "")
    if others and plan.mode == "flex" and u.decode_sm[k] < 1.0:
        return f"SM share: decode on {u.decode_sm[k]:.0%} of the SMs"
    if others:
        how = "takes turns with" if plan.mode == "temporal" else "shares the mesh with"
        return f"compute-bound: {how} {', '.join(others)}"
    return f"compute-bound: batch {u.batch[k]} on {u.size} GPU(s)"


def _weight_share(est: Estimator, mesh: Any) -> float | None:
    mem = est.memory
    if not (hasattr(mem, "weight_bytes_per_gpu") and hasattr(mem, "usable_bytes")):
        return None
    w = sum(mem.weight_bytes_per_gpu(u.model, u.tp) for u in mesh.units)
    usable = mem.usable_bytes() if callable(mem.usable_bytes) else mem.usable_bytes
    return w / usable if usable > 0 else None
