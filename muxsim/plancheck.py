"""A plan against the workload it is run with: the checks ``simulate`` runs before anything.

:func:`check_plan_workload` names the first mismatch (cluster, names, architectures,
TP degrees, the simulator's serving limits); :func:`plan_files`
lists the files a plan reads besides itself (its units' ``config.json`` models), which
no output may replace.
"""

from __future__ import annotations

from typing import Any

from muxsim.errors import InputError
from muxsim.limits import ServingLimits
from muxsim.plan import Plan, shown_value, verify_plan


def check_plan_workload(plan: Plan, workload: Any, *, limits: ServingLimits | None = None) -> None:
    """Raise :class:`InputError` naming the first way ``plan`` does not fit ``workload``:
    a different cluster (GPU, nodes, GPUs per node), an LLM of the workload not placed
    or one placed that it lacks, a unit whose model is not the workload's architecture
    for that name (or whose TP degree it cannot take), or a unit past the serving limits
    (``limits``, the simulator's; else the plan's own, if it records them): decode SM
    shares of a flex mesh summing past the overload limit, a batch cap past the batch
    limit."""
    from muxsim.gpus import get_gpu
    from muxsim.models import check_tp, resolve_model

    wc = workload.cluster
    wl_gpu = get_gpu(str(wc.gpu), "workload.cluster.gpu").name
    pc = plan.cluster
    if (get_gpu(pc.gpu, "plan.cluster.gpu").name, pc.nodes, pc.gpus_per_node) != (wl_gpu, wc.nodes, wc.gpus_per_node):
        raise InputError(f"plan.cluster: {pc.nodes} x {pc.gpus_per_node} {pc.gpu} differs from the workload's "
                         f"cluster ({wc.nodes} x {wc.gpus_per_node} {wl_gpu})")
    verify_plan(plan, workload=workload, limits=limits)
    specs: dict[str, Any] = {}
    for i, m in enumerate(workload.models):
        if hasattr(workload, "model_spec"):
            specs[m.name] = workload.model_spec(m.name)
        else:
            specs[m.name] = resolve_model(m.model, field=f"models[{i}].model")
    for i, mesh in enumerate(plan.meshes):
        for j, u in enumerate(mesh.units):
            where = f"plan.meshes[{i}].units[{j}]"
            spec = resolve_model(u.model, field=f"{where}.model")
            want = specs[u.name]
            if not spec.same_architecture(want):
                shown = u.model if isinstance(u.model, str) else "an inline architecture"
                raise InputError(f"{where}.model: {shown!r} is not the workload's model of {shown_value(u.name)} "
                                 f"({want.name})")
            try:
                check_tp(spec, u.tp)
            except InputError as e:
                raise InputError(f"{where}.{e}") from None


def plan_files(plan: Plan) -> list[tuple[str, str]]:
    """Files a plan reads besides itself: units whose model is a ``config.json`` path."""
    from muxsim.models import catalog_name

    return [(f"plan.meshes[{i}].units[{j}].model", u.model) for i, m in enumerate(plan.meshes)
            for j, u in enumerate(m.units) if isinstance(u.model, str) and catalog_name(u.model) is None]
