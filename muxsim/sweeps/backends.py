"""Where trials run: ``local`` (a process pool on this machine) or ``ray`` (Ray tasks on
a local Ray or a cluster). Both call the same :func:`muxsim.sweeps.run.run_trial` on the
same frozen trials, so they give the same rows (wall times under ``time.`` aside).

A backend calls ``done(trial, row)`` in the driver as each trial finishes, in the order
they finish; a trial whose worker dies is recorded as an error, never lost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from muxsim.errors import InputError
from muxsim.sweeps.run import run_trial
from muxsim.sweeps.trials import Trial

BACKENDS = ("local", "ray")
Done = Callable[[Trial, dict[str, Any]], None]


def _lost(e: BaseException) -> dict[str, Any]:
    return {"status": "error", "error": f"worker failed: {type(e).__name__}: {' '.join(str(e).split())[:500]}"}


def run_local(trials: Sequence[Trial], workers: int, done: Done) -> None:
    """One process per worker (spawned: nothing of the driver's state is shared); with
    one worker, in this process."""
    if workers <= 1:
        for t in trials:
            done(t, run_trial(t.as_dict()))
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(run_trial, t.as_dict()): t for t in trials}
        try:
            for f in as_completed(futures):
                try:
                    row = f.result()
                except Exception as e:  # the worker died (killed, out of memory)
                    row = _lost(e)
                done(futures[f], row)
        except BaseException:
            for f in futures:
                f.cancel()
            raise


def check_ray() -> None:
    """InputError when Ray is not installed (checked before any output is made)."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise InputError("--backend ray: Ray is not installed (pip install 'muxsim-lab[ray]')")


def run_ray(trials: Sequence[Trial], workers: int, done: Done, address: str | None = None) -> None:
    """Ray tasks of one CPU each: on the cluster at ``address`` ("auto" for the one this
    machine belongs to), or on a local Ray of ``workers`` CPUs started for the sweep and
    stopped after it. A Ray already started in this process is used as it is."""
    check_ray()
    import logging

    import ray

    started = False
    if not ray.is_initialized():
        kw: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
        try:
            if address:
                ray.init(address=address, **kw)
            else:
                ray.init(num_cpus=workers, include_dashboard=False, **kw)
        except (ConnectionError, ValueError, RuntimeError) as e:
            raise InputError(f"--address: cannot start or reach Ray ({' '.join(str(e).split())[:300]})") from None
        started = True
    try:
        task = ray.remote(num_cpus=1, max_retries=0)(run_trial)
        pending = {task.remote(t.as_dict()): t for t in trials}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                t = pending.pop(ref)
                try:
                    row = ray.get(ref)
                except Exception as e:  # the task's worker died
                    row = _lost(e)
                done(t, row)
    finally:
        if started:
            ray.shutdown()


def run_backend(backend: str, trials: Sequence[Trial], workers: int, done: Done, address: str | None = None) -> None:
    if backend == "local":
        run_local(trials, workers, done)
    else:
        run_ray(trials, workers, done, address)
