"""The simulator's float fast paths give the same doubles as the numpy paths they replace."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from muxsim.costmodel import AnalyticCostModel
from muxsim.interference import job_inputs, job_inputs_float
from muxsim.models import resolve_model
from muxsim.sim.batch import LLM

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
    assert job_inputs_float(scalar) == tuple(float(x) for x in job_inputs(array))


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


class _PlainAnalytic(AnalyticCostModel):
    """The analytic model seen as any cost model: StepCosts takes its generic paths."""

    def forward_terms(self, *args, **kwargs):
        return super().forward_terms(*args, **kwargs)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(CASES[:3]), SM, st.integers(1, 300), st.integers(0, 400), st.integers(1, 60),
       st.integers(1, 4000), st.integers(1, 6))
def test_step_costs_fast_paths_equal_generic_paths(case, sm, n, mean, steps, tokens, seqs):
    from muxsim.sim.costs import StepCosts
    from muxsim.sim.jobs import DECODE_JOB, Job

    gpu, model, tp = case

    class Unit:
        name = "m"
        max_batch = 512

    Unit.tp = tp
    llm = LLM(0, Unit(), resolve_model(model), 1)
    out = []
    for cost in (AnalyticCostModel(gpu), _PlainAnalytic(gpu)):
        sc = StepCosts(cost, 2048, True)
        job = Job(DECODE_JOB, llm, sm, 0.0, 0.0)
        sc.decode(job, n, n * mean + n // 3, steps)
        pre = sc.prefill(llm, tokens, seqs, tokens * (tokens + 1) // 2, sm)
        if job.kernel < 0.0:  # computed when it co-runs
            job.inputs()
        out.append((pre, job.kernel, job.hbm, [job.cum(s) for s in range(steps + 1)]))
    assert sc._scalar is False
    assert out[0] == out[1]
