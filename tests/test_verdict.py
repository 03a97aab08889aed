"""Verdicts: whether a plan carries each LLM's rate, and if not, what holds it back
(hand-computed on the linear stand-ins), through the library and ``muxsim plan``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from muxsim.placement import MEETS, solve_placement
from tests.test_placement_fakes import LinearCost, TokenMemory, problem

# LinearCost: a prefill costs 10 ms per request, a decode step 20 ms (whatever the batch).
# TokenMemory: 10,000 KV tokens per GPU less 1,000 per 7B of weights.


def test_memory_bound_names_the_sequences_the_kv_holds():
    # 100 + 100 tokens resident per request: (10,000 - 1,000) // 200 = 45 sequences; at
    # batch 45 the LLM serves 45,000 / (45 x 10 + 100 x 20) = 18.37 req/s < 30
    p = problem([30.0], nodes=1, gpus_per_node=1, prompt_len=100, output_len=100)
    res = solve_placement(p, "flex", cost=LinearCost(), memory=TokenMemory())
    d = res.per_llm["llm-0"]
    assert not d["carried"] and d["bottleneck"] == "memory-bound: KV for 45 sequences"
    assert d["estimate.throughput_rps"] == pytest.approx(45_000 / 2450, rel=1e-6)
    assert res.verdict == "overloaded: llm-0 (18.37 of 30.00 req/s, memory-bound: KV for 45 sequences)"
    assert res.status == "feasible"  # the search found a plan; the verdict says it is not enough


def test_compute_bound_when_the_batch_is_full_and_the_kv_is_not():
    # 10 + 10 tokens resident: the KV holds 450, the batch stops at 256:
    # 256,000 / (256 x 10 + 10 x 20) = 92.75 req/s < 200
    p = problem([200.0], nodes=1, gpus_per_node=1, prompt_len=10, output_len=10)
    res = solve_placement(p, "flex", cost=LinearCost(), memory=TokenMemory())
    d = res.per_llm["llm-0"]
    assert d["bottleneck"] == "compute-bound: batch 256 on 1 GPU(s)"
    assert d["estimate.throughput_rps"] == pytest.approx(256_000 / 2760, rel=1e-6)


def test_sm_share_when_colocated_decodes_split_the_sms():
    p = problem([200.0, 200.0], nodes=1, gpus_per_node=1, prompt_len=10, output_len=10)
    res = solve_placement(p, "flex", cost=LinearCost(), memory=TokenMemory(tokens_per_gpu=30_000))
    for d in res.per_llm.values():
        assert not d["carried"] and d["bottleneck"].startswith("SM share: decode on ")
    assert res.verdict.startswith("overloaded: llm-0 (") and ", llm-1 (" in res.verdict


def test_a_plan_that_carries_everything_meets_load():
    p = problem([1.0, 2.0], nodes=1, gpus_per_node=2, prompt_len=10, output_len=10)
    res = solve_placement(p, "spatial", cost=LinearCost(), memory=TokenMemory())
    assert res.verdict == MEETS
    assert all(d["carried"] and d["bottleneck"] is None for d in res.per_llm.values())
    assert list(res.per_llm) == ["llm-0", "llm-1"]


def _workload(tmp_path, rate):
    p = tmp_path / f"wl-{rate}.json"
    p.write_text(json.dumps({"cluster": {"gpu": "a100-80gb", "nodes": 1, "gpus_per_node": 1},
                             "models": [{"name": "chat", "model": "llama-7b", "rate": rate}], "duration_s": 10}))
    return p


def _plan(*args):
    return subprocess.run([sys.executable, "-m", "muxsim.cli.main", "plan", *map(str, args)], capture_output=True,
                          text=True, timeout=300)


def test_plan_command_says_overloaded_and_exits_0(tmp_path):
    wl = _workload(tmp_path, 1000.0)  # no GPU serves 1,000 req/s of a 7B
    r = _plan(wl, "--algorithm", "flex", "--out", tmp_path / "plan.json")
    assert r.returncode == 0, r.stderr
    assert "verdict: overloaded: chat (" in r.stdout and "of 1000.00 req/s" in r.stdout
    j = _plan(wl, "--algorithm", "flex", "--format", "json")
    assert j.returncode == 0, j.stderr
    doc = json.loads(j.stdout)
    assert doc["status"] == "feasible" and doc["success"] is True and doc["message"]
    assert doc["verdict"].startswith("overloaded: chat (") and doc["placement_s"] >= 0
    chat = doc["per_llm"]["chat"]
    assert chat["carried"] is False and chat["rate_rps"] == 1000.0 and chat["bottleneck"]
    assert doc["plan"] == json.loads((tmp_path / "plan.json").read_text())


def test_plan_command_says_meets_load(tmp_path):
    r = _plan(_workload(tmp_path, 0.5), "--algorithm", "spatial")
    assert r.returncode == 0, r.stderr
    assert "verdict: meets load" in r.stdout
