"""workload.json: validation messages, JSON round trips, the lookups others code against."""

from __future__ import annotations

import copy
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from muxsim.errors import InputError
from muxsim.plan import Cluster
from muxsim.workload import Workload, load_workload, save_workload
from muxsim.workload.lengths import SHAREGPT_TARGET_MEANS

BASE = {
    "cluster": {"gpu": "a100-80gb", "nodes": 1, "gpus_per_node": 4},
    "models": [
        {"name": "llm-0", "model": "llama-7b", "rate": 2.0},
        {"name": "llm-1", "model": "llama-13b", "rate": 1.0,
         "prompt_len": {"dist": "lognormal", "mean": 161, "cv": 1.4},
         "output_len": {"dist": "fixed", "value": 338}},
        {"name": "llm-2", "model": "llama-7b", "rate": 0.5},
        {"name": "llm-3", "model": "llama-30b", "rate": 0.25},
    ],
    "arrivals": {"process": "poisson"},
    "duration_s": 60,
    "seed": 0,
    "slo": {"scales": [1, 2, 4, 8, 16], "target_attainment": 0.99},
    "trace": None,
}


def with_(path: str, value, base=BASE):
    """A copy of ``base`` with the field at ``path`` ("models[3].rate") set (or deleted when
    ``value`` is ...)."""
    d = copy.deepcopy(base)
    parts = path.replace("[", ".").replace("]", "").split(".")
    node = d
    for p in parts[:-1]:
        node = node[int(p)] if p.isdigit() else node[p]
    last = int(parts[-1]) if parts[-1].isdigit() else parts[-1]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return d


def test_design_example_loads_with_defaults():
    wl = Workload.from_dict(BASE)
    assert wl.names() == ["llm-0", "llm-1", "llm-2", "llm-3"]
    assert wl.cluster.gpu == "a100-80gb" and wl.cluster.nodes == 1 and wl.cluster.gpus_per_node == 4
    assert wl.slo.scales == (1.0, 2.0, 4.0, 8.0, 16.0) and wl.slo.target_attainment == 0.99
    assert wl.trace is None and wl.seed == 0 and wl.duration_s == 60.0
    assert wl.rate_of("llm-1") == 1.0 and wl.total_rate() == 3.75
    assert wl.model_spec("llm-3").layers == 60
    assert wl.gpu_spec().name == "a100-80gb"
    assert wl.cluster.to_plan_cluster() == Cluster("a100-80gb", 1, 4)
    assert Cluster(**wl.cluster.to_dict()) == Cluster("a100-80gb", 1, 4)
    # defaults are ShareGPT's shape; fixed lengths are exact
    assert wl.mean_prompt_len("llm-0") == pytest.approx(SHAREGPT_TARGET_MEANS["prompt"], abs=0.5)
    assert wl.mean_output_len("llm-0") == pytest.approx(SHAREGPT_TARGET_MEANS["output"], abs=0.5)
    assert wl.mean_output_len("llm-1") == 338.0


def test_slo_and_seed_defaults_when_left_out():
    d = with_("slo", ...)
    d = with_("seed", ..., d)
    d = with_("arrivals", ..., d)
    wl = Workload.from_dict(d)
    assert wl.slo.scales == (1, 2, 4, 8, 16) and wl.seed == 0 and wl.arrivals.process == "poisson"


def test_objects_are_frozen():
    wl = Workload.from_dict(BASE)
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen-instance error
        wl.duration_s = 5  # type: ignore[misc]
    with pytest.raises(Exception):  # noqa: B017
        wl.models[0].rate = 5  # type: ignore[misc]


def test_rate_schedule_fills_the_mean_rate():
    d = with_("models[0].rate", ...)
    d = with_("models[0].rate_schedule", [{"start_s": 0, "rate": 4.0}, {"start_s": 45, "rate": 0.0}], d)
    wl = Workload.from_dict(d)
    assert wl.rate_of("llm-0") == pytest.approx(4.0 * 45 / 60)
    # giving the same mean explicitly is fine and round-trips
    assert Workload.from_dict(wl.to_dict()) == wl


