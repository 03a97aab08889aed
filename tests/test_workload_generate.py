"""generate_requests: rates, burstiness, lengths, schedules and determinism.

Statistical checks use 5-sigma tolerances computed from the spec (6 for the count of
a bursty renewal process, whose tails are heavier), so a correct generator fails them
with probability below one in a million per example; hypothesis runs them derandomized
so CI sees the same examples every time.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from muxsim.errors import InputError
from muxsim.workload import Workload, generate_requests
from muxsim.workload import lengths as L
from muxsim.workload.arrivals import arrival_times


def workload(models, duration=200.0, arrivals=None, seed=0) -> Workload:
    entries = []
    for i, m in enumerate(models):
        entries.append({"name": f"m{i}", "model": "llama-7b", **m})
    return Workload.from_dict({
        "cluster": {"gpu": "a100-80gb", "nodes": 1, "gpus_per_node": 8},
        "models": entries,
        "arrivals": arrivals or {"process": "poisson"},
        "duration_s": duration,
        "seed": seed,
    })


def test_table_shape_and_types():
    wl = workload([{"rate": 5.0}, {"rate": 2.0, "output_len": {"dist": "fixed", "value": 7}}], duration=50)
    df = generate_requests(wl, seed=3)
    assert list(df.columns) == ["arrival_s", "name", "prompt_len", "output_len"]
    assert df["arrival_s"].dtype == np.float64
    assert df["prompt_len"].dtype == np.int64 and df["output_len"].dtype == np.int64
    assert df.index.equals(pd.RangeIndex(len(df)))
    assert df["arrival_s"].is_monotonic_increasing
    assert df["arrival_s"].min() >= 0 and df["arrival_s"].max() < 50
    assert set(df["name"]) == {"m0", "m1"} and all(isinstance(n, str) for n in df["name"].head())
    assert (df.loc[df["name"] == "m1", "output_len"] == 7).all()
    assert (df["prompt_len"] >= 1).all() and (df["output_len"] >= 1).all()


@settings(max_examples=25, deadline=None, derandomize=True)
@given(rate=st.floats(0.5, 200.0), duration=st.floats(20.0, 300.0), seed=st.integers(0, 2**32 - 1))
def test_poisson_rate_matches_spec(rate, duration, seed):
    wl = workload([{"rate": rate, "prompt_len": {"dist": "fixed", "value": 1},
                    "output_len": {"dist": "fixed", "value": 1}}], duration=duration)
    n = len(generate_requests(wl, seed=seed))
    expected = rate * duration
    assert abs(n - expected) <= 5 * math.sqrt(expected) + 2


@settings(max_examples=15, deadline=None, derandomize=True)
@given(cv=st.floats(0.3, 4.0), seed=st.integers(0, 2**32 - 1))
def test_gamma_gaps_have_the_requested_cv_and_rate(cv, seed):
    rate, duration = 100.0, 300.0
    wl = workload([{"rate": rate, "prompt_len": {"dist": "fixed", "value": 1},
                    "output_len": {"dist": "fixed", "value": 1}}],
                  duration=duration, arrivals={"process": "gamma", "cv": cv})
    t = generate_requests(wl, seed=seed)["arrival_s"].to_numpy()
    n = t.size
    # count of a renewal process: mean rate*T, variance ~ rate*T*cv^2
    assert abs(n - rate * duration) <= 6 * cv * math.sqrt(rate * duration) + 5
    gaps = np.diff(t)
    sample_cv = gaps.std() / gaps.mean()
    # relative s.d. of a sample cv ~ sqrt((excess kurtosis + 2) / n) / 2, Gamma's kurtosis 6 cv^2
    tol = 5 * math.sqrt((6 * cv**2 + 2) / n) / 2 + 0.01
    assert abs(sample_cv / cv - 1) <= tol


def test_poisson_gaps_have_cv_one():
    wl = workload([{"rate": 200.0}], duration=200)
    gaps = np.diff(generate_requests(wl, seed=1)["arrival_s"].to_numpy())
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.03)


def test_same_seed_same_table_different_seed_different_table():
    wl = workload([{"rate": 20.0}, {"rate": 3.0, "prompt_len": {"dist": "uniform", "low": 5, "high": 50}}],
                  arrivals={"process": "gamma", "cv": 2.0})
    a, b = generate_requests(wl, seed=11), generate_requests(wl, seed=11)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    c = generate_requests(wl, seed=12)
    assert len(a) != len(c) or not np.array_equal(a["arrival_s"].to_numpy(), c["arrival_s"].to_numpy())
    # seed None is the workload's seed; a Generator may be passed in instead
    pd.testing.assert_frame_equal(generate_requests(wl), generate_requests(wl, seed=wl.seed), check_exact=True)
    pd.testing.assert_frame_equal(generate_requests(wl, seed=np.random.default_rng(11)), a, check_exact=True)


def test_generation_leaves_global_numpy_state_alone():
    np.random.seed(123)  # noqa: NPY002 - the legacy global state is what must stay untouched
    before = np.random.get_state()[1].copy()  # noqa: NPY002
    generate_requests(workload([{"rate": 5.0}]), seed=0)
    assert np.array_equal(np.random.get_state()[1], before)  # noqa: NPY002


def test_adding_a_model_keeps_earlier_models_requests():
    one = generate_requests(workload([{"rate": 4.0}]), seed=5)
    two = generate_requests(workload([{"rate": 4.0}, {"rate": 9.0}]), seed=5)
    mine = two[two["name"] == "m0"].reset_index(drop=True)
    pd.testing.assert_frame_equal(one, mine, check_exact=True)


def test_bad_seed_is_refused():
    wl = workload([{"rate": 1.0}])
    for bad in (-1, 1.5, "x", True):
        with pytest.raises(InputError, match=r"^seed: must be an integer >= 0"):
            generate_requests(wl, seed=bad)


def test_simultaneous_arrivals_keep_model_order():
    # a one-window schedule mapped to the same times for two identical streams cannot be
    # forced through the RNG, so check the sort itself: stable, ties in model order
    wl = workload([{"rate": 50.0, "prompt_len": {"dist": "fixed", "value": 3}},
                   {"rate": 50.0, "prompt_len": {"dist": "fixed", "value": 4}}], duration=20)
    df = generate_requests(wl, seed=0)
    t = df["arrival_s"].to_numpy()
    assert np.all(np.diff(t) >= 0)
    codes = (df["name"] == "m1").to_numpy().astype(int)
    same = np.diff(t) == 0
    assert np.all(codes[:-1][same] <= codes[1:][same])


# ---- lengths -----------------------------------------------------------------------------
def _check_mean(spec: dict, role: str = "prompt", n: int = 40_000, seed: int = 0):
    s = Workload.from_dict({
        "cluster": {"gpu": "a100-80gb"}, "duration_s": 1.0,
        "models": [{"name": "a", "model": "llama-7b", "rate": 1.0, f"{role}_len": spec}],
    }).models[0]
    spec_obj = getattr(s, f"{role}_len")
    x = L.sample(spec_obj, role, n, np.random.default_rng(seed))
    values, probs = L.pmf(spec_obj, role)
    mean = L.mean_length(spec_obj, role)
    sd = math.sqrt(float(np.dot(probs, (values - mean) ** 2)))
    assert abs(x.mean() - mean) <= 5 * sd / math.sqrt(n) + 1e-9
    lo, hi = spec_obj.bounds() if not isinstance(spec_obj, L.ShareGPTLength) else L.concrete(spec_obj, role).bounds()
    assert x.min() >= lo and x.max() <= hi
    assert x.dtype == np.int64
    return x, mean


@settings(max_examples=20, deadline=None, derandomize=True)
@given(mean=st.floats(2.0, 3000.0), cv=st.floats(0.05, 3.0), hi=st.one_of(st.none(), st.integers(1, 4000)),
       lo=st.integers(1, 50), seed=st.integers(0, 2**32 - 1))
@example(mean=2.0, cv=0.25, hi=None, lo=12, seed=0)  # min above the whole body of the distribution
def test_lognormal_mean_and_clipping_hold(mean, cv, hi, lo, seed):
    if hi is not None and hi < lo:
        lo, hi = hi, lo
    spec = {"dist": "lognormal", "mean": mean, "cv": cv, "min": lo}
    if hi is not None:
        spec["max"] = hi
    _check_mean(spec, seed=seed)


def test_unclipped_lognormal_mean_is_the_spec_mean():
    spec = L.LognormalLength(dist="lognormal", mean=300.0, cv=0.8)
    assert L.mean_length(spec, "prompt") == pytest.approx(300.0, rel=1e-3)


@settings(max_examples=20, deadline=None, derandomize=True)
@given(a=st.integers(1, 3000), b=st.integers(1, 3000), seed=st.integers(0, 2**32 - 1))
def test_uniform_mean_and_bounds(a, b, seed):
    lo, hi = min(a, b), max(a, b)
    _, mean = _check_mean({"dist": "uniform", "low": lo, "high": hi}, seed=seed)
    assert mean == pytest.approx((lo + hi) / 2)


def test_fixed_is_fixed_and_clipped():
    x, mean = _check_mean({"dist": "fixed", "value": 77})
    assert (x == 77).all() and mean == 77
    x, mean = _check_mean({"dist": "fixed", "value": 77, "max": 50})
    assert (x == 50).all() and mean == 50


def test_empirical_draws_from_the_column(tmp_path):
    path = tmp_path / "lens.csv"
    pd.DataFrame({"tokens": [10, 20, 20, 60], "other": [1, 2, 3, 4]}).to_csv(path, index=False)
    x, mean = _check_mean({"dist": "empirical", "file": str(path), "column": "tokens"})
    assert mean == 27.5 and set(np.unique(x)) == {10, 20, 60}
    x, mean = _check_mean({"dist": "empirical", "file": str(path), "column": "tokens", "max": 30})
    assert mean == pytest.approx((10 + 20 + 20 + 30) / 4) and x.max() == 30
    jsonl = tmp_path / "lens.jsonl"
    jsonl.write_text('{"n": 3}\n{"n": 5}\n')
    x, mean = _check_mean({"dist": "empirical", "file": str(jsonl), "column": "n"}, role="output")
    assert mean == 4.0


def test_sharegpt_default_matches_the_paper():
    wl = workload([{"rate": 400.0}], duration=100)
    df = generate_requests(wl, seed=0)
    assert wl.mean_prompt_len("m0") == pytest.approx(161, abs=0.5)
    assert wl.mean_output_len("m0") == pytest.approx(338, abs=0.5)
    p, o = df["prompt_len"].to_numpy(), df["output_len"].to_numpy()
    assert p.max() <= 1024 and p.min() >= 4 and o.min() >= 4
    assert (p + o).max() <= 2048
    assert p.mean() == pytest.approx(161, rel=0.03) and o.mean() == pytest.approx(338, rel=0.03)
    assert np.median(p) < p.mean() and np.median(o) < o.mean()  # right-skewed like ShareGPT


def test_sharegpt_overrides_per_model():
    wl = workload([{"rate": 50.0}, {"rate": 50.0, "prompt_len": {"dist": "sharegpt", "max": 256},
                                    "output_len": {"dist": "fixed", "value": 9}}], duration=60)
    df = generate_requests(wl, seed=2)
    m1 = df[df["name"] == "m1"]
    assert m1["prompt_len"].max() <= 256 and (m1["output_len"] == 9).all()
    assert df[df["name"] == "m0"]["prompt_len"].max() > 256
    assert wl.mean_prompt_len("m1") < wl.mean_prompt_len("m0")


def test_max_total_cuts_answers_and_the_mean_accounts_for_it():
    wl = workload([{"rate": 300.0, "prompt_len": {"dist": "uniform", "low": 100, "high": 900},
                    "output_len": {"dist": "fixed", "value": 500, "max_total": 1000}}], duration=100)
    df = generate_requests(wl, seed=4)
    assert (df["prompt_len"] + df["output_len"]).max() <= 1000
    # E[min(500, 1000 - P)], P uniform on 100..900: exact sum
    p = np.arange(100, 901)
    exact = np.minimum(500, 1000 - p).mean()
    assert wl.mean_output_len("m0") == pytest.approx(exact, rel=1e-12)
    assert df["output_len"].mean() == pytest.approx(exact, rel=0.02)


def test_max_total_never_cuts_below_the_answer_min():
    wl = workload([{"rate": 200.0, "prompt_len": {"dist": "uniform", "low": 900, "high": 1100},
                    "output_len": {"dist": "fixed", "value": 300, "min": 8, "max_total": 1000}}], duration=50)
    df = generate_requests(wl, seed=1)
    p = np.arange(900, 1101)
    expected = np.maximum(8, np.minimum(300, 1000 - p))
    assert wl.mean_output_len("m0") == pytest.approx(expected.mean(), rel=1e-12)
    assert df["output_len"].min() == 8
    over = df["prompt_len"] >= 992
    assert (df.loc[over, "output_len"] == 8).all()
    assert (df.loc[~over, "prompt_len"] + df.loc[~over, "output_len"] <= 1000).all()


# ---- time-varying popularity ---------------------------------------------------------------
def test_rate_schedule_windows_get_their_rates():
    sched = [{"start_s": 0, "rate": 40.0}, {"start_s": 50, "rate": 0.0}, {"start_s": 100, "rate": 5.0}]
    wl = workload([{"rate_schedule": sched}], duration=200)
    t = generate_requests(wl, seed=9)["arrival_s"].to_numpy()
    counts = [np.sum((t >= a) & (t < b)) for a, b in [(0, 50), (50, 100), (100, 200)]]
    assert counts[1] == 0
    assert abs(counts[0] - 2000) <= 5 * math.sqrt(2000)
    assert abs(counts[2] - 500) <= 5 * math.sqrt(500)
    assert wl.rate_of("m0") == pytest.approx((40 * 50 + 5 * 100) / 200)


@settings(max_examples=15, deadline=None, derandomize=True)
@given(rates=st.lists(st.floats(0.0, 50.0), min_size=1, max_size=5), cv=st.sampled_from([None, 0.5, 3.0]),
       seed=st.integers(0, 2**32 - 1))
def test_arrival_times_follow_any_piecewise_rate(rates, cv, seed):
    duration = 100.0
    starts = np.linspace(0, duration, len(rates), endpoint=False)
    from muxsim.workload.arrivals import GammaArrivals, PoissonArrivals

    spec = PoissonArrivals() if cv is None else GammaArrivals(cv=cv)
    t = arrival_times(spec, starts, np.array(rates), duration, np.random.default_rng(seed))
    assert np.all(np.diff(t) >= 0) and (t.size == 0 or (t[0] >= 0 and t[-1] < duration))
    ends = np.append(starts[1:], duration)
    for a, b, r in zip(starts, ends, rates):
        n = np.sum((t >= a) & (t < b))
        expected = r * (b - a)
        if r == 0:
            assert n == 0
        else:
            assert abs(n - expected) <= 6 * (cv or 1.0) * math.sqrt(expected) + 5
