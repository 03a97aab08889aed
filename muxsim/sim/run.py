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
initial KV quotas) is the LLM's rate over its number of replicas.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
import pandas as pd

from muxsim.errors import InputError
from muxsim.gpus import get_gpu
from muxsim.models import resolve_model
from muxsim.sim.batch import LLM
from muxsim.sim.config import SimConfig
from muxsim.sim.costs import StepCosts
from muxsim.sim.engine import Engine, EventOrder
from muxsim.sim.mesh import Mesh
from muxsim.sim.requests import REQUEST_COLUMNS, RequestTable
from muxsim.sim.results import Results, build_results

_ARRIVAL = int(EventOrder.ARRIVAL)

__all__ = ["REQUEST_COLUMNS", "PlanMismatchWarning", "Simulation", "plan_mismatch", "simulate"]


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
                 cost: Any = None, memory: Any = None, config: SimConfig | None = None) -> None:
        from muxsim.plan import verify_plan

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
        verify_plan(plan, workload=workload if hasattr(workload, "models") else None)
        wl_gpu = getattr(getattr(workload, "cluster", None), "gpu", None)
        if wl_gpu is not None and str(wl_gpu) != gpu:
            raise InputError(f"plan.cluster.gpu: {gpu!r} differs from the workload's {wl_gpu!r}")
        self.mismatch = plan_mismatch(plan, self.config)
        for msg in self.mismatch:
            warnings.warn(msg, PlanMismatchWarning, stacklevel=3)
        self.engine = Engine()
        self.gpu = get_gpu(gpu)
        self.duration_s = float(getattr(workload, "duration_s", 0.0))
        self.scales = [float(s) for s in getattr(getattr(workload, "slo", None), "scales", (1, 2, 4, 8, 16))]

        self.rates = {str(m.name): float(getattr(m, "rate", 0.0) or 0.0) for m in getattr(workload, "models", [])}
        copies: dict[str, int] = {}
        for _, u in plan.units():
            copies[u.name] = copies.get(u.name, 0) + 1
        self.requests = RequestTable(requests, copies)
        self.costs = StepCosts(self.cost, self.requests.longest(), self.config.cost_grid)
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
                rate = self.rates.get(u.name, 0.0) / copies[u.name]  # a replica's share of the rate
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

        self._turn: dict[str, int] = {}  # per replicated name: where the next tie-break starts
        self.req_llm: list[LLM | None] = [None] * len(self.requests)  # the unit each request was routed to
        self._replicas = [self.by_name[n] for n in self.requests.names]  # where each may go
        self._arrival = self.requests.arrival
        self._next_arrival = 0
        self.samples: dict[str, dict[str, list[float]]] = {
            m.id: {"t": [], "sm": [], "kv": []} for m in self.meshes}
        self._last_sample = 0.0
        self.wall_s = 0.0

    # ---- requests ----------------------------------------------------------------------
    def _route(self, rid: int) -> LLM:
        """The replica a request goes to: fewest outstanding, ties in turn."""
        reps = self._replicas[rid]
        if len(reps) == 1:
            return reps[0]
        start = self._turn.get(reps[0].name, 0)
        n = len(reps)
        best = min(range(n), key=lambda k: (reps[(start + k) % n].outstanding, k))
        pick = (start + best) % n
        self._turn[reps[0].name] = (pick + 1) % n
        return reps[pick]

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
        self._schedule_next_arrival()
        self.mesh_of[llm.gid].on_arrival(llm, rid)

    def _schedule_next_arrival(self) -> None:
        i = self._next_arrival
        arrival = self._arrival
        if i < len(arrival):
            self._next_arrival = i + 1
            self.engine.schedule(arrival[i], _ARRIVAL, self._on_arrival, i)

    def _all_done(self) -> bool:
        return self.requests.done == len(self.requests)

    def _on_tick(self, period: Any) -> None:
        for mesh in self.meshes:
            if mesh.units and mesh.scheduler.tick_s is not None:
                mesh.tick()
        nxt = self.engine.now + period
        if not self._all_done() and nxt <= self.end_s:
            self.engine.schedule(nxt, EventOrder.QUOTA_ADAPT, self._on_tick, period)

    def _on_sample(self, _: Any) -> None:
        now = self.engine.now
        interval = now - self._last_sample
        self._last_sample = now
        for mesh in self.meshes:
            sm, kv = mesh.sample(interval)
            s = self.samples[mesh.id]
            s["t"].append(round(now, 9))
            s["sm"].append(round(sm, 6))
            s["kv"].append(round(kv, 6))
        nxt = now + self.config.sample_interval_s
        if not self._all_done() and nxt <= self.end_s:
            self.engine.schedule(nxt, EventOrder.SAMPLE, self._on_sample)

    def start(self) -> None:
        """Schedule the first events (``run`` does; a test stepping the engine calls it)."""
        arrival = self.requests.arrival
        last_arrival = arrival[-1] if arrival else 0.0
        self.end_s = max(self.duration_s, last_arrival) + float(self.config.drain_s)
        self._schedule_next_arrival()
        eng = self.engine
        self._ticking = False
        self.ensure_ticks()
        eng.schedule(self.config.sample_interval_s, EventOrder.SAMPLE, self._on_sample)

    def ensure_ticks(self) -> None:
        """One clock for every mesh's periodic work (one configuration: one period),
        started once some mesh's policy has any."""
        if self._ticking:
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

    def run(self) -> Simulation:
        t0 = time.perf_counter()
        self.start()
        self.engine.run(until=self.end_s)
        self.wall_s = time.perf_counter() - t0
        return self

    def results(self) -> Results:
        return build_results(self)


def simulate(plan: Any, workload: Any, seed: int = 0, *, cost: Any = None, memory: Any = None,
             config: SimConfig | None = None, requests: pd.DataFrame | None = None) -> Results:
    """Simulate ``plan`` serving ``workload``; deterministic for (inputs, seed).

    ``requests`` (a DataFrame as :func:`muxsim.workload.generate_requests` returns)
    replaces the generated request table. ``plan`` may be a :class:`~muxsim.plan.Plan`,
    a plan dict or a path to ``plan.json``.
    """
    from muxsim.plan import Plan, load_plan, plan_from_dict

    if isinstance(plan, dict):
        plan = plan_from_dict(plan)
    elif not isinstance(plan, Plan):
        plan = load_plan(plan)
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool):
        raise InputError(f"seed: must be an integer, got {seed!r}")
    if requests is None:
        from muxsim.workload import generate_requests

        requests = generate_requests(workload, seed=int(seed))
    sim = Simulation(plan, workload, requests, int(seed), cost=cost, memory=memory, config=config)
    return sim.run().results()