# ---- every bad input names its field --------------------------------------------------
BAD = [
    ("models[3].rate", -1, "models[3].rate: must be > 0, got -1"),
    ("models[3].rate", 0, "models[3].rate: must be > 0, got 0"),
    ("models[1].rate", float("nan"), "models[1].rate: must be finite, got nan"),
    ("models[1].rate", "fast", "models[1].rate: must be a number, got 'fast'"),
    ("models[1].rate", True, "models[1].rate: must be a number, got True"),
    ("models[0].rate", ..., "models[0].rate: missing (give rate or rate_schedule)"),
    ("duration_s", -5, "duration_s: must be > 0, got -5"),
    ("duration_s", float("inf"), "duration_s: must be finite, got inf"),
    ("duration_s", ..., "duration_s: missing"),
    ("models", [], "models: must not be empty"),
    ("models", "llama-7b", "models: must be a list, got 'llama-7b'"),
    ("models[2].name", "llm-0", "models[2].name: duplicate name 'llm-0' (also models[0])"),
    ("models[2].name", "", "models[2].name: must not be empty"),
    ("models[2].name", "a,b", "models[2].name: must not hold commas"),
    ("models[1].model", "llama-8b", "models[1].model: unknown model 'llama-8b'"),
    ("models[1].model", 7, "models[1].model: must be a catalog model name, a config.json path"),
    ("models[1].model", {"layers": 2}, "models[1].model: inline architecture is missing hidden"),
    ("models[1].flavour", "x", "models[1].flavour: unknown field"),
    ("cluster.gpu", "a100-90gb", "cluster.gpu: unknown GPU 'a100-90gb'"),
    ("cluster.nodes", 0, "cluster.nodes: must be >= 1, got 0"),
    ("cluster.nodes", 1.5, "cluster.nodes: must be an integer, got 1.5"),
    ("cluster", ..., "cluster: missing"),
    ("seed", -1, "seed: must be >= 0, got -1"),
    ("slo.scales", [], "slo.scales: must not be empty"),
    ("slo.scales", [1, -2], "slo.scales[1]: must be > 0, got -2"),
    ("slo.target_attainment", 1.5, "slo.target_attainment: must be <= 1, got 1.5"),
    ("models[1].prompt_len", {"dist": "zipf", "s": 1.1},
     "models[1].prompt_len: unknown distribution 'zipf' (known: fixed, uniform, lognormal, empirical, sharegpt)"),
    ("models[1].prompt_len", {"mean": 3}, "models[1].prompt_len: missing 'dist'"),
    ("models[1].prompt_len", {"dist": "lognormal", "mean": 100, "cv": -1},
     "models[1].prompt_len.cv: must be >= 0.001, got -1"),
    ("models[1].prompt_len", {"dist": "lognormal", "mean": 100},
     "models[1].prompt_len.cv: missing"),
    ("models[1].prompt_len", {"dist": "lognormal", "mean": 100, "cv": 1, "shape": 2},
     "models[1].prompt_len.shape: unknown field"),
    ("models[1].output_len", {"dist": "uniform", "low": 9, "high": 3},
     "models[1].output_len: high (3) must be >= low (9)"),
    ("models[1].output_len", {"dist": "fixed", "value": 0}, "models[1].output_len.value: must be >= 1, got 0"),
    ("models[1].output_len", {"dist": "fixed", "value": 8, "min": 9, "max": 4},
     "models[1].output_len: max (4) must be >= min (9)"),
    ("models[1].prompt_len", {"dist": "sharegpt", "max": 2},
     "models[1].prompt_len: max (2) must be >= min (4)"),
    ("models[1].prompt_len", {"dist": "fixed", "value": 8, "max_total": 100},
     "models[1].prompt_len: max_total belongs to output_len"),
    ("arrivals", {"process": "weibull"},
     "arrivals: unknown arrival process 'weibull' (known: poisson, gamma, trace)"),
    ("arrivals", {"process": "gamma"}, "arrivals.cv: missing"),
    ("arrivals", {"process": "gamma", "cv": 0}, "arrivals.cv: must be >= 0.01, got 0"),
    ("arrivals", {"process": "trace"}, "arrivals.process: 'trace' needs the trace field"),
    ("trace", "requests.csv", "trace: a trace replays arrivals; set arrivals.process to 'trace'"),
    ("models[0].rate_schedule", [{"start_s": 5, "rate": 1.0}],
     "models[0].rate_schedule[0].start_s: the first window must start at 0, got 5"),
    ("models[0].rate_schedule", [{"start_s": 0, "rate": 1.0}, {"start_s": 0, "rate": 2.0}],
     "models[0].rate_schedule[1].start_s: windows must start in increasing order"),
    ("models[0].rate_schedule", [{"start_s": 0, "rate": 1.0}, {"start_s": 60, "rate": 2.0}],
     "models[0].rate_schedule[1].start_s: 60.0 is not before duration_s (60.0)"),
    ("models[0].rate_schedule", [{"start_s": 0, "rate": 0.0}], "models[0].rate_schedule: every window has rate 0"),
    ("models[0].rate_schedule", [{"start_s": 0, "rate": -1.0}],
     "models[0].rate_schedule[0].rate: must be >= 0, got -1.0"),
    ("models[0].rate_schedule", [{"start_s": 0, "rate": 3.0}],
     "models[0].rate: 2.0 differs from the mean of rate_schedule (3.0)"),
    ("models[0].rate_schedule", [], "models[0].rate_schedule: must not be empty"),
]


