"""Each figure function: a figure comes back, every visible axes has labelled axes, the
data drawn is the data given."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

import muxsim as mx
from muxsim.plan import plan_from_dict
from muxsim.workload import Workload

WL = Workload.from_dict({"cluster": {"gpu": "a100-80gb", "nodes": 2, "gpus_per_node": 2},
                         "models": [{"name": "b", "model": "llama-7b", "rate": 3.0},
                                    {"name": "a", "model": "llama-7b", "rate": 1.0}],
                         "duration_s": 10, "seed": 0, "slo": {"target_attainment": 0.95}})
PLAN = plan_from_dict({"mode": "flex", "algorithm": "hand", "cluster": {"gpu": "a100-80gb", "nodes": 2,
                                                                        "gpus_per_node": 2},
                       "meshes": [{"node": 0, "gpus": [0, 1], "units": [
                           {"name": "b", "model": "llama-7b", "decode_sm": 0.7, "kv_share": 0.6},
                           {"name": "a", "model": "llama-7b", "decode_sm": 0.5, "kv_share": 0.4}]}]})


@pytest.fixture(scope="module")
def res():
    return mx.simulate(PLAN, WL, seed=0)


def labelled(fig: Figure) -> list:
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert axes
    for ax in axes:
        assert ax.get_xlabel() or any(o.get_xlabel() for o in axes if o is not ax), "no x label"
        assert ax.get_ylabel() or any(o.get_ylabel() for o in axes if o is not ax), "no y label"
    assert all("(" in (ax.get_xlabel() + ax.get_ylabel()) or ax.get_ylabel() == "node" for ax in axes
               if ax.get_xlabel() and ax.get_ylabel()), "a unit in brackets on one axis at least"
    return axes


@pytest.mark.parametrize("metric", ["ttft_ms", "tpot_ms", "e2e_ms"])
def test_latency_cdf_one_line_per_model_ending_at_the_finished_share(res, metric):
    fig = mx.plot.latency_cdf(res, metric, order=WL.names())
    (ax,) = labelled(fig)
    lines = ax.get_lines()
    assert [ln.get_label() for ln in lines] == ["b", "a"]  # workload order
    df = res.to_frame()
    for ln in lines:
        y = ln.get_ydata()
        assert np.all(np.diff(y) >= 0) and 0 < y[-1] <= 1
        mine = df[df["name"] == ln.get_label()]
        assert ln.get_xdata()[-1] == pytest.approx(np.nanmax(mine[metric]))
    assert ax.get_xscale() == "log" and "ms" in ax.get_xlabel()
    assert fig.legends  # outside the axes, not over the data


def test_latency_cdf_of_several_runs_has_a_panel_per_model(res):
    two = {"first": res, "second": res}
    fig = mx.plot.latency_cdf(two, "ttft_ms", order=WL.names())
    axes = labelled(fig)
    assert [ax.get_title() for ax in axes] == ["b", "a"]
    assert [ln.get_label() for ln in axes[0].get_lines()] == ["first", "second"]
    with pytest.raises(ValueError, match="metric"):
        mx.plot.latency_cdf(res, "ttft")


def test_slo_attainment_against_scale_with_the_target(res):
    fig = mx.plot.slo_attainment({"x": res})
    (ax,) = labelled(fig)
    line = ax.get_lines()[0]
    assert list(line.get_xdata()) == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert list(line.get_ydata()) == list(res.aggregate["slo_attainment"].values())
    assert any(list(ln.get_ydata()) == [0.95, 0.95] for ln in ax.get_lines()[1:])  # target line


def test_utilization_per_mesh(res):
    fig = mx.plot.utilization(res)
    axes = labelled(fig)
    assert len(axes) == 2 and "%" in axes[0].get_ylabel() and "(s)" in axes[1].get_xlabel()
    u = res.utilization["meshes"]["m0"]
    assert list(axes[0].get_lines()[0].get_ydata()) == pytest.approx([x * 100 for x in u["sm"]])
    assert list(axes[1].get_lines()[0].get_ydata()) == pytest.approx([x * 100 for x in u["kv"]])


def test_throughput_against_offered_rate(res):
    fig = mx.plot.throughput({"x": res}, offered={"b": 3.0, "a": 1.0})
    (ax,) = labelled(fig)
    bars = ax.patches
    assert [round(b.get_height(), 9) for b in bars] == [round(res.per_llm[n]["throughput_rps"], 9) for n in "ba"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["b", "a"]
    offered = ax.collections[0].get_segments()
    assert [seg[0][1] for seg in offered] == [3.0, 1.0]


def test_plan_drawing_shows_meshes_shares_and_idle_gpus():
    fig = mx.plot.plan(PLAN, order=WL.names(), rates={"b": 3.0, "a": 1.0})
    (ax,) = labelled(fig)
    texts = [t.get_text() for t in ax.texts]
    assert "m0: 2 GPUs" in texts
    assert {"b 60%", "a 40%", "b 70%", "a 50%"} <= set(texts)
    assert "hand (flex): 1 meshes on 2/4 a100-80gb GPUs" == ax.get_title()
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["b (3 req/s)", "a (1 req/s)", "idle GPU"]


def test_compare_chart_has_attainment_and_offered_load(res):
    rows = [{"algorithm": "x", "estimate": {"throughput_rps": 3.5}, **res.to_dict()},
            {"algorithm": "none", "estimate": {"throughput_rps": None}, "aggregate": None}]
    fig = mx.plot.compare(rows, title="t")
    axes = labelled(fig)
    assert len(axes) == 3
    offered = res.aggregate["offered_rps"]
    assert any(list(ln.get_ydata()) == [offered, offered] for ln in axes[0].get_lines())
    assert "attainment" in axes[1].get_ylabel()
    assert any(t.get_text() == "no plan" for t in axes[0].texts)
    assert fig.legends and "offered load" in " ".join(t.get_text() for t in fig.legends[0].get_texts())


def test_save_writes_the_format_of_the_name(res, tmp_path):
    fig = mx.plot.slo_attainment(res)
    for suffix, magic in ((".png", b"\x89PNG"), (".svg", b"<?xml"), (".pdf", b"%PDF")):
        mx.plot.save(fig, tmp_path / f"f{suffix}")
        assert (tmp_path / f"f{suffix}").read_bytes()[:len(magic)] == magic
