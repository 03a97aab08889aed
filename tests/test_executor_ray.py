"""The Ray backend against the local one: a local Ray with 2 CPUs runs the tiny plan's
meshes as actors in a placement group, and the run gives the same tokens and the same
request accounting as the local backend for the seed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import tinyplan

pytest.importorskip("torch")
ray = pytest.importorskip("ray")


@pytest.mark.slow
def test_ray_and_local_backends_agree(tmp_path: Path) -> None:
    import muxsim as mx
    from muxsim.executor import execute
    from muxsim.plan import load_plan

    plan_path, wl_path = tinyplan.write_case(tmp_path, duration_s=2.0)
    plan, wl = load_plan(plan_path), mx.load_workload(wl_path)
    local = execute(plan, wl, seed=3)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        remote = execute(plan, wl, seed=3, backend="ray")
    finally:
        ray.shutdown()
    assert local.status == remote.status == "completed"
    assert remote.results.run["backend"] == "ray" and local.results.run["backend"] == "local"
    assert remote.tokens == local.tokens
    cols = ["name", "mesh", "arrival_s", "prompt_len", "output_len", "finished", "preemptions"]
    assert remote.results.to_frame()[cols].equals(local.results.to_frame()[cols])
    for name in ("a", "b"):
        for key in ("requests", "completed"):
            assert remote.results.per_llm[name][key] == local.results.per_llm[name][key]
    assert local.results.aggregate["completed"] == local.results.aggregate["requests"] > 0
