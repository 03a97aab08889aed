"""Score plans by simulating them: a short run of the workload, not the evaluation run.

:class:`SimScorer` simulates a plan on a *scoring sample* of the workload and returns
its SLO attainment and throughput. By default (``sample="draw"``) the sample shares no
request with the run a user evaluates with (``muxsim simulate`` replays
``generate_requests(workload, seed)`` over the whole duration, the workload's seed by
default):

- a generated workload is drawn again with another seed (default: the evaluation seed,
  the workload's unless told otherwise, plus one; the evaluation seed itself is refused)
  over a shorter horizon (default 60 s);
- a trace workload is replaced by a fresh draw of what the estimator already reads from
  it: per LLM, Gamma arrivals at the trace's rate with the coefficient of variation of
  its gaps (its burstiness), and lengths drawn from the trace's lengths (seeded). No
  arrival time of the trace is replayed.

Two other samples are explicit choices, labelled as what they are:

- ``"blocks"`` (trace workloads): blocks of ``BLOCK_S`` seconds of the trace itself,
  drawn with replacement (seeded) and laid end to end up to the horizon. It keeps the
  trace's bursts as they were, but it is *in-sample*: the scored requests are requests
  of the evaluation run;
- ``"oracle"``: the evaluation run itself (the workload's seed, the whole duration; the
  trace as it is). An upper bound on what scoring can pick, for experiments; not a way
  to place.

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

SAMPLES = ("draw", "blocks", "oracle")  # scoring samples (see the module doc); the first is the default
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


def scoring_requests(workload: Any, *, seed: int, horizon_s: float, sample: str = SAMPLES[0],
                     block_s: float = BLOCK_S, eval_seed: int | None = None) -> tuple[pd.DataFrame, float]:
    """The scoring sample (see the module doc) and its arrival window in seconds;
    ``eval_seed``: the seed of the evaluation run (default: the workload's)."""
    from muxsim.workload import generate_requests

    if isinstance(horizon_s, bool) or not isinstance(horizon_s, int | float) or not (
            math.isfinite(horizon_s) and horizon_s > 0):
        raise InputError(f"score_horizon_s: must be > 0, got {horizon_s!r}")
    if sample not in SAMPLES:
        raise InputError(f"score_sample: must be one of {', '.join(SAMPLES)}, got {sample!r}")
    evaluated = int(workload.seed) if eval_seed is None else int(eval_seed)
    if sample == "oracle":  # the evaluation run itself
        return generate_requests(workload, seed=evaluated), float(workload.duration_s)
    if seed == evaluated:
        raise InputError(f"score_seed: {seed} is the seed of the evaluation run; choose another, or "
                         "score_sample='oracle' to score on that run (an oracle)")
    if workload.trace is None:
        if sample == "blocks":
            raise InputError("score_sample: 'blocks' resamples a trace; this workload has none")
        window = min(float(horizon_s), float(workload.duration_s))
        short = workload.model_copy(update={"duration_s": window})
        return generate_requests(short, seed=seed), window
    trace = generate_requests(workload)
    from muxsim.limits import MAX_REQUESTS
    from muxsim.workload.generate import check_request_count

    # bounded before drawing: the trace's rate over the horizon
    check_request_count(len(trace) * float(horizon_s) / max(float(workload.duration_s), 1e-9), MAX_REQUESTS,
                        "score_horizon_s x the trace's rate")
    if sample == "draw":
        return _fresh_draw(trace, float(workload.duration_s), seed, float(horizon_s))
    return _blocks(trace, float(workload.duration_s), seed, float(horizon_s), block_s)


def _fresh_draw(trace: pd.DataFrame, duration: float, seed: int, horizon_s: float) -> tuple[pd.DataFrame, float]:
    """Per LLM of ``trace``: Gamma arrivals at its rate with its gaps' coefficient of
    variation, lengths drawn with replacement from its rows; ``horizon_s`` seconds."""
    import pandas as pd

    from muxsim.limits import MAX_ARRIVAL_CV, MIN_ARRIVAL_CV
    from muxsim.workload.arrivals import GammaArrivals, arrival_times

    window = horizon_s
    names = trace["name"].astype(str).to_numpy()
    order = list(dict.fromkeys(names.tolist()))
    streams = np.random.default_rng(seed).spawn(len(order))
    t_all = trace["arrival_s"].to_numpy()
    parts = []
    for name, rng in zip(order, streams):
        rows = np.flatnonzero(names == name)
        t = np.sort(t_all[rows])
        gaps = np.diff(t)
        cv = float(np.std(gaps) / np.mean(gaps)) if gaps.size >= 2 and np.mean(gaps) > 0 else 1.0
        spec = GammaArrivals(cv=float(min(max(cv, MIN_ARRIVAL_CV), MAX_ARRIVAL_CV)))
        times = arrival_times(spec, np.zeros(1), np.array([rows.size / duration]), window, rng)
        pick = rows[rng.integers(0, rows.size, size=times.size)]
        parts.append(pd.DataFrame({"arrival_s": times, "name": name,
                                   "prompt_len": trace["prompt_len"].to_numpy()[pick],
                                   "output_len": trace["output_len"].to_numpy()[pick]}))
    df = pd.concat(parts, ignore_index=True) if parts else trace.iloc[:0]
    return df.sort_values("arrival_s", kind="stable").reset_index(drop=True), window


def _blocks(trace: pd.DataFrame, duration: float, seed: int, window: float,
            block_s: float) -> tuple[pd.DataFrame, float]:
    """Blocks of ``block_s`` seconds of ``trace``, drawn with replacement, end to end."""
    import pandas as pd

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


def _fit(workload: Any, requests: pd.DataFrame) -> pd.DataFrame:
    """Requests past their model's context window cut to fit, quietly: placing is not
    where such requests are refused (simulating the workload is, or cuts them with
    ``--truncate``)."""
    import warnings

    from muxsim.errors import InputWarning
    from muxsim.workload.generate import context_windows, fit_to_context

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InputWarning)
        return fit_to_context(requests, context_windows(workload), truncate=True)


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
                 scale: float | None = None, config: Any = None, cost: Any = None, memory: Any = None,
                 sample: str = SAMPLES[0], eval_seed: int | None = None) -> None:
        from muxsim.limits import MAX_SEED
        from muxsim.sim.config import SimConfig

        self.workload = workload
        for name, v in (("score_seed", seed), ("eval_seed", eval_seed)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_SEED):
                raise InputError(f"{name}: must be an integer in [0, {MAX_SEED}], got {v!r}")
        evaluated = int(workload.seed) if eval_seed is None else int(eval_seed)
        self.sample = sample
        self.seed = evaluated if sample == "oracle" else (
            (evaluated + 1) % (MAX_SEED + 1) if seed is None else int(seed))
        self.requests, self.window_s = scoring_requests(workload, seed=self.seed, horizon_s=horizon_s, sample=sample,
                                                        eval_seed=evaluated)
        self.requests = _fit(workload, self.requests)
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
