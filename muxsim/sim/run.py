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

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from muxsim.errors import COST_METHODS, InputError, expect_model
from muxsim.limits import MAX_REQUESTS, MAX_SAMPLES, MAX_TOKENS
from muxsim.models import resolve_model
from muxsim.sim.batch import DONE, LLM, WAITING
from muxsim.sim.config import SimConfig
from muxsim.sim.costs import GRID_MAX_CONTEXT, StepCosts
from muxsim.sim.engine import Engine, EventOrder
from muxsim.sim.mesh import Mesh
from muxsim.sim.results import Results, build_results
from muxsim.workload.generate import fit_to_context

REQUEST_COLUMNS = ("arrival_s", "name", "prompt_len", "output_len")


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

            memory = MemoryModel(gpu)
        self.cost = cost
        self.memory = memory
        if hasattr(workload, "models") and hasattr(workload, "cluster"):
            check_plan_workload(plan, workload, overload=self.config.overload_limit)
        else:
            verify_plan(plan, workload=workload if hasattr(workload, "models") else None,
                        overload=self.config.overload_limit)
        self.engine = Engine()
        self.duration_s = float(getattr(workload, "duration_s", 0.0))
        self.scales = [float(s) for s in getattr(getattr(workload, "slo", None), "scales", (1, 2, 4, 8, 16))]

        self.rates = {str(m.name): float(getattr(m, "rate", 0.0) or 0.0) for m in getattr(workload, "models", [])}
        # meshes and LLMs
        self.meshes: list[Mesh] = []
        self.llms: list[LLM] = []
        self.by_name: dict[str, list[LLM]] = {}  # name -> its replicas
        self.mesh_of: list[Mesh] = []
        for m in plan.meshes:
            if not m.units:
                continue
            llms = []
            for i, u in enumerate(m.units):
                spec = resolve_model(u.model)
                llm = LLM(i, u, spec, int(memory.blocks_per_token_block(spec, u.tp)))
                llm.gid = len(self.llms)
                self.llms.append(llm)
                self.by_name.setdefault(u.name, []).append(llm)
                llms.append(llm)
            total = int(memory.kv_blocks_per_gpu([(x.spec, x.tp) for x in llms]))
            if total <= 0:
                raise InputError(f"plan.meshes[{plan.meshes.index(m)}]: no memory left for the KV cache of "
                                 f"{', '.join(x.name for x in llms)} on {gpu}")
            mesh = Mesh(self, m, llms, total, plan.mode)
            self.meshes.append(mesh)
            self.mesh_of.extend([mesh] * len(llms))

        self.outstanding = [0] * len(self.llms)  # per LLM (gid): routed there, not finished
        self._turn: dict[str, int] = {}  # per replicated name: where the next tie-break starts
        # requests
        self._load_requests(requests, truncate, max_requests)
        self.done_count = 0
        self._next_arrival = 0
        self._arrived = 0
        self.samples: dict[str, dict[str, list[float]]] = {
            m.id: {"t": [], "sm": [], "kv": []} for m in self.meshes}
        self._last_sample = 0.0
        self.sample_interval_s = self.config.sample_interval_s
        self._adapt_meshes = [m for m in self.meshes if m.adapt_on]
        self._adapt_asleep: float | None = None  # next adapt time while every adapt mesh is idle
        self._frozen = False  # nothing can change any more (see _stalled)
        self.wall_s = 0.0

    # ---- requests ----------------------------------------------------------------------
    def _load_requests(self, requests: pd.DataFrame, truncate: bool, max_requests: int) -> None:
        df = check_requests(requests, max_requests)
        arrival = df["arrival_s"].to_numpy(dtype=float)
        names = df["name"].astype(str).tolist()
        unknown = sorted(set(names) - set(self.by_name))
        if unknown:
            raise InputError(f"requests.name: LLM(s) {', '.join(unknown)} are not in the plan")
        windows = {n: (reps[0].spec.context_window, reps[0].spec.name) for n, reps in self.by_name.items()}
        df = fit_to_context(df, windows, truncate)
        prompt = df["prompt_len"].to_numpy(dtype=np.int64)
        output = df["output_len"].to_numpy(dtype=np.int64)
        self.names = names
        self.arrival = arrival.tolist()
        self.prompt = [int(x) for x in prompt]
        self.output = [int(x) for x in output]
        self.req_llm = [self.by_name[n][0] for n in names]  # replicas: routed on arrival
        n = len(df)
        self.gen = [0] * n
        self.first = [math.nan] * n
        self.finish = [math.nan] * n
        self.preempt = [0] * n
        self.state = [WAITING] * n
        self.fin_step = [-1] * n
        self.base = [0] * n
        top = int(np.max(prompt + output)) if n else 1
        self.costs = StepCosts(self.cost, top, self.config.cost_grid and top <= GRID_MAX_CONTEXT)

    def unit_rate(self, llm: LLM) -> float:
        """Request rate one unit expects: the LLM's rate over its number of replicas."""
        return self.rates.get(llm.name, 0.0) / len(self.by_name[llm.name])

    def _route(self, rid: int) -> LLM:
        """The replica a request goes to: fewest outstanding, ties in turn."""
        reps = self.by_name[self.names[rid]]
        if len(reps) == 1:
            return reps[0]
        start = self._turn.get(reps[0].name, 0)
        n = len(reps)
        best = min(range(n), key=lambda k: (self.outstanding[reps[(start + k) % n].gid], k))
        pick = (start + best) % n
        self._turn[reps[0].name] = (pick + 1) % n
        return reps[pick]

    def complete(self, rid: int, now: float) -> None:
        self.outstanding[self.req_llm[rid].gid] -= 1
        self.state[rid] = DONE
        self.finish[rid] = now
        self.done_count += 1

    def baseline_ms(self) -> np.ndarray:
        """Per request: latency alone on a dedicated mesh at full SMs (the SLO unit)."""
        n = len(self.prompt)
        out = np.zeros(n)
        if n == 0:
            return out
        prompt = np.asarray(self.prompt)
        output = np.asarray(self.output)
        gids = np.asarray([x.gid for x in self.req_llm])
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
        llm = self.req_llm[rid] = self._route(rid)
        self.outstanding[llm.gid] += 1
        self._arrived += 1
        self._schedule_next_arrival()
        mesh = self.mesh_of[llm.gid]
        mesh.on_arrival(llm, rid)
        if self._adapt_asleep is not None and mesh.adapt_on:
            self._wake_adapt()

    def _schedule_next_arrival(self) -> None:
        i = self._next_arrival
        if i < len(self.arrival):
            self._next_arrival = i + 1
            self.engine.schedule(self.arrival[i], EventOrder.ARRIVAL, self._on_arrival, i)

    def _all_done(self) -> bool:
        return self.done_count == len(self.arrival)

    def _stalled(self) -> bool:
        """Every request has arrived and no job runs on any mesh: until a quota moves,
        nothing can change (a request that never fits waits forever)."""
        return self._arrived == len(self.arrival) and not any(m.jobs for m in self.meshes)

    def _on_adapt(self, _: Any) -> None:
        meshes = self._adapt_meshes
        before = [list(m.pool.quota) for m in meshes]
        for mesh in meshes:
            mesh.adapt()
        nxt = self.engine.now + self.config.adapt_period_s
        if self._all_done() or nxt > self.end_s:
            return
        if self._stalled() and before == [m.pool.quota for m in meshes]:
            # the next round would see what this one saw and move nothing either
            self._frozen = True
            return
        if all(_idle(m) for m in meshes):
            # an adapt round over idle meshes changes nothing: sleep until a request arrives
            self._adapt_asleep = nxt
            return
        self.engine.schedule(nxt, EventOrder.QUOTA_ADAPT, self._on_adapt)

    def _wake_adapt(self) -> None:
        """Schedule the first adapt round at or after now, on the rounds' own clock."""
        t = self._adapt_asleep
        assert t is not None
        self._adapt_asleep = None
        now = self.engine.now
        period = self.config.adapt_period_s
        while t < now:  # the rounds skipped while idle, added up as the rounds themselves would
            t = t + period
            self.engine.processed += 1  # each stands for the event it would have been
        if t <= self.end_s:
            self.engine.schedule(t, EventOrder.QUOTA_ADAPT, self._on_adapt)

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
            full = len(s["t"]) >= MAX_SAMPLES
        if full:
            self._halve_samples()
        nxt = now + self.sample_interval_s
        if self._all_done() or nxt > self.end_s:
            return
        if math.isinf(self.end_s) and self._stalled() and (self._frozen or not self._adapt_meshes):
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
        last_arrival = self.arrival[-1] if self.arrival else 0.0
        self.end_s = max(self.duration_s, last_arrival) + float(self.config.drain_s)
        self._schedule_next_arrival()
        eng = self.engine
        if self._adapt_meshes:
            eng.schedule(self.config.adapt_period_s, EventOrder.QUOTA_ADAPT, self._on_adapt)
        eng.schedule(self.sample_interval_s, EventOrder.SAMPLE, self._on_sample)

    def run(self, progress: Callable[[int, int], None] | None = None) -> Simulation:
        """Run to the end. With ``progress``, the engine runs in slices of simulated time
        (at most 500 of them) and ``progress(finished, total)`` is called after each; the
        events and their order are the same as without."""
        t0 = time.perf_counter()
        self.start()
        if progress is None:
            self.engine.run(until=self.end_s)
        else:  # an unbounded drain: slices as long as for the arrival window, as long as events remain
            last_arrival = self.arrival[-1] if self.arrival else 0.0
            horizon = self.end_s if math.isfinite(self.end_s) else max(self.duration_s, last_arrival)
            t, step = 0.0, max(1.0, horizon / 500)
            while math.isfinite(nxt := self.engine.peek()) and nxt <= self.end_s:
                t = min(max(t + step, nxt), self.end_s)
                self.engine.run(until=t)
                progress(self.done_count, len(self.arrival))
            progress(self.done_count, len(self.arrival))
        self._count_idle_rounds()
        self.wall_s = time.perf_counter() - t0
        return self

    def _count_idle_rounds(self) -> None:
        """Adapt rounds asleep when the run ended count as the events they stand for:
        the rounds up to the first one that finds every request done (or the drain limit)."""
        t = self._adapt_asleep
        if t is None:
            return
        done_at = max(self.finish) if self._all_done() and self.finish else math.inf
        n = 0
        while t <= self.end_s and n < 1_000_000:
            n += 1
            if done_at <= t:
                break
            t = t + self.config.adapt_period_s
        self.engine.processed += n

    def results(self, percentiles: Sequence[float] | None = None) -> Results:
        """The run's results; ``percentiles`` adds to p50, p90 and p99."""
        from muxsim.metrics import percentile_list

        return build_results(self, None if percentiles is None else percentile_list(percentiles))


