"""The estimator's fast searches give exactly what a full scan gives.

``first_meeting`` (first batch meeting a rate) and ``best_up_to`` (best throughput up
to a cap) of :mod:`muxsim.policy.steady` replace vector scans with a few scalar evaluations and a
certificate; the greedy and the local search skip estimates whose rate ceiling cannot
win. Each is compared here, bit for bit, with the plain computation it replaces, on
curves that are monotone (the certificate holds) and on ones that are not (it fails and
the scan decides), and on real problems with the skipping turned off.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from muxsim.placement.estimator import Estimator
from muxsim.placement.muxserve import demand_order, greedy_fill, improve_fill
from muxsim.policy.steady import Curve, best_up_to, first_meeting
from tests.test_placement import workloads
from tests.test_placement_fakes import problem

N = 256
B = np.arange(1, N + 1, dtype=float)


@st.composite
def curves(draw):
    """Three per-batch curves (decode ms, prefill ms, prefill jobs) of some shape."""
    b = np.arange(1, N + 1, dtype=float)
    kind = draw(st.sampled_from(["affine", "roofline", "noisy", "flat"]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if kind == "affine":  # intercept + slope: throughput rises with the batch
        dec = rng.uniform(1, 30) + rng.uniform(0, 0.5) * b
        pre = rng.uniform(0, 20) * b
        ev = b / np.minimum(b, rng.uniform(1, 8))
    elif kind == "roofline":  # max of a memory and a compute term
        dec = np.maximum(rng.uniform(5, 30), rng.uniform(0.01, 0.5) * b) + rng.uniform(0, 3)
        pre = rng.uniform(1, 30) * b + rng.uniform(0, 5)
        ev = b / np.clip(rng.uniform(1, 6), 1, b)
    elif kind == "noisy":  # not monotone: the certificate must fail and the scan decide
        dec = rng.uniform(1, 30, N) * (1 + b / 50)
        pre = rng.uniform(0, 20, N) * b
        ev = rng.uniform(0.1, 1.0, N) * b
    else:  # per-request costs constant: throughput flat, ties everywhere
        dec = 10.0 * b
        pre = 5.0 * b
        ev = b
    return tuple(Curve(np.asarray(c, dtype=float), B) for c in (dec, pre, ev))


def _scan(c, ldec, p_other, stall, dec, pre, ev):
    return 1000.0 * B[:c] / (ldec * dec.arr[:c] + ((p_other + pre.arr[:c]) + stall * ev.arr[:c]))


@settings(max_examples=400, deadline=None)
@given(curves(), st.integers(1, N), st.integers(1, N), st.floats(0.0, 500.0), st.floats(0.0, 300.0),
       st.sampled_from([0.0, 0.5, 3.0]), st.sampled_from(["at", "near", "random", "unreachable"]),
       st.integers(1, N))
def test_first_meeting_is_the_first_batch_a_scan_finds(cur, c, start, ldec, p_other, stall, how, at):
    dec, pre, ev = cur
    tk = _scan(c, ldec, p_other, stall, dec, pre, ev)
    x = min(at, c) - 1
    need = {"at": tk[x], "near": tk[x] * (1 + 1e-13), "random": tk[x] * 0.7 + 1e-3,
            "unreachable": tk.max() * 1.5 + 1.0}[how]
    ok = np.flatnonzero(tk >= need)
    expect = int(ok[0]) + 1 if ok.size else c
    assert first_meeting(c, need, ldec, p_other, stall, dec, pre, ev, min(start, c)) == expect


@settings(max_examples=300, deadline=None)
@given(curves(), st.integers(1, N), st.floats(0.0, 500.0), st.floats(0.0, 300.0), st.sampled_from([0.0, 0.5, 3.0]))
def test_best_up_to_is_the_maximum_a_scan_finds(cur, c, ldec, p_other, stall):
    dec, pre, ev = cur
    # the association of the capacity formula: ((ldec dec + p_other) + pre) + stall ev
    tk = 1000.0 * B[:c] / (ldec * dec.arr[:c] + p_other + pre.arr[:c] + stall * ev.arr[:c])
    assert best_up_to(c, ldec, p_other, stall, dec, pre, ev) == float(np.max(tk))


class _NoSkipping(Estimator):
    """Every estimate's ceiling is infinite, so the searches skip nothing."""

    def ceiling(self, members):
        return float("inf")


def _fills(est, sizes):
    f = greedy_fill(est, demand_order(est), sizes)
    return f, (improve_fill(est, f) if f is not None else None)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workloads(), st.data())
def test_skipping_estimates_changes_no_placement(p, data):
    from muxsim.costmodel import cost_model
    from muxsim.memory import MemoryModel
    from muxsim.placement.meshgroups import mesh_groups

    args = (p, cost_model(p.cluster.gpu), MemoryModel(p.cluster.gpu))
    groups = mesh_groups(p.cluster.nodes, p.cluster.gpus_per_node, max_meshes=max(len(p.llms), p.cluster.nodes),
                         min_largest=1, limit=400)
    sizes = data.draw(st.sampled_from(groups))
    fast, slow = _fills(Estimator(*args), sizes), _fills(_NoSkipping(*args), sizes)
    assert fast == slow


def test_skipping_estimates_changes_no_placement_on_a_crowded_cluster():
    # 10 LLMs on 8 GPUs: most meshes hold several, so both searches skip a lot
    p = problem([40.0 / (i + 1) ** 1.3 for i in range(10)], nodes=1, gpus_per_node=8, prompt_len=161,
                output_len=338)
    from muxsim.costmodel import cost_model
    from muxsim.memory import MemoryModel

    args = (p, cost_model(p.cluster.gpu), MemoryModel(p.cluster.gpu))
    for sizes in [(8,), (4, 4), (4, 2, 2), (2, 2, 2, 2), (4, 2, 1, 1)]:
        fast, slow = Estimator(*args), _NoSkipping(*args)
        assert _fills(fast, sizes) == _fills(slow, sizes)
        assert fast.calls <= slow.calls
