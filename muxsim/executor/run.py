"""Run a plan on real processes: :func:`execute`.

The same plan and workload the simulator takes; requests from
:func:`muxsim.workload.generate_requests` replayed in real time (``speed`` times faster),
tokens really generated (greedy) by the units' workers, each request's TTFT, TPOT and
end-to-end latency timed on the driver's clock, and results in the simulator's schema.
Every mesh's scheduling is its policy's, the simulator's own code
(:mod:`muxsim.executor.driver`).

A run ends ``completed`` (every request finished), ``interrupted`` (Ctrl-C),
``worker_failed: ...`` (a worker died or failed) or ``drain_timeout`` (requests still
unfinished ``drain_s`` after the last arrival); the results gathered until then are
returned either way, with the status in ``run.status``, and every worker is stopped.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from muxsim.executor.driver import Ledger, MeshDriver, UnitInfo, pool_bound
from muxsim.executor.machine import check_fits
from muxsim.executor.worker import WorkerSpec, pool_file
from muxsim.policy.routing import Router, replica_counts, replica_rate
from muxsim.profiler.runner import cpu_threads

STARTUP_TIMEOUT_S = 120.0
POLL_S = 0.02  # longest the driver waits without looking at arrivals and workers
SAMPLE_S = 0.5


@dataclass
class Execution:
    """What :func:`execute` returns: the results and every request's tokens."""

    results: Any  # muxsim.sim.results.Results
    tokens: list[list[int]]  # per request (arrival order): prompt ids then generated ids
    status: str


def prompt_tokens(seed: int, rid: int, length: int, vocab: int) -> list[int]:
    """The prompt of request ``rid``: token ids drawn from ``(seed, rid)``, so a run is
    reproducible and a reference decoder can be fed the same prompt."""
    return np.random.default_rng([seed, rid]).integers(0, vocab, length).tolist()


def weight_seed(seed: int, name: str) -> int:
    """The random weights' seed of LLM ``name`` (the same in every worker and run)."""
    return (zlib.crc32(name.encode()) + seed) % (2**31)


def _config(config: Any) -> Any:
    from muxsim.sim.config import SimConfig

    return config or SimConfig()


