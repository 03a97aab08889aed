"""The simulator against the executor: :func:`validate`.

Both run the same plan on the same requests (one table from
:func:`muxsim.workload.generate_requests`). The simulator's step costs come from a
profile: the one given, or one measured just before on this machine of every model
of the plan at the plan's SM shares (:mod:`muxsim.profiler`, tiny models on a CPU), so
that the two differ only by what the simulator does not model. The comparison holds,
per LLM and overall, predicted and measured throughput, TTFT p50/p99 and TPOT p50/p99
with the relative difference ``(measured - predicted) / predicted``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

METRICS = (("throughput_rps", None), ("ttft_ms", "p50"), ("ttft_ms", "p99"), ("tpot_ms", "p50"),
           ("tpot_ms", "p99"))
# the profile's grid: what a validation run's models meet, measured in seconds (CPU) or a
# minute or two (GPU)
PROFILE_GRIDS = {
    "cpu": {"prefill_batches": "1,2,4,8", "prefill_seq_lens": "8,16,32,64", "decode_batches": "1,2,4,8,16",
            "decode_seq_lens": "16,32,64,128"},
    "cuda": {"prefill_batches": "1,4,16", "prefill_seq_lens": "64,256,1024", "decode_batches": "1,8,32,128",
             "decode_seq_lens": "64,256,1024"},
}


def plan_sm_grid(plan: Any) -> list[int]:
    """The SM shares (percent) the plan runs its jobs at."""
    shares: set[int] = set()
    for _, u in plan.units():
        shares.update({max(1, round(100 * u.prefill_sm)), max(1, round(100 * u.decode_sm))})
    return sorted(shares)


def measure_profile(plan: Any, device: str, path: Path, *, repeats: int = 5) -> Path:
    """Profile every model of ``plan`` on this machine at its SM shares and at each
    tensor-parallel degree the plan gives it (ranks over gloo on a CPU) into one CSV
    (rows named as the plan names the models)."""
    from dataclasses import replace

    from muxsim.io import dumps_json
    from muxsim.models import resolve_model
    from muxsim.profiler import config as pc
    from muxsim.profiler import runner, schema

    rows: list[Any] = []
    models: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    done: set[tuple[str, int]] = set()
    for _, u in plan.units():
        spec = resolve_model(u.model)
        if (spec.name, u.tp) in done:
            continue
        done.add((spec.name, u.tp))
        models[spec.name] = spec
        grid = {k: pc.parse_ints(v, k) for k, v in PROFILE_GRIDS["cpu" if device == "cpu" else "cuda"].items()}
        arg = dumps_json(u.model, indent=None) if isinstance(u.model, dict) else str(u.model)
        cfg = pc.make_config(arg, device="cpu" if device == "cpu" else "cuda", tp=u.tp, sm_grid=plan_sm_grid(plan), warmup=1, repeats=repeats,
                             extra={"rounds": 1}, **grid)
        result = runner.run_profile(cfg)
        rows += [replace(r, model=spec.name) for r in result.rows]
        meta = result.meta
    schema.write_profile(path, rows, models, meta)
    return path


def compare(predicted: dict[str, Any], measured: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """Predicted vs measured metrics of two results documents."""

    def one(p: dict[str, Any], m: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for key, pct in METRICS:
            a = p[key] if pct is None else p[key][pct]
            b = m[key] if pct is None else m[key][pct]
            rel = (b - a) / a if a not in (None, 0) and b is not None else None
            out[key if pct is None else f"{key}.{pct}"] = {"predicted": a, "measured": b, "rel_diff": rel}
        return out

    return {"per_llm": {n: one(predicted["per_llm"][n], measured["per_llm"][n]) for n in names},
            "aggregate": one(predicted["aggregate"], measured["aggregate"])}


def rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per LLM and metric (then ``total``): the validation table."""
    out = []
    for name, ms in [*doc["per_llm"].items(), ("total", doc["aggregate"])]:
        for metric, v in ms.items():
            rel = v["rel_diff"]
            out.append({"name": name, "metric": metric, "predicted": v["predicted"], "measured": v["measured"],
                        "diff_pct": None if rel is None else 100 * rel})
    return out


def validate(plan: Any, workload: Any, *, seed: int | None = None, profile: str | Path | None = None,
             device: str = "cpu", execute_kw: dict[str, Any] | None = None,
             progress: Any = None) -> dict[str, Any]:
    """Simulate and execute ``plan`` on the same requests; the comparison document, with
    both results under ``simulated`` and ``executed``."""
    from muxsim.costmodel import cost_model
    from muxsim.executor.run import execute
    from muxsim.sim import simulate
    from muxsim.workload import generate_requests

    seed = workload.seed if seed is None else seed
    kw = dict(execute_kw or {})
    config = kw.get("config")
    requests = generate_requests(workload, seed, max_requests=kw.pop("max_requests", 10**6))
    with tempfile.TemporaryDirectory(prefix="muxsim-validate-") as tmp:
        source = str(profile) if profile is not None else f"measured now on this machine ({device})"
        path = Path(profile) if profile is not None else measure_profile(plan, device, Path(tmp) / "profile.csv")
        cost = cost_model(plan.cluster.gpu, profile=path)
        sim = simulate(plan, workload, seed=seed, cost=cost, requests=requests, config=config)
        ex = execute(plan, workload, seed=seed, requests=requests, device=device, progress=progress, cost=cost,
                     **kw)
    names = list(workload.names())
    doc = compare(sim.to_dict(), ex.results.to_dict(), names)
    doc["run"] = {"seed": seed, "profile": source, "status": ex.status, "requests": len(requests),
                  "backend": ex.results.run["backend"], "sm_enforced": False if device == "cpu" else None}
    doc["simulated"] = sim.to_dict()
    doc["executed"] = ex.results.to_dict()
    return doc