@pytest.mark.parametrize(("path", "value", "message"), BAD, ids=[f"{p}={v!r}"[:60] for p, v, _ in BAD])
def test_bad_field_is_named(path, value, message):
    with pytest.raises(InputError) as e:
        Workload.from_dict(with_(path, value))
    text = str(e.value)
    assert text.startswith(message), text
    assert "\n" not in text


def test_not_an_object():
    with pytest.raises(InputError, match=r"^workload: expected a JSON object, got list$"):
        Workload.from_dict([1, 2])


def test_empirical_file_problems_are_named(tmp_path):
    spec = {"dist": "empirical", "file": str(tmp_path / "missing.csv"), "column": "n"}
    with pytest.raises(InputError, match=r"^models\[1\]\.prompt_len\.file: file '.*missing\.csv' does not exist"):
        Workload.from_dict(with_("models[1].prompt_len", spec))
    (tmp_path / "lens.csv").write_text("n,m\n5,1\n7,2\n")
    spec = {"dist": "empirical", "file": str(tmp_path / "lens.csv"), "column": "tokens"}
    with pytest.raises(InputError, match=r"^models\[1\]\.prompt_len\.file: column 'tokens' not in"):
        Workload.from_dict(with_("models[1].prompt_len", spec))
    (tmp_path / "empty.csv").write_text("")
    spec = {"dist": "empirical", "file": str(tmp_path / "empty.csv"), "column": "n"}
    with pytest.raises(InputError, match=r"^models\[1\]\.prompt_len\.file: empirical file: file .* is empty"):
        Workload.from_dict(with_("models[1].prompt_len", spec))


def _trace_workload(trace: str) -> dict:
    d = with_("arrivals", {"process": "trace"})
    return with_("trace", trace, d)


@pytest.mark.parametrize(("content", "message"), [
    (None, r"^trace: file '.*t\.csv' does not exist$"),
    ("", r"^trace: file '.*t\.csv' is empty$"),
    ("arrival_s,name,prompt_len,output_len\n", r"^trace: file '.*t\.csv' has no rows$"),
    ("arrival_s,name,prompt_len\n0.5,llm-0,3\n", r"^trace: '.*t\.csv' lacks column\(s\) output_len"),
    ("arrival_s,name,prompt_len,output_len\n0.5,llm-9,3,4\n", r"^trace: name\(s\) 'llm-9' are not models"),
    ("arrival_s,name,prompt_len,output_len\n-1,llm-0,3,4\n", r"^trace: arrival_s on row 1 must be a number of seconds in \[0, 1e\+09\]$"),
    ("arrival_s,name,prompt_len,output_len\n1,llm-0,3,0\n", r"^trace: output_len on row 1 must be >= 1, got 0$"),
    ("arrival_s,name,prompt_len,output_len\n1,llm-0,3.5,2\n", r"^trace: prompt_len on row 1 must be a whole number"),
])
def test_bad_trace_file_is_refused(tmp_path, content, message):
    path = tmp_path / "t.csv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InputError, match=message):
        Workload.from_dict(_trace_workload(str(path)))


# ---- round trips ----------------------------------------------------------------------
finite = st.floats(min_value=1e-3, max_value=1e4, allow_nan=False, allow_infinity=False)
length = st.one_of(
    st.builds(lambda v: {"dist": "fixed", "value": v}, st.integers(1, 2000)),
    st.builds(lambda a, b: {"dist": "uniform", "low": min(a, b), "high": max(a, b)},
              st.integers(1, 2000), st.integers(1, 2000)),
    st.builds(lambda m, c, hi: {"dist": "lognormal", "mean": m, "cv": c, "min": 1, "max": hi},
              finite, st.floats(0.05, 5), st.integers(1, 2000)),
    st.just({"dist": "sharegpt"}),
    st.builds(lambda mx: {"dist": "sharegpt", "max": mx}, st.integers(4, 1024)),
)


