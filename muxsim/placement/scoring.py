"""Score plans by simulating them: a short run of the workload, not the evaluation run.

:class:`SimScorer` simulates a plan on a *scoring sample* of the workload and returns
its SLO attainment and throughput. The sample is deliberately not the run a user
evaluates with (``muxsim simulate`` replays ``generate_requests(workload, seed)`` over
the whole duration):

- a generated workload is drawn again with another seed (default: the workload's seed
  plus one) over a shorter horizon (default 60 s);
- a trace workload cannot be drawn again, so its trace is resampled: blocks of
  ``BLOCK_S`` seconds of it, drawn with replacement (seeded), laid end to end up to the
  horizon. Bursts and the mix of models and lengths stay; the order does not.

With the workload's own seed and a horizon covering its duration, the sample is the
evaluation run itself (the trace as it is): an oracle for experiments, not a way to
place.

Meshes interact only through replicas (a request goes to one of its LLM's meshes), so a
plan splits into independent groups of meshes (an LLM's replicas and whatever shares
their meshes); each group is simulated on its own LLMs' requests and remembered, so
candidates that share a group (plans one local-search move apart share most) simulate
it once. The sum over groups is exactly what simulating the whole plan gives, request
for request.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from muxsim.errors import InputError

if TYPE_CHECKING:
    import pandas as pd
from muxsim.metrics import scale_key

BLOCK_S = 10.0  # seconds of trace kept together when a trace is resampled
HORIZON_S = 60.0  # default scoring horizon
DEFAULT_SCALE = 8.0  # SLO scale scored when the workload sets no absolute targets


@dataclass(frozen=True)
class Score:
    """A plan's simulated score: attainment (the objective) and throughput."""

    attainment: float
    throughput_rps: float
    requests: int

    def key(self) -> tuple[float, float]:
        return (round(self.attainment, 9), round(self.throughput_rps, 9))


