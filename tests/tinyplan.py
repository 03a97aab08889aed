"""Two tiny colocated models on a CPU: the executor's test case (workload, plan) and the
reference decoder's greedy answers for it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TINY_A = {"name": "tiny-2l-64h", "layers": 2, "hidden": 64, "heads": 4, "kv_heads": 4, "intermediate": 128,
          "vocab": 256, "dtype": "float32"}
TINY_B = {"name": "tiny-2l-32h", "layers": 2, "hidden": 32, "heads": 2, "kv_heads": 2, "intermediate": 64,
          "vocab": 256, "dtype": "float32"}  # head_dim 16 as A: one head-wise pool


def workload(duration_s: float = 3.0, rate_a: float = 4.0, rate_b: float = 2.0, seed: int = 0) -> dict[str, Any]:
    return {"cluster": {"gpu": "cpu", "nodes": 1, "gpus_per_node": 1},
            "models": [{"name": "a", "model": TINY_A, "rate": rate_a, "prompt_len": {"dist": "fixed", "value": 16},
                        "output_len": {"dist": "fixed", "value": 8}},
                       {"name": "b", "model": TINY_B, "rate": rate_b,
                        "prompt_len": {"dist": "uniform", "low": 8, "high": 40},
                        "output_len": {"dist": "uniform", "low": 1, "high": 12}}],
            "arrivals": {"process": "poisson"}, "duration_s": duration_s, "seed": seed}


def plan(mode: str = "flex", gpus_per_node: int = 1, gpus: tuple[int, ...] = (0,)) -> dict[str, Any]:
    units = [{"name": n, "model": m, "tp": 1, "prefill_sm": 0.5, "decode_sm": 0.5, "kv_share": 0.5, "max_batch": 8}
             for n, m in (("a", TINY_A), ("b", TINY_B))]
    return {"version": 1, "algorithm": "manual", "mode": mode,
            "cluster": {"gpu": "cpu", "nodes": 1, "gpus_per_node": gpus_per_node},
            "meshes": [{"id": "m0", "node": 0, "gpus": list(gpus), "units": units}]}


def write_case(folder: Path, **kw: Any) -> tuple[Path, Path]:
    wl, pl = folder / "workload.json", folder / "plan.json"
    wl.write_text(json.dumps(workload(**kw)))
    pl.write_text(json.dumps(plan()))
    return pl, wl


def reference_tokens(plan_path: Path, workload_path: Path, seed: int) -> list[list[int]]:
    """Each request's answer from the reference decoder alone (greedy), same weights."""
    from muxsim_kernels.decoder import Decoder

    import muxsim as mx
    from muxsim.executor import prompt_tokens, weight_seed
    from muxsim.plan import load_plan

    p = load_plan(plan_path)
    wl = mx.load_workload(workload_path)
    reqs = mx.generate_requests(wl, seed)
    decoders = {u.name: Decoder.random(u.model, seed=weight_seed(seed, u.name), num_blocks=64) for _, u in p.units()}
    out = []
    for i, (name, n, m) in enumerate(zip(reqs["name"], reqs["prompt_len"], reqs["output_len"])):
        d = decoders[name]
        ids, logits = d.prefill([prompt_tokens(seed, i, int(n), d.spec.vocab)])
        answer = [int(logits.argmax(-1)[0])]
        while len(answer) < m:
            answer.append(int(d.decode(ids, [answer[-1]]).argmax(-1)[0]))
        d.release(ids[0])
        out.append(answer)
    return out


def replicated_case(folder: Path, duration_s: float = 2.0) -> tuple[Path, Path]:
    """LLM ``a`` on two one-GPU meshes, nearly regular arrivals (Gamma, cv 0.01) far
    apart next to its service time: every request finds both replicas idle."""
    wl = workload(duration_s=duration_s)
    wl["cluster"]["gpus_per_node"] = 2
    wl["models"] = wl["models"][:1]
    wl["arrivals"] = {"process": "gamma", "cv": 0.01}
    p = plan(gpus_per_node=2)
    p["meshes"][0]["units"] = p["meshes"][0]["units"][:1]
    p["meshes"].append({"id": "m1", "node": 0, "gpus": [1], "units": [dict(p["meshes"][0]["units"][0])]})
    return _write(folder, wl, p)


def tp_case(folder: Path, duration_s: float = 1.5) -> tuple[Path, Path]:
    """Both tiny models on one mesh of two GPUs, each a tensor-parallel unit (tp 2)."""
    wl = workload(duration_s=duration_s)
    wl["cluster"]["gpus_per_node"] = 2
    p = plan(gpus_per_node=2, gpus=(0, 1))
    for u in p["meshes"][0]["units"]:
        u["tp"] = 2
    return _write(folder, wl, p)


def _write(folder: Path, wl: dict[str, Any], p: dict[str, Any]) -> tuple[Path, Path]:
    wp, pp = folder / "workload.json", folder / "plan.json"
    wp.write_text(json.dumps(wl))
    pp.write_text(json.dumps(p))
    return pp, wp
