"""What a trial asks for, checked before any trial runs: a bad sweep file stops with one
error naming the field instead of filling the table with failed trials."""

from __future__ import annotations

import hashlib
from typing import Any

from muxsim.errors import InputError
from muxsim.sweeps.spec import TrialParams, shown


def _needs(params: TrialParams, field: str, kind: str) -> None:
    if getattr(params.workload, field) is None:
        raise InputError(f"workload.{field}: a {kind} workload needs it")


def file_digest(path: str, what: str) -> str:
    """SHA-256 of a file a trial reads (a regular file of bounded size)."""
    from muxsim.io import read_bytes
    from muxsim.limits import MAX_TABLE_BYTES

    return hashlib.sha256(read_bytes(path, what, limit=MAX_TABLE_BYTES)).hexdigest()


# arguments of simulate that a trial sets itself
RUN_ARGUMENTS = {"plan", "workload", "seed", "cost", "memory", "config", "requests", "progress"}


def keywords(fn: Any) -> set[str]:
    """The keyword arguments ``fn`` takes (a sweep passes its options through to them)."""
    import inspect

    return {n for n, p in inspect.signature(fn).parameters.items()
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


def _known(section: str, options: dict[str, Any], known: set[str]) -> None:
    unknown = sorted(set(options) - known)
    if unknown:
        raise InputError(f"{section}.{shown(unknown[0])}: not an option here (known: {', '.join(sorted(known))})")


def check_trial(params: TrialParams) -> dict[str, str]:
    """InputError for what no run of ``params`` could take; the digests of the files it
    reads (``{"workload.path": sha256}``)."""
    from muxsim import placement
    from muxsim.costmodel import cost_model
    from muxsim.costmodel.params import check_engine
    from muxsim.gpus import get_gpu
    from muxsim.placement import ALGORITHMS, solve_placement
    from muxsim.sim import SimConfig, simulate
    from muxsim.workload import parse_mix

    for section in ("place", "config", "simulate", "cost", "capacity"):
        for key in getattr(params, section) or {}:
            if not key.isidentifier():
                raise InputError(f"{section}.{shown(key)}: not an option name")
    w = params.workload
    files: dict[str, str] = {}
    if w.kind in ("synth", "trace"):
        _needs(params, "mix", w.kind)
        try:
            parse_mix(w.mix)
        except InputError as e:
            raise InputError(f"workload.{e}") from None
        get_gpu(w.gpu, field="workload.gpu")
    if w.kind in ("file", "trace"):
        _needs(params, "path", w.kind)
        files["workload.path"] = file_digest(w.path, "workload.path")
    if w.kind == "trace":
        _needs(params, "rate", w.kind)
    if params.plan is not None:
        if params.algorithm is not None or params.place:
            raise InputError("plan: a trial with a plan places nothing; give algorithm and place options, or plan")
        files["plan"] = file_digest(params.plan, "plan")
        from muxsim.plan import load_plan

        load_plan(params.plan)
    algorithm = params.algorithm or "muxserve"
    if algorithm not in ALGORITHMS:
        name = algorithm if len(algorithm) <= 40 else algorithm[:37] + "..."
        raise InputError(f"algorithm: unknown {name!r} (known: {', '.join(ALGORITHMS)})")
    for key in sorted(set(params.place) & {"workload", "algorithm", "cost", "memory", "sim_config"}):
        raise InputError(f"place.{key}: set by the trial itself (algorithm, workload, cost and config sections)")
    # options of the algorithm itself are checked by placement; other keyword arguments of
    # solve_placement (whatever placement takes besides the algorithm's options) pass through
    options = {k: v for k, v in params.place.items() if k not in keywords(solve_placement)}
    check_place_options = getattr(placement, "_check_options", None)
    if check_place_options is not None:
        try:
            check_place_options(algorithm, ALGORITHMS[algorithm], options)
        except InputError as e:
            raise InputError(f"place.{e}") from None
    SimConfig.from_dict(dict(params.config))
    _known("cost", params.cost, keywords(cost_model) - {"gpu"})
    check_engine(params.cost.get("engine"), "cost.engine")
    for key in ("params", "profile"):
        if isinstance(params.cost.get(key), str):
            files[f"cost.{key}"] = file_digest(params.cost[key], f"cost.{key}")
    _known("simulate", params.simulate, keywords(simulate) - RUN_ARGUMENTS)
    if params.capacity is not None:
        import muxsim

        if "capacity" not in dir(muxsim):
            raise InputError("capacity: this version of muxsim has no capacity search (muxsim.capacity)")
        for key in sorted(set(params.capacity) & {"workload", "algorithm", "cost", "config", "progress"}):
            raise InputError(f"capacity.{key}: set by the trial itself (workload, algorithm, cost and config sections)")
        _known("capacity", params.capacity, keywords(muxsim.capacity) - {"workload", "algorithm", "cost", "config",
                                                                          "progress"})
    return files

