"""The throughput estimator: hand-worked cases on a linear cost model, and properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from muxsim.placement.estimator import DECODE_SM_GRID, Estimator
from tests.test_placement_fakes import LinearCost, TokenMemory, problem


def est_for(rates, **kw):
    mem = kw.pop("memory", TokenMemory())
    cost = kw.pop("cost", LinearCost())
    return Estimator(problem(rates, **kw), cost, mem)


def test_single_llm_smallest_batch_meeting_the_rate():
    # tpt(b) = 1000 b / (10 b + 10 * 20) req/s; rate 20 needs 1000 b >= 20 (10 b + 200): b >= 5
    u = est_for([20.0]).dedicated(0, 1)
    assert u.feasible
    assert u.batch == (5,)
    assert u.throughput == pytest.approx((20.0,))
    assert u.decode_sm == (1.0,) and u.prefill_sm == (1.0,)


def test_throughput_is_capped_at_the_rate_and_batch_by_kv():
    # rate 150 is out of reach: the best batch is the KV cap. 10,000 - 1,000 tokens of pool,
    # a running request holds 10 + 10 tokens on average: 450 requests, capped at 256
    u = est_for([150.0]).dedicated(0, 1)
    assert u.batch == (256,)
    assert u.throughput == pytest.approx((1000 * 256 / (10 * 256 + 200),))
    assert u.throughput[0] < 150.0
    # with a small KV pool the cap binds: 1,000 + 150 tokens -> 7 requests of 20 tokens
    u = est_for([150.0], memory=TokenMemory(tokens_per_gpu=1_150)).dedicated(0, 1)
    assert u.max_batch == (7,)
    assert u.throughput == pytest.approx((1000 * 7 / (70 + 200),))
    # at resident_output 1/2 (answers of one length) a request holds 15 tokens: 10 fit
    e = Estimator(problem([150.0]), LinearCost(), TokenMemory(tokens_per_gpu=1_150), resident_output=0.5)
    assert e.dedicated(0, 1).max_batch == (10,)


def _stalled_cycle(batches, rates, step=20.0, prefill=10.0, lout=10.0):
    """The linear model's cycle by hand: decodes of ``step`` ms (concurrent, no
    interference), prefills of ``prefill`` ms a request in jobs of 1 + rate * step / 1000
    requests, each job stalling the decode jobs (n/(n+1) - 1/2) of a step."""
    n = len(batches)
    stall = (n / (n + 1) - 0.5) * step if n > 1 else 0.0
    return lout * step + sum(prefill * b + stall * b / (1 + r * step / 1000) for b, r in zip(batches, rates))


def test_two_colocated_llms_prefill_serially_decode_concurrently():
    # alone each needs b = 3 (1000 b >= 10 (10 b + 200) -> b >= 2.22); together every cycle
    # holds both prefills and their stalls: tpt = 1000 * 3 / 276.7 = 10.84 >= 10, both served
    u = est_for([10.0, 10.0]).flex((0, 1), 1)
    assert u.feasible
    assert u.batch == (3, 3)
    assert 1000 * 3 / _stalled_cycle([3, 3], [10, 10]) == pytest.approx(10.84, abs=0.01)
    assert u.throughput == pytest.approx((10.0, 10.0))
    # pool 10,000 - 2 x 1,000 tokens, half each: 4,000 / 20 = 200 requests at most
    assert u.max_batch == (200, 200)
    assert u.capacity[0] == pytest.approx(1000 * 200 / _stalled_cycle([200, 3], [10, 10]))
    # 0.3 meets each rate; the idle 40% goes 0.1 at a time to the more loaded (a tie: first)
    assert u.decode_sm == (0.5, 0.5)
    assert u.kv_share == pytest.approx((0.5, 0.5))


def test_backlogged_llm_fills_its_batch_to_the_kv_cap():
    # llm-0 at 95 req/s cannot be served next to llm-1: the scheduler admits whatever fits,
    # so its batch is its KV cap; llm-1 (1 req/s) settles at the smallest batch that meets
    # its rate in the cycle llm-0's full batch makes (MuxServe's estimator would instead
    # choose the batches that maximize the total)
    u = est_for([95.0, 1.0]).flex((0, 1), 1)
    b0, b1 = u.batch
    assert b0 == u.max_batch[0] == 256
    assert u.throughput[0] == pytest.approx(1000 * 256 / _stalled_cycle([256, b1], [95, 1]))
    assert u.throughput[0] < 95.0
    assert 1000 * b1 / _stalled_cycle([256, b1], [95, 1]) >= 1.0
    assert 1000 * (b1 - 1) / _stalled_cycle([256, b1 - 1], [95, 1]) < 1.0
    assert u.throughput[1] == pytest.approx(1.0)


def test_kv_split_follows_rate_times_kv_bytes():
    e = est_for([3.0, 1.0], models=["llama-7b", "llama-13b"])
    u = e.flex((0, 1), 2)
    w7 = 3.0 * e.problem.llms[0].spec.kv_bytes_per_token(2)
    w13 = 1.0 * e.problem.llms[1].spec.kv_bytes_per_token(2)
    assert u.kv_share == pytest.approx((w7 / (w7 + w13), w13 / (w7 + w13)))


def test_overload_limit_on_decode_shares():
    e = est_for([0.1] * 5)
    assert e.flex((0, 1, 2, 3), 1).feasible  # 4 x 0.3 = 1.2
    u = e.flex((0, 1, 2, 3, 4), 1)  # 5 x 0.3 = 1.5 > 1.2
    assert not u.feasible and "decode jobs" in u.reason


def test_shares_drop_where_cheapest_when_past_the_overload():
    # two hot LLMs each want 0.9 alone (the best, none meets its rate): 1.8 > 1.2
    u = est_for([500.0, 500.0]).flex((0, 1), 1)
    assert u.feasible
    assert sum(u.decode_sm) <= 1.2 + 1e-9
    assert all(d in DECODE_SM_GRID for d in u.decode_sm)


def test_weights_that_do_not_fit_make_the_unit_infeasible():
    e = est_for([1.0], memory=TokenMemory(tokens_per_gpu=900))
    u = e.dedicated(0, 1)
    assert not u.feasible and "memory" in u.reason
    assert e.min_size(0, (1, 2, 4)) == 2  # 900 - 500 leaves a pool on 2 GPUs


def test_tp_must_divide_heads():
    e = est_for([1.0], model="llama-30b", gpus_per_node=8)  # 52 heads
    assert not e.dedicated(0, 8).feasible
    assert e.dedicated(0, 4).feasible


def test_temporal_turns_share_time():
    # each holds 200 requests (half of 10,000 - 2 x 1,000 tokens, 20 a request) and alone
    # reaches 1000*200/(2000+200) = 90.9 req/s; rates 60 + 60 need 1.32 of the time
    u = est_for([60.0, 60.0]).temporal((0, 1), 1)
    cap = 1000 * 200 / 2200
    need = 2 * 60.0 / cap
    assert u.throughput == pytest.approx((60.0 / need, 60.0 / need))


def test_estimates_are_memoized():
    e = est_for([1.0, 2.0])
    a = e.flex((1, 0), 1)
    calls = e.calls
    assert e.flex((0, 1), 1) is a
    assert e.calls == calls


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0.05, 80.0), min_size=1, max_size=4), st.sampled_from([1, 2]))
def test_unit_throughput_never_exceeds_rates_nor_capacity(rates, size):
    e = est_for(rates)
    u = e.flex(tuple(range(len(rates))), size)
    if not u.feasible:
        assert len(rates) * 0.3 > 1.2 + 1e-9
        return
    for r, t, c in zip(rates, u.throughput, u.capacity):
        assert 0 <= t <= r + 1e-9
        assert t <= c + 1e-9
    assert sum(u.kv_share) == pytest.approx(1.0)
    assert sum(u.decode_sm) <= 1.2 + 1e-9
    assert all(1 <= b <= m for b, m in zip(u.batch, u.max_batch))
