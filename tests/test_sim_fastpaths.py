"""The simulator's float fast paths give the same doubles as the numpy paths they replace."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from muxsim.costmodel import AnalyticCostModel
from muxsim.models import resolve_model
from muxsim.sim.batch import LLM
from muxsim.sim.costs import _job_inputs_float
from muxsim.sim.interference import job_inputs

CASES = [("a100-80gb", "llama-7b", 1), ("a100-80gb", "llama-13b", 2), ("h100-80gb", "llama-30b", 4),
         ("a100-80gb", "llama-65b", 8), ("l40s", "llama-7b", 2)]
SM = st.sampled_from([1.0, 0.9, 0.7, 0.6, 0.5, 0.4, 0.35, 0.3, 0.25, 0.1])


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(CASES), SM, st.integers(1, 40000), st.integers(1, 512), st.integers(1, 10**9),
       st.integers(1, 10**7))
def test_scalar_forward_terms_equal_array_path(case, sm, tokens, seqs, pairs, kv):
    gpu, model, tp = case
    cm = AnalyticCostModel(gpu)
    spec = resolve_model(model)
    array = cm.forward_terms(spec, tokens, seqs, pairs, kv, tp, sm)
    scalar = cm.forward_terms_scalar(spec, tokens, seqs, pairs, kv, tp, sm)
    assert scalar == tuple(float(x) for x in array)
    assert _job_inputs_float(scalar) == tuple(float(x) for x in job_inputs(array))


def test_scalar_forward_terms_other_overlap_uses_array_path():
    cm = AnalyticCostModel("a100-80gb").with_params(overlap_p=3.0)
    spec = resolve_model("llama-7b")
    array = cm.forward_terms(spec, 700, 3, 90000, 700, 1, 0.5)
    assert cm.forward_terms_scalar(spec, 700, 3, 90000, 700, 1, 0.5) == tuple(float(x) for x in array)
    assert cm.forward_terms_scalar(spec, 700, 3, 90000, 700, 1, 0.5) != \
        AnalyticCostModel("a100-80gb").forward_terms_scalar(spec, 700, 3, 90000, 700, 1, 0.5)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 5000), min_size=1, max_size=40), st.integers(0, 300), st.integers(1, 70))
def test_blocks_needed_matches_per_request_count(contexts, steps, k):
    class Unit:
        name = "m"
        tp = 1
        max_batch = 64

    llm = LLM(0, Unit(), None, 1)
    llm.steps = steps
    for i, c in enumerate(contexts):
        llm.add(i, c + steps)
    want = sum(-(-(c + steps + k) // 32) - -(-(c + steps) // 32) for c in contexts)
    assert llm.blocks_needed(k) == want
    assert llm.blocks_needed(1) == sum(1 for c in contexts if (c + steps) % 32 == 0)