def scoring_requests(workload: Any, *, seed: int, horizon_s: float, block_s: float = BLOCK_S) -> tuple[pd.DataFrame, float]:
    """The scoring sample (see the module doc) and its arrival window in seconds."""
    import pandas as pd

    from muxsim.workload import generate_requests

    if not (math.isfinite(horizon_s) and horizon_s > 0):
        raise InputError(f"score_horizon_s: must be > 0, got {horizon_s!r}")
    if workload.trace is None:
        window = min(float(horizon_s), float(workload.duration_s))
        short = workload.model_copy(update={"duration_s": window})
        return generate_requests(short, seed=seed), window
    trace = generate_requests(workload)
    duration = float(workload.duration_s)
    window = float(horizon_s)
    if seed == workload.seed and window >= duration:  # the evaluation run itself (an oracle)
        return trace, duration
    blocks = max(1, math.ceil(duration / block_s))
    rng = np.random.default_rng(seed)
    t = trace["arrival_s"].to_numpy()
    which = np.minimum((t // block_s).astype(np.int64), blocks - 1)
    parts = []
    for k, b in enumerate(rng.integers(0, blocks, size=math.ceil(window / block_s))):
        rows = trace[which == b]
        parts.append(rows.assign(arrival_s=rows["arrival_s"].to_numpy() + (k - int(b)) * block_s))
    df = pd.concat(parts, ignore_index=True) if parts else trace.iloc[:0]
    df = df[df["arrival_s"].to_numpy() < window]
    return df.sort_values("arrival_s", kind="stable").reset_index(drop=True), window


def mesh_groups_of(plan: Any) -> list[list[int]]:
    """Indices of the plan's meshes in independent groups: meshes sharing an LLM (by
    name) are in one group. Groups in order of their first mesh."""
    parent = list(range(len(plan.meshes)))

    def find(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    first: dict[str, int] = {}
    for k, m in enumerate(plan.meshes):
        for u in m.units:
            j = first.setdefault(u.name, k)
            parent[find(k)] = find(j)
    groups: dict[int, list[int]] = {}
    for k, m in enumerate(plan.meshes):
        if m.units:
            groups.setdefault(find(k), []).append(k)
    return list(groups.values())


class _Part:
    """What the simulator reads of a workload, for a subset of its LLMs."""

    def __init__(self, workload: Any, names: set[str], duration_s: float, scales: tuple[float, ...]) -> None:
        self.models = [m for m in workload.models if m.name in names]
        self.cluster = workload.cluster
        self.slo = workload.slo.model_copy(update={"scales": scales})
        self.duration_s = duration_s
        self._targets = workload.slo_targets()

    def names(self) -> list[str]:
        return [m.name for m in self.models]

    def slo_targets(self) -> dict[str, Any]:
        return {n: self._targets[n] for n in self.names()}


def has_absolute_targets(workload: Any) -> bool:
    from muxsim.metrics import LATENCIES

    return any(t.get(k) is not None for t in workload.slo_targets().values() for k in LATENCIES)


class SimScorer:
    """Simulated score of plans on one scoring sample of ``workload``: SLO attainment at
    ``scale`` (None: the workload's absolute targets if it sets any, else
    ``DEFAULT_SCALE``) and throughput. Deterministic; remembers every mesh group it
    simulated."""

    def __init__(self, workload: Any, *, seed: int | None = None, horizon_s: float = HORIZON_S,
                 scale: float | None = None, config: Any = None, cost: Any = None, memory: Any = None) -> None:
        from muxsim.sim.config import SimConfig

        self.workload = workload
        self.seed = int(workload.seed) + 1 if seed is None else int(seed)
        self.requests, self.window_s = scoring_requests(workload, seed=self.seed, horizon_s=horizon_s)
        self.absolute = scale is None and has_absolute_targets(workload)
        self.scale = None if self.absolute else float(DEFAULT_SCALE if scale is None else scale)
        self.config = config or SimConfig()
        self.cost = cost
        self.memory = memory
        names = self.requests["name"].astype(str).to_numpy()
        self._rows = {n: np.flatnonzero(names == n) for n in dict.fromkeys(names.tolist())}
        self._groups: dict[tuple[Any, ...], tuple[int, int, int]] = {}
        self.simulated = 0  # mesh groups simulated (cache misses)

    @property
    def objective(self) -> str:
        return "slo.attainment" if self.absolute else f"slo_attainment.{scale_key(self.scale)}"

    def __call__(self, plan: Any) -> Score:
        met = served = 0
        for group in mesh_groups_of(plan):
            meshes = tuple(plan.meshes[k] for k in group)
            sig = (plan.mode, tuple((m.size, tuple(tuple(u.to_dict().items()) for u in m.units)) for m in meshes))
            if sig not in self._groups:
                self._groups[sig] = self._simulate(plan, meshes)
            m, s, _ = self._groups[sig]
            met += m
            served += s
        n = len(self.requests)
        return Score(attainment=met / n if n else 1.0, throughput_rps=served / self.window_s, requests=n)

    def _simulate(self, plan: Any, meshes: tuple[Any, ...]) -> tuple[int, int, int]:
        from dataclasses import replace

        from muxsim.sim.run import Simulation

        names = {u.name for m in meshes for u in m.units}
        rows = np.concatenate([self._rows.get(n, np.zeros(0, dtype=np.int64)) for n in sorted(names)])
        if not len(rows):
            return 0, 0, 0
        reqs = self.requests.iloc[np.sort(rows)].reset_index(drop=True)
        sub = replace(plan, meshes=meshes, estimate={})
        part = _Part(self.workload, names, self.window_s, (self.scale or DEFAULT_SCALE,))
        sim = Simulation(sub, part, reqs, self.seed, cost=self.cost, memory=self.memory, config=self.config)
        agg = sim.run().results().aggregate
        self.simulated += 1
        n = int(agg["requests"])
        att = agg["slo"]["attainment"] if self.absolute else agg["slo_attainment"][scale_key(self.scale)]
        return round(float(att or 0.0) * n), round(float(agg["throughput_rps"]) * self.window_s), n