def execute(plan: Any, workload: Any, *, seed: int | None = None, speed: float = 1.0, config: Any = None,
            max_requests: int | None = None, backend: str = "local", address: str | None = None,
            device: str = "cpu", drain_s: float = 120.0, startup_timeout_s: float = STARTUP_TIMEOUT_S,
            progress: Callable[[int, int], None] | None = None,
            on_ready: Callable[[int, float], None] | None = None,
            requests: pd.DataFrame | None = None, cost: Any = None) -> Execution:
    """Execute ``plan`` serving ``workload`` (see the module doc). ``progress(done, total)``
    follows the requests; ``on_ready(processes, seconds)`` is called once every worker
    process (every rank of a tensor-parallel worker) is ready. The results cover the requests that arrived. Each request's SLO unit
    (``slo_ms``, its latency alone) is the simulator's, from the cost model ``cost``
    (default: the plan GPU's)."""
    from muxsim.memory import MemoryModel
    from muxsim.models import resolve_model
    from muxsim.sim.run import Simulation
    from muxsim.workload import generate_requests

    seed = workload.seed if seed is None else seed
    if requests is None:
        requests = generate_requests(workload, seed) if max_requests is None else generate_requests(
            workload, seed, max_requests=max_requests)
    memory = MemoryModel(plan.cluster.gpu)
    rates = {m.name: float(m.rate) for m in workload.models}
    copies = replica_counts(u.name for _, u in plan.units())
    longest = requests.assign(n=requests["prompt_len"] + requests["output_len"]).groupby("name")["n"].max()
    specs: list[WorkerSpec] = []
    meshes: list[tuple[Any, list[UnitInfo], int, int]] = []
    tag = f"{time.time_ns()}"
    for m in plan.meshes:
        if not m.units:
            continue
        infos = []
        models = [resolve_model(u.model) for u in m.units]
        devs = tuple("cpu" if device == "cpu" else f"cuda:{g}" for g in m.gpus)  # rank r on the mesh's r-th GPU
        for u, spec in zip(m.units, models):
            part = 1 / plan.cluster.gpus_per_node  # a rank's share of the cores on a CPU: one GPU's
            threads = cpu_threads(part * u.prefill_sm), cpu_threads(part * u.decode_sm)
            wids = []
            for role, th, sm in (("prefill", threads[0], u.prefill_sm), ("decode", threads[1], u.decode_sm)):
                wids.append(len(specs))
                specs.append(WorkerSpec(len(specs), m.id, u.name, role, spec.to_dict(), weight_seed(seed, u.name),
                                        "", 0, spec.head_dim, devs[0], th, max(1, round(100 * sm)),
                                        "float32" if device == "cpu" else spec.dtype, u.tp,
                                        devs[:u.tp] if u.tp > 1 else ()))
            rate = replica_rate(rates.get(u.name, 0.0), copies[u.name])  # as the simulator's replicas
            infos.append(UnitInfo(u, spec.layers, spec.kv_heads_per_gpu(u.tp), rate, *wids))
        total = int(memory.kv_blocks_per_gpu([(s, u.tp) for s, u in zip(models, m.units)]))
        pool = max(1, min(total, pool_bound(infos, {k: int(v) for k, v in longest.items()})))
        meshes.append((m, infos, total, pool))
    pools = {m.id: (pool, infos[0].unit) for m, infos, _, pool in meshes}
    check_fits(plan, specs, pools, backend, address)
    pool_paths = {m.id: _pool_path(tag, m.id) for m, *_ in meshes}
    specs = [_with_pool(s, pool_paths[s.mesh], pools[s.mesh][0]) for s in specs]
    files = sorted({pool_file(s.pool_path, r) for s in specs for r in range(s.tp)} | {s.group for s in specs if s.group})
    vocab = {u.name: resolve_model(u.model).vocab for _, u in plan.units()}
    names = requests["name"].astype(str).tolist()
    prompt = requests["prompt_len"].astype(int).tolist()
    ledger = Ledger(names, [float(a) / speed for a in requests["arrival_s"]], prompt,
                    requests["output_len"].astype(int).tolist(),
                    [prompt_tokens(seed, i, p, vocab[n]) for i, (n, p) in enumerate(zip(names, prompt))])
    be = _backend(backend, specs, address, {m.id: m.node for m, *_ in meshes})
    status = "completed"
    t_start = time.monotonic()
    drivers: list[MeshDriver] = []
    startup = math.nan
    try:
        be.start(startup_timeout_s)
        t0 = time.monotonic()
        startup = t0 - t_start
        if on_ready is not None:
            on_ready(sum(s.tp for s in specs), startup)

        def clock() -> float:
            return time.monotonic() - t0

        counter = iter(range(1 << 62))
        policy = _config(config).policy(plan.mode)  # the simulator's own choice of policy
        route: dict[str, list[tuple[MeshDriver, int]]] = {}  # name -> its replicas (mesh, unit index)
        owner: dict[int, MeshDriver] = {}

        def submit_for(d: MeshDriver) -> Callable[[int, str, int, dict[str, Any]], None]:
            def submit(wid: int, kind: str, job_id: int, payload: dict[str, Any]) -> None:
                owner[job_id] = d
                be.submit(wid, kind, job_id, payload)
            return submit

        for m, infos, total, pool in meshes:
            d = MeshDriver(m.id, infos, policy, total, pool, ledger, clock, counter)
            d.submit = submit_for(d)
            drivers.append(d)
            for i, x in enumerate(infos):
                route.setdefault(x.unit.name, []).append((d, i))
        with _ctrl_c_flag() as stop:
            status = _serve(ledger, drivers, route, owner, be, clock, drain_s, progress, stop)
    except KeyboardInterrupt:
        status = "interrupted"
    except Exception as e:
        from muxsim.executor.local import WorkerFailed

        if not isinstance(e, WorkerFailed):
            raise
        status = f"worker_failed: {e}"
    finally:
        be.stop()
        for p in files:
            _unlink(p)
    wall = time.monotonic() - t_start
    slo_ms = Simulation(plan, workload, requests, seed, cost=cost, config=_config(config)).baseline_ms()
    res = build_results(plan, workload, ledger, drivers, seed, speed, status, wall, be.name, slo_ms)
    res.run.update(config=_config(config).to_dict(), drain_limit_s=drain_s)
    res.run["startup_s"] = startup
    return Execution(res, ledger.tokens[:ledger.arrived], status)


