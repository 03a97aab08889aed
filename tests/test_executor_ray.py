"""The Ray backend against the local one, in one local Ray with 2 CPUs: the tiny plan's
meshes as actors in a placement group, and the tp 2 plan's workers as one actor per
rank (gloo over TCP), give the same tokens and the same request accounting as the local
backend for the seed; a killed rank ends the run naming that rank."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests import tinyplan

pytest.importorskip("torch")
ray = pytest.importorskip("ray")


def _agree(local: Any, remote: Any) -> None:
    assert local.status == remote.status == "completed"
    assert remote.results.run["backend"] == "ray" and local.results.run["backend"] == "local"
    assert remote.tokens == local.tokens
    cols = ["name", "mesh", "arrival_s", "prompt_len", "output_len", "finished", "preemptions"]
    assert remote.results.to_frame()[cols].equals(local.results.to_frame()[cols])
    for name in ("a", "b"):
        for key in ("requests", "completed"):
            assert remote.results.per_llm[name][key] == local.results.per_llm[name][key]
    assert local.results.aggregate["completed"] == local.results.aggregate["requests"] > 0


@pytest.mark.slow
def test_ray_and_local_backends_agree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import muxsim as mx
    from muxsim.executor import execute
    from muxsim.executor.raybackend import RayBackend
    from muxsim.plan import load_plan

    (tmp_path / "one").mkdir()
    (tmp_path / "tp").mkdir()
    cases = [tinyplan.write_case(tmp_path / "one", duration_s=2.0), tinyplan.tp_case(tmp_path / "tp")]
    runs = [(load_plan(p), mx.load_workload(w)) for p, w in cases]
    local = [execute(plan, wl, seed=3) for plan, wl in runs]
    started: list[RayBackend] = []
    start = RayBackend.start

    def keep(self: RayBackend, timeout_s: float) -> None:
        started.append(self)
        start(self, timeout_s)

    monkeypatch.setattr(RayBackend, "start", keep)

    killed_at: list[int] = []

    def kill_last_rank(done: int, total: int) -> None:  # b's decode worker, rank 1, once
        if not killed_at:
            killed_at.append(done)
            ray.kill(started[-1].actors[-1])

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        remote = [execute(plan, wl, seed=3, backend="ray") for plan, wl in runs]
        assert [len(b.actors) for b in started] == [4, 8]  # tp 2: an actor per rank
        killed = execute(runs[1][0], runs[1][1].model_copy(update={"duration_s": 20.0}), seed=3, backend="ray",
                         progress=kill_last_rank)
    finally:
        ray.shutdown()
    for a, b in zip(local, remote):
        _agree(a, b)
    assert killed.status.startswith("worker_failed: mesh m0 b decode worker rank 1: ")
    assert killed.results.aggregate["requests"] > 0
