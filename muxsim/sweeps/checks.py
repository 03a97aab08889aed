"""What a trial asks for, checked before any trial runs: a bad sweep file stops with one
error naming the field instead of filling the table with failed trials."""

from __future__ import annotations

import hashlib

from muxsim.errors import InputError
from muxsim.sweeps.spec import TrialParams


def _needs(params: TrialParams, field: str, kind: str) -> None:
    if getattr(params.workload, field) is None:
        raise InputError(f"workload.{field}: a {kind} workload needs it")


def file_digest(path: str, what: str) -> str:
    """SHA-256 of a file a trial reads (a regular file of bounded size)."""
    from muxsim.io import read_bytes
    from muxsim.limits import MAX_TABLE_BYTES

    return hashlib.sha256(read_bytes(path, what, limit=MAX_TABLE_BYTES)).hexdigest()


def check_trial(params: TrialParams) -> dict[str, str]:
    """InputError for what no run of ``params`` could take; the digests of the files it
    reads (``{"workload.path": sha256}``)."""
    from muxsim.costmodel.params import check_engine
    from muxsim.gpus import get_gpu
    from muxsim.placement import ALGORITHMS
    from muxsim.placement import _check_options as check_place_options
    from muxsim.sim import SimConfig
    from muxsim.workload import parse_mix

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
        shown = algorithm if len(algorithm) <= 40 else algorithm[:37] + "..."
        raise InputError(f"algorithm: unknown {shown!r} (known: {', '.join(ALGORITHMS)})")
    options = {k: v for k, v in params.place.items() if k not in ("overload", "sim_config")}
    if "sim_config" in params.place:
        raise InputError("place.sim_config: give the simulator's settings under config")
    try:
        check_place_options(algorithm, ALGORITHMS[algorithm], options)
    except InputError as e:
        raise InputError(f"place.{e}") from None
    SimConfig.from_dict(dict(params.config))
    unknown = set(params.cost) - {"engine"}
    if unknown:
        raise InputError(f"cost.{sorted(unknown)[0]}: not a cost option (known: engine)")
    check_engine(params.cost.get("engine"), "cost.engine")
    sim_known = {"truncate", "max_requests", "percentiles"}
    unknown = set(params.simulate) - sim_known
    if unknown:
        raise InputError(f"simulate.{sorted(unknown)[0]}: not an option of simulate (known: {', '.join(sorted(sim_known))})")
    if params.capacity is not None:
        import muxsim

        if "capacity" not in dir(muxsim):
            raise InputError("capacity: this version of muxsim has no capacity search (muxsim.capacity)")
    return files