def _idle(mesh: Mesh) -> bool:
    """No job runs and no request waits, runs or is pending on ``mesh``."""
    return not mesh.jobs and not any(x.waiting or x.run or x.pending for x in mesh.llms)


def check_requests(requests: Any, max_requests: int = MAX_REQUESTS) -> pd.DataFrame:
    """A request table (``arrival_s, name, prompt_len, output_len``) sorted by arrival,
    each field checked; at most ``max_requests`` rows."""
    from muxsim.limits import MAX_TIME_S

    if not isinstance(requests, pd.DataFrame):
        raise InputError("requests: expected a DataFrame with columns " + ", ".join(REQUEST_COLUMNS))
    missing = [c for c in REQUEST_COLUMNS if c not in requests.columns]
    if missing:
        raise InputError(f"requests: missing column(s) {', '.join(missing)}")
    if len(requests) > max_requests:
        raise InputError(f"requests: {len(requests)} requests, more than the limit of {max_requests} "
                         "(raise it with --max-requests)")
    df = requests.sort_values("arrival_s", kind="stable").reset_index(drop=True)
    try:
        arrival = df["arrival_s"].to_numpy(dtype=float)
        prompt = df["prompt_len"].to_numpy(dtype=float)
        output = df["output_len"].to_numpy(dtype=float)
    except (TypeError, ValueError):
        raise InputError("requests: arrival_s, prompt_len and output_len must be numbers") from None
    if len(df) and not (np.all(np.isfinite(arrival)) and arrival.min() >= 0 and arrival.max() <= MAX_TIME_S):
        raise InputError(f"requests.arrival_s: must be finite, >= 0 and <= {MAX_TIME_S:g}")
    for col, x in (("prompt_len", prompt), ("output_len", output)):
        if len(df) and not (np.all(x == np.rint(x)) and x.min() >= 1 and x.max() <= MAX_TOKENS):
            raise InputError(f"requests.{col}: must be whole numbers in [1, {MAX_TOKENS}]")
    return df


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
    :func:`muxsim.plancheck.check_plan_workload`). A request longer than its model's context
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
