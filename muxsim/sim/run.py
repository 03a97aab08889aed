"""``simulate(plan, workload, seed)``: build the meshes, replay the requests, collect results.

The run. Requests arrive until the last arrival (at most ``workload.duration_s`` for a
generated workload); serving goes on after that for at most ``config.drain_s`` so that
requests in flight can finish; whatever is still unfinished then is reported as such
(``finished = False``), never dropped. ``run.sim_duration_s`` is the later of
``duration_s`` and the last completion, and throughput is completed requests over it.

The SLO baseline of a request (what it would see alone on a dedicated mesh at full SMs,
on its unit's own TP degree): one prefill of its prompt at batch 1, then
``output_len - 1`` decode steps at batch 1 with the context growing from prompt + 1.

Replicas (one LLM's name on several meshes): each arriving request goes to the replica
with the fewest requests outstanding (arrived there, not finished), ties taken in turn
starting after the last replica chosen; a replica's share of the rate (for the ADBS
initial KV quotas) is the LLM's rate over its number of replicas
(:mod:`muxsim.policy.routing`, which the executor routes with too).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from muxsim.errors import COST_METHODS, InputError, expect_model
from muxsim.gpus import get_gpu
from muxsim.limits import MAX_REQUESTS, MAX_SAMPLES
from muxsim.models import resolve_model
from muxsim.policy.routing import Router, replica_counts, replica_rate
from muxsim.sim.batch import LLM
from muxsim.sim.config import SimConfig
from muxsim.sim.costs import GRID_MAX_CONTEXT, StepCosts
from muxsim.sim.engine import Engine, EventOrder
from muxsim.sim.mesh import Mesh
from muxsim.sim.requests import REQUEST_COLUMNS, RequestTable, check_requests
from muxsim.sim.results import Results, build_results

_ARRIVAL = int(EventOrder.ARRIVAL)

__all__ = ["REQUEST_COLUMNS", "PlanMismatchWarning", "Simulation", "check_requests", "plan_mismatch", "simulate"]


class PlanMismatchWarning(UserWarning):
    """The simulator runs a plan under another policy or other limits than placement
    estimated it for (its estimate does not hold)."""


def plan_mismatch(plan: Any, config: SimConfig) -> list[str]:
    """What differs between what ``plan`` was placed for and what ``config`` runs."""
    out = []
    runs = config.policy(plan.mode).name
    if plan.policy is not None and plan.policy != runs:
        out.append(f"plan.policy: the plan was placed for the {plan.mode} policy {plan.policy!r}; simulating it "
                   f"with {runs!r}, its estimate does not hold")
    if plan.limits is not None and plan.limits != config.limits:
        diff = [f"{k} {v!r} (simulating {config.limits.to_dict()[k]!r})" for k, v in plan.limits.to_dict().items()
                if config.limits.to_dict()[k] != v]
        out.append(f"plan.limits: the plan was placed for {', '.join(diff)}; its estimate does not hold")
    return out


class Simulation:
    """One simulation; ``run()`` then ``results()``. Tests may drive ``engine.step()``."""

    def __init__(self, plan: Any, workload: Any, requests: pd.DataFrame, seed: int = 0, *,
                 cost: Any = None, memory: Any = None, config: SimConfig | None = None,
                 truncate: bool = False, max_requests: int = MAX_REQUESTS) -> None:
        from muxsim.plan import verify_plan
        from muxsim.plancheck import check_plan_workload

        if config is not None and not isinstance(config, SimConfig):
            raise InputError(f"config: expected a SimConfig, got {type(config).__name__}")
        self.config = config or SimConfig()
        self.plan = plan
        self.workload = workload
        self.seed = seed
        gpu = plan.cluster.gpu
        if cost is None:
            from muxsim.costmodel import cost_model

            cost = cost_model(gpu)
        if memory is None:
            from muxsim.memory import MemoryModel

            memory = MemoryModel(gpu, limits=self.config.limits)
        self.cost = cost
        self.memory = memory
        limits = self.config.limits  # the plan must fit the limits the simulator runs with
        if hasattr(workload, "models") and hasattr(workload, "cluster"):
            check_plan_workload(plan, workload, limits=limits)
        else:
            verify_plan(plan, workload=workload if hasattr(workload, "models") else None, limits=limits)
        self.mismatch = plan_mismatch(plan, self.config)
        for msg in self.mismatch:
            warnings.warn(msg, PlanMismatchWarning, stacklevel=3)
        self.engine = Engine()
        self.gpu = get_gpu(gpu)
        self.duration_s = float(getattr(workload, "duration_s", 0.0))
        self.scales = [float(s) for s in getattr(getattr(workload, "slo", None), "scales", (1, 2, 4, 8, 16))]

        self.rates = {str(m.name): float(getattr(m, "rate", 0.0) or 0.0) for m in getattr(workload, "models", [])}
        copies = replica_counts(u.name for _, u in plan.units())
        windows = {}
        for _, u in plan.units():
            spec = resolve_model(u.model)
            windows[u.name] = (spec.context_window, spec.name)
        self.requests = RequestTable(requests, windows, truncate=truncate, max_requests=max_requests)
        top = self.requests.longest()
        self.costs = StepCosts(self.cost, top, self.config.cost_grid and top <= GRID_MAX_CONTEXT)
        self.policy = self.config.policy(plan.mode)
        # meshes and units
        self.meshes: list[Mesh] = []
        self.llms: list[LLM] = []
        self.by_name: dict[str, list[LLM]] = {}  # name -> its replicas
        self.mesh_of: list[Mesh] = []  # by unit gid
        for m in plan.meshes:
            if not m.units:
                continue
            llms = []
            for i, u in enumerate(m.units):
                spec = resolve_model(u.model)
                rate = replica_rate(self.rates.get(u.name, 0.0), copies[u.name])
                llm = LLM(i, u, spec, int(memory.blocks_per_token_block(spec, u.tp)), rate)
                llm.gid = len(self.llms)
                self.llms.append(llm)
                self.by_name.setdefault(u.name, []).append(llm)
                llms.append(llm)
            total = int(memory.kv_blocks_per_gpu([(x.spec, x.tp) for x in llms]))
            if total <= 0:
                raise InputError(f"plan.meshes[{plan.meshes.index(m)}]: no memory left for the KV cache of "
                                 f"{', '.join(x.name for x in llms)} on {gpu}")
            mesh = Mesh(self, m, llms, total, self.policy)
            self.meshes.append(mesh)
            self.mesh_of.extend([mesh] * len(llms))

        self._router = Router()
        self.req_llm: list[LLM | None] = [None] * len(self.requests)  # the unit each request was routed to
        self._replicas = [self.by_name[n] for n in self.requests.names]  # where each may go
        self._arrival = self.requests.arrival
        self._next_arrival = 0
        self._arrived = 0
        self.samples: dict[str, dict[str, list[float]]] = {
            m.id: {"t": [], "sm": [], "kv": []} for m in self.meshes}
        self._last_sample = 0.0
        self.sample_interval_s = self.config.sample_interval_s
        self._ticking = False
        self._tick_asleep: tuple[float, float] | None = None  # (next tick, period) while every ticking mesh idles
        self._frozen = False  # nothing can change any more (see _stalled)
        self.wall_s = 0.0

    # ---- requests ----------------------------------------------------------------------
    def _route(self, rid: int) -> LLM:
        """The replica a request goes to (:class:`~muxsim.policy.routing.Router`)."""
        reps = self._replicas[rid]
        return reps[self._router.pick(reps[0].name, [x.outstanding for x in reps])]

    def baseline_ms(self) -> np.ndarray:
        """Per request: latency alone on a dedicated mesh at full SMs (the SLO unit), on
        the unit it was routed to (its LLM's first replica if it never arrived)."""
        req = self.requests
        n = len(req)
        out = np.zeros(n)
        if n == 0:
            return out
        prompt = np.asarray(req.prompt)
        output = np.asarray(req.output)
        gids = np.asarray([(x or self.by_name[name][0]).gid for x, name in zip(self.req_llm, req.names)])
        for llm in self.llms:
            sel = np.flatnonzero(gids == llm.gid)
            if not len(sel):
                continue
            p = prompt[sel]
            o = output[sel]
            up, inv = np.unique(p, return_inverse=True)
            upf = up.astype(float)
            pre = np.broadcast_to(self.costs.terms(llm, upf, 1.0, upf * (upf + 1) / 2, upf, 1.0)[0], up.shape)[inv]
            top = int((p + o).max())
            ctx = np.arange(1, top + 1, dtype=float)
            step = np.broadcast_to(self.costs.terms(llm, 1.0, 1.0, ctx, ctx, 1.0)[0], ctx.shape)
            cum = np.concatenate([[0.0], np.cumsum(step)])  # cum[c] = sum of steps at contexts 1..c
            out[sel] = pre + cum[p + o - 1] - cum[p]
        return out

    # ---- events ------------------------------------------------------------------------
    def _on_arrival(self, rid: int) -> None:
        reps = self._replicas[rid]
        llm = self.req_llm[rid] = reps[0] if len(reps) == 1 else self._route(rid)
        llm.outstanding += 1
        self._arrived += 1
        self._schedule_next_arrival()
        self.mesh_of[llm.gid].on_arrival(llm, rid)
        if self._tick_asleep is not None:
            self._wake_ticks()

    def _schedule_next_arrival(self) -> None:
        i = self._next_arrival
        arrival = self._arrival
        if i < len(arrival):
            self._next_arrival = i + 1
            self.engine.schedule(arrival[i], _ARRIVAL, self._on_arrival, i)

    def _all_done(self) -> bool:
        return self.requests.done == len(self.requests)

    def _stalled(self) -> bool:
        """Every request has arrived, no job runs on any mesh and no plan change is under
        way: until a quota moves, nothing can change (a request that never fits waits
        forever)."""
        return (self._arrived == len(self.requests) and not any(m.jobs for m in self.meshes)
                and not self.engine.pending(EventOrder.PLAN_CHANGE))

    def _ticking_meshes(self) -> list[Mesh]:
        return [m for m in self.meshes if m.units and m.scheduler.tick_s is not None]

    def _on_tick(self, period: Any) -> None:
        meshes = self._ticking_meshes()
        before = [list(m.kv.quota) for m in meshes]
        for mesh in meshes:
            mesh.tick()
        nxt = self.engine.now + period
        if self._all_done() or nxt > self.end_s:
            return
        if self._stalled() and before == [list(m.kv.quota) for m in meshes]:
            # the next tick would see what this one saw and move nothing either
            self._frozen = True
            return
        if all(_idle(m) for m in meshes):
            # a tick over idle meshes changes nothing: sleep until a request arrives
            self._tick_asleep = (nxt, period)
            return
        self.engine.schedule(nxt, EventOrder.QUOTA_ADAPT, self._on_tick, period)

    def _wake_ticks(self) -> None:
        """Schedule the first tick at or after now, on the ticks' own clock."""
        assert self._tick_asleep is not None
        t, period = self._tick_asleep
        self._tick_asleep = None
        now = self.engine.now
        while t < now:  # the ticks skipped while idle, added up as the ticks themselves would
            t = t + period
            self.engine.processed += 1  # each stands for the event it would have been
        if t <= self.end_s:
            self.engine.schedule(t, EventOrder.QUOTA_ADAPT, self._on_tick, period)

    def _on_sample(self, _: Any) -> None:
        now = self.engine.now
        interval = now - self._last_sample
        self._last_sample = now
        full = False
        for mesh in self.meshes:
            sm, kv = mesh.sample(interval)
            s = self.samples[mesh.id]
            s["t"].append(round(now, 9))
            s["sm"].append(round(sm, 6))
            s["kv"].append(round(kv, 6))
            full = full or len(s["t"]) >= MAX_SAMPLES
        if full:
            self._halve_samples()
        nxt = now + self.sample_interval_s
        if self._all_done() or nxt > self.end_s:
            return
        if math.isinf(self.end_s) and self._stalled() and (self._frozen or not self._ticking_meshes()):
            return  # an unbounded drain ends when nothing can change any more
        self.engine.schedule(nxt, EventOrder.SAMPLE, self._on_sample)

    def _halve_samples(self) -> None:
        """A long run keeps at most MAX_SAMPLES samples per mesh: merge each pair of
        intervals into one (mean SM share over both, KV in use at the end) and sample
        half as often from now on."""
        for s in self.samples.values():
            sm = s["sm"]
            s["sm"] = [round((a + b) / 2, 6) for a, b in zip(sm[0::2], sm[1::2])]
            s["t"] = s["t"][1::2]
            s["kv"] = s["kv"][1::2]
        self.sample_interval_s *= 2

    def start(self) -> None:
        """Schedule the first events (``run`` does; a test stepping the engine calls it)."""
        arrival = self.requests.arrival
        last_arrival = arrival[-1] if arrival else 0.0
        self.end_s = max(self.duration_s, last_arrival) + float(self.config.drain_s)
        self._schedule_next_arrival()
        eng = self.engine
        self.ensure_ticks()
        eng.schedule(self.sample_interval_s, EventOrder.SAMPLE, self._on_sample)

    def ensure_ticks(self) -> None:
        """One clock for every mesh's periodic work (one configuration: one period),
        started once some mesh's policy has any, and awake (a plan change calls this
        whenever it hands requests to a mesh)."""
        if self._ticking:
            if self._tick_asleep is not None:
                self._wake_ticks()
            return
        ticks = [m.scheduler.tick_s for m in self.meshes if m.units and m.scheduler.tick_s is not None]
        if ticks:
            self._ticking = True
            now = self.engine.now
            self.engine.schedule(now + min(ticks), EventOrder.QUOTA_ADAPT, self._on_tick, min(ticks))

    def change_plan(self, at_s: float, plan: Any, migrate: bool = False) -> None:
        """Switch to ``plan`` at simulated time ``at_s``: units added, removed, moved,
        their shares changed, weights loaded; a moved unit's running requests evicted,
        or with ``migrate`` moved with their KV (:mod:`muxsim.sim.replan`)."""
        from muxsim.sim.replan import change_plan

        change_plan(self, at_s, plan, migrate)

    def run(self, progress: Callable[[int, int], None] | None = None) -> Simulation:
        """Run to the end. With ``progress``, the engine runs in slices of simulated time
        (at most 500 of them) and ``progress(finished, total)`` is called after each; the
        events and their order are the same as without."""
        t0 = time.perf_counter()
        self.start()
        req = self.requests
        if progress is None:
            self.engine.run(until=self.end_s)
        else:  # an unbounded drain: slices as long as for the arrival window, as long as events remain
            last_arrival = req.arrival[-1] if req.arrival else 0.0
            horizon = self.end_s if math.isfinite(self.end_s) else max(self.duration_s, last_arrival)
            t, step = 0.0, max(1.0, horizon / 500)
            while math.isfinite(nxt := self.engine.peek()) and nxt <= self.end_s:
                t = min(max(t + step, nxt), self.end_s)
                self.engine.run(until=t)
                progress(req.done, len(req))
            progress(req.done, len(req))
        self._count_idle_ticks()
        self.wall_s = time.perf_counter() - t0
        return self

    def _count_idle_ticks(self) -> None:
        """Ticks asleep when the run ended count as the events they stand for: the ticks
        up to the first one that finds every request done (or the drain limit)."""
        if self._tick_asleep is None:
            return
        t, period = self._tick_asleep
        done_at = max(self.requests.finish) if self._all_done() and len(self.requests) else math.inf
        n = 0
        while t <= self.end_s and n < 1_000_000:
            n += 1
            if done_at <= t:
                break
            t = t + period
        self.engine.processed += n

    def results(self, percentiles: Sequence[float] | None = None) -> Results:
        """The run's results; ``percentiles`` adds to p50, p90 and p99."""
        from muxsim.metrics import percentile_list

        return build_results(self, None if percentiles is None else percentile_list(percentiles))


def _idle(mesh: Mesh) -> bool:
    """No job runs and no request waits, runs or is pending on ``mesh``."""
    return not mesh.jobs and not any(x.waiting or x.run or x.pending for x in mesh.units)


def simulate(plan: Any, workload: Any, seed: int = 0, *, cost: Any = None, memory: Any = None,
             config: SimConfig | None = None, requests: pd.DataFrame | None = None,
             percentiles: Sequence[float] | None = None, progress: Callable[[int, int], None] | None = None,
             truncate: bool = False, max_requests: int = MAX_REQUESTS) -> Results:
    """Simulate ``plan`` serving ``workload``; deterministic for (inputs, seed).

    ``requests`` (a DataFrame as :func:`muxsim.workload.generate_requests` returns)
    replaces the generated request table. ``plan`` may be a :class:`~muxsim.plan.Plan`,
    a plan dict or a path to ``plan.json``; ``workload`` a
    :class:`~muxsim.workload.Workload` or a path to ``workload.json``. The plan must fit
    the workload (same cluster, every LLM placed with its model; see
    :func:`muxsim.plancheck.check_plan_workload`) and the serving limits of ``config``;
    a plan placed for another policy or other limits than ``config`` runs with a
    :class:`PlanMismatchWarning`. A request longer than its model's context
    window is refused, or cut to fit with ``truncate``. At most ``max_requests``
    requests are generated or replayed. ``percentiles`` (e.g. ``[95, 99.9]``) are
    reported beside the mean, p50, p90 and p99; ``progress(finished, total)`` is called
    as the run goes (see :meth:`Simulation.run`).
    """
    from muxsim.plan import as_plan
    from muxsim.workload import as_workload

    plan = as_plan(plan)
    workload = as_workload(workload)
    expect_model(cost, "cost", COST_METHODS, "a cost model (mx.cost_model(...))")
    expect_model(memory, "memory", ("kv_blocks_per_gpu",), "a memory model (mx.MemoryModel(...))")
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool) or seed < 0:
        raise InputError(f"seed: must be an integer >= 0, got {seed!r}")
    if not isinstance(truncate, bool):
        raise InputError(f"truncate: must be True or False, got {truncate!r}")
    max_requests = check_max_requests(max_requests)
    if requests is None:
        from muxsim.workload import generate_requests

        requests = generate_requests(workload, seed=int(seed), max_requests=max_requests)
    sim = Simulation(plan, workload, requests, int(seed), cost=cost, memory=memory, config=config,
                     truncate=truncate, max_requests=max_requests)
    return sim.run(progress).results(percentiles)


def check_max_requests(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise InputError(f"max_requests: must be an integer >= 1, got {n!r}")
    return int(n)
