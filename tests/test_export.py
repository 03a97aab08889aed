"""`muxsim export --to vllm`: the paper's 19-LLM MuxServe plan becomes vllm serve lines
whose numbers are the plan's."""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path

import pytest

from muxsim.gpus import get_gpu
from muxsim.memory import MemoryModel
from muxsim.models import resolve_model
from muxsim.plan import load_plan
from tests.hardening import REPO, cli

PAPER = REPO / "examples" / "paper-19llm-alpha2.1.json"


@pytest.fixture(scope="module")
def plan19(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("export") / "plan.json"
    r = cli("plan", PAPER, "--algorithm", "muxserve", "--out", path, "--format", "json")
    assert r.code == 0, r.err
    return path


def _serve_lines(folder: Path) -> dict[str, dict]:
    """name -> {env, args} of every `vllm serve` line of the node scripts."""
    out = {}
    for script in sorted(folder.glob("node*.sh")):
        for line in script.read_text().splitlines():
            if " vllm serve " not in line:
                continue
            words = shlex.split(line.split(" > ")[0])
            env = dict(w.split("=", 1) for w in words[: words.index("vllm")])
            args = words[words.index("vllm") + 2:]
            opts = dict(zip(args[1::2], args[2::2]))
            out[opts["--served-model-name"]] = {"env": env, "hf": args[0], "opts": opts, "node": script.stem}
    return out


def test_export_19llm_numbers_are_the_plans(plan19: Path, tmp_path: Path) -> None:
    out = tmp_path / "vllm"
    r = cli("export", plan19, "--to", "vllm", "--out", out)
    assert r.code == 0, r.err
    assert "ADBS" in r.out and "not MuxServe" in (out / "README.txt").read_text()
    plan = load_plan(plan19)
    lines = _serve_lines(out)
    assert sorted(lines) == sorted(u.name for _, u in plan.units())  # every unit, once
    memory = MemoryModel(plan.cluster.gpu)
    gib = get_gpu(plan.cluster.gpu).memory_bytes
    router = json.loads((out / "router.json").read_text())["models"]
    for mesh in plan.meshes:
        pairs = [(resolve_model(u.model), u.tp) for u in mesh.units]
        pool = memory.kv_pool_bytes_per_gpu(pairs)
        shares = []
        for u, (spec, tp) in zip(mesh.units, pairs):
            x = lines[u.name]
            assert x["node"] == f"node{mesh.node}"
            assert x["env"]["CUDA_VISIBLE_DEVICES"] == ",".join(map(str, mesh.gpus))
            assert int(x["opts"]["--tensor-parallel-size"]) == u.tp == len(mesh.gpus)
            assert int(x["opts"]["--max-num-seqs"]) == u.max_batch
            assert resolve_model(x["hf"]) == spec and "/" in x["hf"]
            # weights + activation reserve + its KV share of the pool, over the GPU's memory
            want = (spec.weight_bytes_per_gpu(tp) + memory.activation_bytes_per_gpu(spec, tp)
                    + memory.params.processes_per_model * memory.params.process_overhead_gib * 2**30
                    + u.kv_share * pool) / gib
            got = float(x["opts"]["--gpu-memory-utilization"])
            assert want - 0.001 < got <= want + 1e-12
            shares.append(got)
            if plan.mode == "flex" and len(mesh.units) > 1:
                pct = int(x["env"]["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"])
                assert pct == round(100 * max(u.prefill_sm, u.decode_sm))
            else:
                assert "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE" not in x["env"]
            assert router[u.name][0]["port"] == int(x["opts"]["--port"])
        assert sum(shares) <= memory.params.usable_fraction + 1e-9  # never more than the plan gives the mesh
    # the MPS daemon starts on every node with a colocated flex mesh, before its units
    for mesh in plan.meshes:
        text = (out / f"node{mesh.node}.sh").read_text()
        if plan.mode == "flex" and len(mesh.units) > 1:
            assert text.index("nvidia-cuda-mps-control -d") < text.index(f"--served-model-name {mesh.units[0].name} ")
    ports = [(x["node"], x["opts"]["--port"]) for x in lines.values()]
    assert len(set(ports)) == len(ports)
    assert math.isclose(sum(1 for _ in out.glob("node*.sh")), len({m.node for m in plan.meshes if m.units}))


def test_export_refuses_inline_models_and_a_used_folder(tmp_path: Path) -> None:
    plan = {"version": 1, "algorithm": "manual", "mode": "flex",
            "cluster": {"gpu": "a100-80gb", "nodes": 1, "gpus_per_node": 1},
            "meshes": [{"id": "m0", "node": 0, "gpus": [0], "units": [
                {"name": "a", "model": {"layers": 2, "hidden": 64, "heads": 4, "kv_heads": 4, "intermediate": 128,
                                        "vocab": 256}, "tp": 1}]}]}
    p = tmp_path / "plan.json"
    p.write_text(json.dumps(plan))
    r = cli("export", p, "--to", "vllm")
    assert r.code == 2 and r.err.startswith("error: plan.meshes[0].units[0].model:") and r.err.count("\n") == 1
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    r = cli("export", p, "--to", "vllm", "--out", tmp_path / "full")
    assert r.code == 2 and r.err.startswith("error: --out:")
    assert (tmp_path / "full" / "x").read_text() == "x"
