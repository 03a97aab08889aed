"""Plan extensions used by placement: the SM overload check, save_plan, plan_table."""

from __future__ import annotations

import json

import pytest

from muxsim.errors import InputError
from muxsim.limits import ServingLimits
from muxsim.plan import Cluster, Mesh, Plan, Unit, load_plan, plan_table, save_plan


def plan(decode=(0.6, 0.6), mode="flex"):
    units = tuple(Unit(name=f"llm-{k}", model="llama-7b", tp=2, prefill_sm=1.0, decode_sm=d, kv_share=0.5,
                       max_batch=64) for k, d in enumerate(decode))
    return Plan(cluster=Cluster("a100-80gb", 1, 4), meshes=(Mesh("m0", 0, (0, 1), units),), mode=mode,
                algorithm="muxserve", estimate={"throughput_rps": 3.5, "per_llm": {"llm-0": 2.0, "llm-1": 1.5}})


def test_overload_limit_is_checked_only_when_asked_and_only_for_flex():
    p = plan((0.7, 0.6))  # 1.3
    p.verify()  # structural checks do not know the limit
    with pytest.raises(InputError, match=r"plan.meshes\[0\].units: decode_sm sums to 1.3 > the overload limit 1.2"):
        p.verify(limits=ServingLimits())
    plan((0.6, 0.6)).verify(limits=ServingLimits())
    plan((1.0, 1.0), mode="temporal").verify(limits=ServingLimits())
    with pytest.raises(InputError, match=r"plan.meshes\[0\].units\[0\].max_batch: 64 is above the batch limit 32"):
        plan((0.6, 0.6)).verify(limits=ServingLimits(max_batch=32))


def test_save_plan_round_trips(tmp_path):
    p = plan()
    (tmp_path / "sub").mkdir()
    path = save_plan(p, tmp_path / "sub" / "plan.json")
    assert load_plan(path) == p
    assert json.loads(path.read_text())["estimate"]["per_llm"] == {"llm-0": 2.0, "llm-1": 1.5}
    assert [x.name for x in (tmp_path / "sub").iterdir()] == ["plan.json"]  # no temporary left


def test_plan_table_rows_total_and_overload_flag():
    text = plan((0.6, 0.6)).normalize()
    out = plan_table(text, rates={"llm-0": 2.0, "llm-1": 4.0})
    lines = out.splitlines()
    assert lines[0].split() == ["estimate"]  # the group of estimate.throughput_rps
    assert lines[1].split() == ["mesh", "node", "gpus", "name", "model", "tp", "prefill_sm", "decode_sm",
                                "kv_share", "max_batch", "throughput_rps", "rate_rps"]
    assert lines[3].split() == ["m0", "*", "0", "0-1", "llm-0", "llama-7b", "2", "1.000", "0.600", "0.500", "64",
                                "2.00", "2"]
    assert lines[5] == ("muxserve (flex): 1 meshes, 2/4 a100-80gb GPUs, estimated throughput 3.50 req/s "
                        "of 6.00 offered")
    assert "120%" in lines[6]
    assert "*" not in plan_table(plan((0.5, 0.5))).splitlines()[3]