def _serve(ledger: Ledger, drivers: list[MeshDriver], route: dict[str, list[tuple[MeshDriver, int]]],
           owner: dict[int, MeshDriver], be: Any, clock: Callable[[], float], drain_s: float,
           progress: Callable[[int, int], None] | None, stop: list[bool]) -> str:
    n = len(ledger.names)
    nxt = 0
    done = 0
    last_arrival = ledger.arrival[-1] if n else 0.0
    next_sample = 0.0
    router = Router()  # the simulator's routing among replicas
    while done < n:
        if stop[0]:
            return "interrupted"
        now = clock()
        while nxt < n and ledger.arrival[nxt] <= now:
            reps = route[ledger.names[nxt]]
            d, i = reps[router.pick(ledger.names[nxt], [d.outstanding[i] for d, i in reps])]
            d.on_arrival(i, nxt)
            nxt += 1
            ledger.arrived = nxt
        for d in drivers:
            d.tick(now)
        if now >= next_sample:
            for d in drivers:
                d.sample(now)
            next_sample = now + SAMPLE_S
        if now > last_arrival + drain_s:
            return "drain_timeout"
        wait = POLL_S if nxt >= n else min(POLL_S, max(0.0, ledger.arrival[nxt] - now))
        for msg in be.poll(wait):
            _, job_id, tokens, seconds = msg
            owner.pop(job_id).on_done(job_id, tokens, seconds)
        new_done = ledger.done
        if new_done != done and progress is not None:
            progress(new_done, n)
        done = new_done
    return "completed"


@contextlib.contextmanager
def _ctrl_c_flag() -> Iterator[list[bool]]:
    """While serving, Ctrl-C sets a flag the serve loop reads at its next turn (at most
    ``POLL_S`` later) instead of raising KeyboardInterrupt wherever the driver happens to
    be (inside a queue's locks, say); off the main thread, where no handler can be set,
    KeyboardInterrupt is still caught around the run."""
    stop = [False]
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def on_sigint(signum: int, frame: Any) -> None:
        stop[0] = True

    before = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, before)


def _backend(name: str, specs: list[WorkerSpec], address: str | None, nodes: dict[str, int]) -> Any:
    if name == "ray":
        from muxsim.executor.raybackend import RayBackend

        return RayBackend(specs, address, nodes)
    from muxsim.executor.local import LocalBackend

    return LocalBackend(specs)


def _replace(spec: WorkerSpec, **kw: Any) -> WorkerSpec:
    from dataclasses import replace

    return replace(spec, **kw)


def _with_pool(spec: WorkerSpec, path: str, blocks: int) -> WorkerSpec:
    """The mesh's pool (``path``, rank r's ``pool_file(path, r)``) and, for a worker of
    several ranks, their rendezvous file."""
    return _replace(spec, pool_path=path, pool_blocks=blocks, group=f"{path}.w{spec.wid}" if spec.tp > 1 else "")


def _pool_path(tag: str, mesh: str) -> str:
    import os
    import tempfile

    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else tempfile.gettempdir()
    return os.path.join(base, f"muxsim-{os.getpid()}-{tag}-{mesh}.kv")


def _unlink(path: str) -> None:
    import os

    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def job_summary(drivers: list[MeshDriver]) -> dict[str, dict[str, Any]]:
    """Per kind of job: how many, the mean milliseconds of the workers' forward passes
    (``compute_ms``) and from sending a job to its answer (``turnaround_ms``); the
    difference is the executor's dispatch cost, which the simulator does not model."""
    out = {}
    for kind in ("prefill", "decode"):
        n = sum(d.job_stats[kind][0] for d in drivers)
        c = sum(d.job_stats[kind][1] for d in drivers)
        t = sum(d.job_stats[kind][2] for d in drivers)
        out[kind] = {"jobs": n, "compute_ms": 1e3 * c / n if n else None, "turnaround_ms": 1e3 * t / n if n else None}
    return out


