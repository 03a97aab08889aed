"""The paper's power-law workloads, the shipped examples and describe()."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import muxsim as mx
from muxsim.errors import InputError
from muxsim.workload import describe, generate_requests, load_workload, parse_mix, synth_workload

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PAPER_MIX = "12xllama-7b,4xllama-13b,2xllama-30b,1xllama-65b"


@settings(max_examples=30, deadline=None)
@given(counts=st.lists(st.integers(1, 5), min_size=1, max_size=4), alpha=st.floats(0, 3),
       max_rate=st.floats(0.01, 500))
def test_synthetic_rates_equal_the_formula(counts, alpha, max_rate):
    models = ["llama-7b", "llama-13b", "llama-30b", "llama-65b"]
    mix = ",".join(f"{c}x{m}" for c, m in zip(counts, models))
    wl = synth_workload(mix, alpha, max_rate)
    expected_models = [m for c, m in zip(counts, models) for _ in range(c)]
    assert [e.model for e in wl.models] == expected_models
    assert wl.names() == [f"llm-{i}" for i in range(sum(counts))]
    for i, name in enumerate(wl.names()):
        assert wl.rate_of(name) == max_rate * (i + 1) ** -alpha


def test_paper_setup_defaults():
    wl = synth_workload(PAPER_MIX, 2.1, 40)
    assert len(wl.models) == 19 and wl.models[-1].model == "llama-65b" and wl.models[11].model == "llama-7b"
    assert (wl.cluster.gpu, wl.cluster.nodes, wl.cluster.gpus_per_node) == ("a100-80gb", 4, 8)
    assert wl.duration_s == 240 and wl.seed == 0 and wl.arrivals.process == "poisson"
    assert wl.rate_of("llm-0") == 40 and wl.rate_of("llm-18") == pytest.approx(40 * 19**-2.1)


@pytest.mark.parametrize(("mix", "message"), [
    ("", r"^mix: must name at least one model"),
    ("0xllama-7b", r"^mix\[0\]: count must be >= 1, got 0$"),
    ("2xllama-7b,3x", r"^mix\[1\]: cannot read '3x'"),
    ("2xllama-7b, ,llama-13b", r"^mix\[1\]: cannot read ' '"),
    ("2xllama-8b", r"^mix\[0\]: unknown model 'llama-8b'"),
])
def test_bad_mix_is_refused(mix, message):
    with pytest.raises(InputError, match=message):
        synth_workload(mix, 1.0, 10)


def test_parse_mix_forms():
    assert parse_mix("2xllama-7b,llama-13b") == ["llama-7b", "llama-7b", "llama-13b"]
    assert parse_mix(["1*llama-7b", "llama-30b"]) == ["llama-7b", "llama-30b"]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"alpha": -1}, r"^alpha: must be a finite number >= 0, got -1"),
    ({"alpha": float("nan")}, r"^alpha: must be a finite number >= 0"),
    ({"max_rate": 0}, r"^max_rate: must be > 0, got 0"),
    ({"duration": -3}, r"^duration_s: must be > 0, got -3"),
    ({"gpu": "tpu-v5"}, r"^cluster\.gpu: unknown GPU 'tpu-v5'"),
    ({"drift_windows": 0}, r"^drift_windows: must be an integer in \[1, 100000\], got 0"),
])
def test_bad_synth_arguments(kwargs, message):
    args = {"mix": "2xllama-7b", "alpha": 1.0, "max_rate": 10.0} | kwargs
    with pytest.raises(InputError, match=message):
        synth_workload(**args)


def test_drift_rotates_popularity_and_keeps_the_total():
    wl = synth_workload("4xllama-7b", 1.3, 8, nodes=1, duration=240, drift_windows=4)
    rates = [8 * (i + 1) ** -1.3 for i in range(4)]
    for i, m in enumerate(wl.models):
        assert [w.start_s for w in m.rate_schedule] == [0, 60, 120, 180]
        assert [w.rate for w in m.rate_schedule] == [rates[(i + w) % 4] for w in range(4)]
        assert wl.rate_of(m.name) == pytest.approx(sum(rates) / 4)
    df = generate_requests(wl, seed=0)
    first = df[df["arrival_s"] < 60]["name"].value_counts()
    last = df[df["arrival_s"] >= 180]["name"].value_counts()
    assert first.idxmax() == "llm-0" and last.idxmax() == "llm-1"


def test_shipped_examples_are_what_synth_makes():
    for alpha in (0.7, 0.9, 1.3, 1.7, 2.1):
        wl = load_workload(EXAMPLES / f"paper-19llm-alpha{alpha}.json")
        assert wl == synth_workload(PAPER_MIX, alpha, 40)
    small = load_workload(EXAMPLES / "small-4llm.json")
    assert [m.model for m in small.models] == ["llama-7b", "llama-7b", "llama-13b", "llama-30b"]
    assert small.cluster.total_gpus == 4 and small.duration_s <= 120
    drift = load_workload(EXAMPLES / "drift.json")
    assert all(m.rate_schedule and len(m.rate_schedule) > 1 for m in drift.models)
    for path in EXAMPLES.glob("*.json"):  # every example is valid and written in the canonical form
        assert json.loads(path.read_text()) == load_workload(path).to_dict()


def test_describe_rates_shares_and_tokens():
    wl = synth_workload("2xllama-7b,llama-13b", 1.0, 12, nodes=1, duration=100)
    df = describe(wl)
    assert df["name"].tolist() == ["llm-0", "llm-1", "llm-2"]
    assert df["rate_rps"].tolist() == [12.0, 6.0, 4.0]
    assert df["share"].tolist() == pytest.approx([12 / 22, 6 / 22, 4 / 22])
    assert df["expected_requests"].tolist() == pytest.approx([1200, 600, 400])
    assert df["prompt_len.mean"].tolist() == pytest.approx([wl.mean_prompt_len("llm-0")] * 3)
    assert df["output_len.mean"].iloc[0] == pytest.approx(wl.mean_output_len("llm-0"), rel=1e-9)
    assert df["tokens_per_s"].iloc[1] == pytest.approx(6 * (wl.mean_prompt_len("llm-1") + wl.mean_output_len("llm-1")))
    assert (df["prompt_len.p50"] <= df["prompt_len.p90"]).all()
    assert (df["prompt_len.p90"] <= df["prompt_len.p99"]).all()
    assert df["prompt_len.p99"].max() <= 1024
    total = df.attrs["total"]
    assert total["rate_rps"] == 22.0 and total["tokens_per_s"] == pytest.approx(df["tokens_per_s"].sum())


def test_describe_percentiles_match_samples():
    wl = mx.Workload.from_dict({
        "cluster": {"gpu": "a100-80gb"}, "duration_s": 200,
        "models": [{"name": "a", "model": "llama-7b", "rate": 300,
                    "prompt_len": {"dist": "lognormal", "mean": 500, "cv": 1.0, "max": 3000},
                    "output_len": {"dist": "uniform", "low": 10, "high": 110}}],
    })
    row = describe(wl).iloc[0]
    df = generate_requests(wl, seed=0)
    for col in ("prompt_len", "output_len"):
        for q in (50, 90, 99):
            assert np.percentile(df[col], q) == pytest.approx(row[f"{col}.p{q}"], rel=0.05, abs=2)
    assert row["output_len.p50"] == 60 and math.isclose(row["output_len.mean"], 60.0)


def test_top_level_api_exports():
    assert mx.synth_workload is synth_workload and mx.describe is describe
    assert mx.save_workload.__name__ == "save_workload" and mx.write_trace.__name__ == "write_trace"
    assert mx.load_workload is load_workload and mx.generate_requests is generate_requests
