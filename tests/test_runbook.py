"""The GPU runbook rehearsed on a CPU with tiny models: every step runs and writes its
file, so the first GPU run is not the first run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.hardening import REPO

pytest.importorskip("torch")


@pytest.mark.slow
def test_runbook_rehearsal_on_cpu(tmp_path: Path) -> None:
    out = tmp_path / "run"
    env = {**os.environ, "PYTHON": sys.executable}
    r = subprocess.run(["bash", str(REPO / "experiments" / "gpu" / "run.sh"), "--device", "cpu", "--out", str(out),
                        "--skip-install"], capture_output=True, text=True, env=env, timeout=900, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    for m in ("tiny-2l-64h", "tiny-2l-32h"):
        prof = pd.read_csv(out / f"profile-{m}.csv")
        assert set(prof["sm_pct"]) == {50, 100} and prof["date"].notna().all() and prof["device"].notna().all()
        assert (prof["latency_ms"] > 0).all() and set(prof["phase"]) == {"prefill", "decode"}
    assert json.loads((out / "kernels.json").read_text())["benchmark"] == "kernels"
    doc = json.loads((out / "validate.json").read_text())
    assert doc["run"]["status"] == "completed"
    executed = doc["executed"]["aggregate"]
    assert executed["completed"] == executed["requests"] > 0
    for name in ("a", "b"):
        row = doc["per_llm"][name]
        assert set(row) == {"throughput_rps", "ttft_ms.p50", "ttft_ms.p99", "tpot_ms.p50", "tpot_ms.p99"}
        assert row["throughput_rps"]["measured"] > 0 and row["tpot_ms.p50"]["predicted"] > 0
    assert "tpot_ms.p50" in (out / "validate.txt").read_text()
    assert "device: cpu" in (out / "machine.txt").read_text()
    # the runbook refuses a folder that is not empty, before any work
    r = subprocess.run(["bash", str(REPO / "experiments" / "gpu" / "run.sh"), "--device", "cpu", "--out", str(out),
                        "--skip-install"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 2 and r.stderr.startswith("error: --out:")