def build_results(plan: Any, workload: Any, ledger: Ledger, drivers: list[MeshDriver], seed: int, speed: float,
                  status: str, wall_s: float, backend: str, slo_ms: np.ndarray) -> Any:
    """Results in the simulator's schema (:mod:`muxsim.sim.results`) from the ledger."""
    from muxsim.metrics import PERCENTILES, metrics
    from muxsim.models import resolve_model
    from muxsim.sim.results import FRAME_COLUMNS, Results

    k = ledger.arrived  # the requests that arrived (all of them unless the run was cut short)
    arrival = np.asarray(ledger.arrival[:k], dtype=float)
    first = np.asarray(ledger.first[:k], dtype=float)
    finish = np.asarray(ledger.finish[:k], dtype=float)
    output = np.asarray(ledger.output_len[:k], dtype=np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        tpot = np.where(output > 1, (finish - first) * 1e3 / np.maximum(output - 1, 1), np.nan)
    models = {u.name: resolve_model(u.model).name for _, u in plan.units()}
    df = pd.DataFrame({
        "name": ledger.names[:k], "model": [models[x] for x in ledger.names[:k]], "mesh": ledger.mesh[:k],
        "arrival_s": arrival, "prompt_len": np.asarray(ledger.prompt_len[:k], dtype=np.int64), "output_len": output,
        "first_token_s": first, "finish_s": finish, "ttft_ms": (first - arrival) * 1e3, "tpot_ms": tpot,
        "e2e_ms": (finish - arrival) * 1e3, "slo_ms": np.asarray(slo_ms[:k], dtype=float),
        "finished": np.isfinite(finish), "preemptions": np.asarray(ledger.preemptions[:k], dtype=np.int64),
    }, columns=list(FRAME_COLUMNS))
    window = max(float(workload.duration_s) / speed, float(arrival.max()) if len(arrival) else 0.0)
    scales = [float(s) for s in workload.slo.scales]
    targets = workload.slo_targets()
    target = float(workload.slo.target_attainment)
    agg = metrics(df, window, scales, targets=targets, target_attainment=target)
    rows_of = df.groupby("name", sort=False).indices
    per_llm = {n: metrics(df.iloc[rows_of.get(n, [])], window, scales, targets=targets,
                          target_attainment=float(targets.get(n, {}).get("target_attainment") or target))
               for n in workload.names()}
    util: dict[str, Any] = {"interval_s": SAMPLE_S, "meshes": {}}
    for d in drivers:
        s = d.samples
        util["meshes"][d.id] = {"llms": [u.name for u in d.state.units], "kv_blocks": d.state.kv.total,
                                "mean_sm": float(np.mean(s["sm"])) if s["sm"] else 0.0, **s}
    last = float(np.nanmax(finish)) if np.isfinite(finish).any() else 0.0
    run = {"seed": seed, "algorithm": plan.algorithm, "mode": plan.mode, "status": status, "backend": backend,
           "speed": speed, "sim_duration_s": max(window, last), "arrivals_until_s": float(arrival.max()) if len(
               arrival) else 0.0, "arrival_window_s": window,
           "events": sum(st[0] for d in drivers for st in d.job_stats.values()),  # jobs carried out
           "preemptions": int(sum(d.preemptions for d in drivers)), "unfinished": int(len(df) - agg["completed"]),
           "models": {n: models[n] for n in workload.names() if n in models}, "percentiles": list(PERCENTILES),
           "sm_enforced": False, "jobs": job_summary(drivers), "wall_s": wall_s}
    if not math.isfinite(run["sim_duration_s"]):
        run["sim_duration_s"] = 0.0
    return Results(agg, per_llm, util, run, df)