@st.composite
def workloads(draw):
    n = draw(st.integers(1, 5))
    models = []
    for i in range(n):
        # models whose context windows hold any two lengths drawn here (llama-7b's 2048 does not)
        m = {"name": f"m{i}", "model": draw(st.sampled_from(["llama-3-8b", "qwen2.5-7b", "mistral-7b"])),
             "prompt_len": draw(length), "output_len": draw(length)}
        if draw(st.booleans()):
            m["rate"] = draw(finite)
        else:
            k = draw(st.integers(1, 4))
            m["rate_schedule"] = [{"start_s": 10.0 * j, "rate": draw(finite)} for j in range(k)]
        models.append(m)
    arrivals = draw(st.sampled_from([{"process": "poisson"}, {"process": "gamma", "cv": 2.5}]))
    return {
        "cluster": {"gpu": draw(st.sampled_from(["a100-80gb", "h100-80gb", "l40s"])),
                    "nodes": draw(st.integers(1, 8)), "gpus_per_node": draw(st.integers(1, 8))},
        "models": models, "arrivals": arrivals, "duration_s": draw(st.floats(41, 1e5)),
        "seed": draw(st.integers(0, 2**31)),
        "slo": {"scales": draw(st.lists(finite, min_size=1, max_size=5)),
                "target_attainment": draw(st.floats(0.01, 1.0))},
    }


@settings(max_examples=60, deadline=None)
@given(workloads())
def test_json_round_trip_is_exact(d):
    wl = Workload.from_dict(d)
    again = Workload.from_dict(json.loads(json.dumps(wl.to_dict())))
    assert again == wl
    assert again.to_dict() == wl.to_dict()
    for m in wl.models:  # the mean rate of a schedule is the time-weighted mean
        if m.rate_schedule:
            starts = [w.start_s for w in m.rate_schedule] + [wl.duration_s]
            mean = sum(w.rate * (b - a) for w, a, b in zip(m.rate_schedule, starts, starts[1:])) / wl.duration_s
            assert math.isclose(wl.rate_of(m.name), mean, rel_tol=1e-12)


def test_save_and_load_round_trip_and_rebase_relative_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "lens.csv").write_text("n\n10\n20\n30\n")
    (tmp_path / "data" / "t.csv").write_text("arrival_s,name,prompt_len,output_len\n0.5,llm-0,3,4\n2.0,llm-1,5,6\n")
    d = with_("models[1].prompt_len", {"dist": "empirical", "file": "data/lens.csv", "column": "n"})
    wl = Workload.from_dict(d)
    (tmp_path / "out").mkdir()
    save_workload(wl, tmp_path / "out" / "wl.json")
    raw = json.loads((tmp_path / "out" / "wl.json").read_text())
    assert raw["models"][1]["prompt_len"]["file"] == "../data/lens.csv"
    assert load_workload("out/wl.json") == wl
    assert load_workload(tmp_path / "out" / "wl.json").mean_prompt_len("llm-1") == 20.0
    tw = Workload.from_dict(_trace_workload("data/t.csv"))
    save_workload(tw, "out/tw.json")
    assert json.loads((tmp_path / "out" / "tw.json").read_text())["trace"] == "../data/t.csv"
    back = load_workload("out/tw.json")
    assert back == tw and back.mean_prompt_len("llm-1") == 5.0 and back.mean_output_len("llm-0") == 4.0


def test_load_reports_missing_and_malformed_files(tmp_path):
    with pytest.raises(InputError, match=r"^workload: file '.*nope\.json' does not exist$"):
        load_workload(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{\"cluster\": ")
    with pytest.raises(InputError, match=r"^workload: '.*bad\.json' is not valid JSON"):
        load_workload(tmp_path / "bad.json")
    (tmp_path / "nan.json").write_text(json.dumps(with_("models[0].rate", float("nan"))))
    with pytest.raises(InputError, match=r"^models\[0\]\.rate: must be finite, got nan$"):
        load_workload(tmp_path / "nan.json")


def test_inline_architecture_takes_its_llm_name():
    tiny = {"layers": 2, "hidden": 64, "heads": 4, "kv_heads": 4, "intermediate": 128, "vocab": 256}
    wl = Workload.from_dict(with_("models[1].model", tiny))
    spec = wl.model_spec("llm-1")
    assert spec.name == "llm-1" and spec.layers == 2 and spec.head_dim == 16
    assert Workload.from_dict(json.loads(json.dumps(wl.to_dict()))) == wl
    with pytest.raises(InputError, match=r"^name: 'llm-9' is not a model of this workload"):
        wl.rate_of("llm-9")
