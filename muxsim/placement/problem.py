"""The plain data a placement algorithm sees: LLMs (model, rate, mean lengths) and a cluster.

:func:`problem_from_workload` reads anything shaped like :class:`muxsim.workload.Workload`
(``.cluster``, ``.models`` with ``.name/.model/.rate``, ``mean_prompt_len(name)``,
``mean_output_len(name)``) so the algorithms never depend on how a workload was made.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from muxsim.errors import InputError
from muxsim.models import CATALOG, ModelSpec, resolve_model
from muxsim.plan import Cluster


@dataclass(frozen=True)
class LLM:
    """One LLM to place: its name in the workload, its architecture and its load."""

    name: str
    model: str | dict[str, Any]  # as the plan records it
    spec: ModelSpec
    rate: float  # requests/s
    prompt_len: float  # mean tokens
    output_len: float  # mean tokens

    @property
    def demand(self) -> float:
        """Computation demand used to order the greedy: rate x parameter count."""
        return self.rate * self.spec.param_count()


@dataclass(frozen=True)
class Problem:
    """LLMs to place on a cluster; ``node_gpus`` (one entry per node) limits the GPUs a
    plan may use on each node (default: all of them)."""

    llms: tuple[LLM, ...]
    cluster: Cluster
    node_gpus: tuple[int, ...] | None = None

    @property
    def total_rate(self) -> float:
        return sum(m.rate for m in self.llms)

    @property
    def capacities(self) -> tuple[int, ...]:
        """GPUs usable on each node."""
        c = self.cluster
        return self.node_gpus if self.node_gpus is not None else (c.gpus_per_node,) * c.nodes

    @property
    def usable_gpus(self) -> int:
        return sum(self.capacities)


def gpu_budget(cluster: Cluster, gpus: int | None) -> tuple[int, ...] | None:
    """Node capacities using at most ``gpus`` GPUs: whole nodes first, the rest on the
    next node, none on the nodes after (None: the whole cluster)."""
    if gpus is None:
        return None
    if isinstance(gpus, bool) or not isinstance(gpus, int) or not 1 <= gpus <= cluster.total_gpus:
        raise InputError(f"gpus: must be an integer in 1..{cluster.total_gpus} (the cluster's GPUs), got {gpus!r}")
    g = cluster.gpus_per_node
    full, rest = divmod(gpus, g)
    caps = (g,) * full + ((rest,) if rest else ())
    return caps + (0,) * (cluster.nodes - len(caps))


def _model_field(model: Any, spec: ModelSpec) -> str | dict[str, Any]:
    if isinstance(model, str | dict):
        return model
    if spec.name in CATALOG and CATALOG[spec.name] == spec:
        return spec.name
    return spec.to_dict()


def _mean(workload: Any, attr: str, name: str, default: float) -> float:
    f = getattr(workload, attr, None)
    if f is None:
        return default
    v = float(f(name))
    if not math.isfinite(v) or v <= 0:
        raise InputError(f"models[{name}]: mean length from {attr} must be > 0, got {v!r}")
    return v


def problem_from_workload(workload: Any, gpus: int | None = None) -> Problem:
    """The LLMs and cluster of ``workload`` (mean lengths default to ShareGPT's); with
    ``gpus``, plans may use only that many GPUs (:func:`gpu_budget`)."""
    from muxsim.workload.lengths import SHAREGPT_TARGET_MEANS  # pydantic and scipy: load on use

    c = workload.cluster
    cluster = c if isinstance(c, Cluster) else Cluster(gpu=str(c.gpu), nodes=int(c.nodes),
                                                       gpus_per_node=int(c.gpus_per_node))
    if not workload.models:
        raise InputError("models: the workload has no LLMs to place")
    llms = []
    for i, m in enumerate(workload.models):
        spec = workload.model_spec(m.name) if hasattr(workload, "model_spec") else None
        if spec is None:
            spec = resolve_model(m.model, f"models[{i}].model")
        rate = float(m.rate)
        if not math.isfinite(rate) or rate < 0:
            raise InputError(f"models[{i}].rate: must be >= 0, got {m.rate!r}")
        llms.append(LLM(
            name=m.name, model=_model_field(m.model, spec), spec=spec, rate=rate,
            prompt_len=_mean(workload, "mean_prompt_len", m.name, SHAREGPT_TARGET_MEANS["prompt"]),
            output_len=_mean(workload, "mean_output_len", m.name, SHAREGPT_TARGET_MEANS["output"]),
        ))
    return Problem(llms=tuple(llms), cluster=cluster, node_gpus=gpu_budget(cluster, gpus))
