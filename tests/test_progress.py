"""Progress bars: on a terminal only, never with --quiet, never on stdout, never changing a result."""

from __future__ import annotations

import fcntl
import json
import math
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

import muxsim as mx
from tests.test_run_folder import PLAN, WORKLOAD


@pytest.mark.parametrize("drain", [None, math.inf])
def test_progress_changes_no_result(drain):
    """Also with an unbounded drain (the run ends when nothing can change any more): the
    sliced run ends, within a minute, with the same results."""
    from muxsim.plan import plan_from_dict
    from muxsim.workload import Workload

    wl = Workload.from_dict(WORKLOAD)
    plan = plan_from_dict(PLAN)
    config = mx.SimConfig() if drain is None else mx.SimConfig(drain_s=drain)
    seen = []

    def hang(*_):
        raise TimeoutError("the run with progress did not end")

    old = signal.signal(signal.SIGALRM, hang)
    signal.alarm(60)
    try:
        with_bar = mx.simulate(plan, wl, seed=2, config=config,
                               progress=lambda done, total: seen.append((done, total)))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    plain = mx.simulate(plan, wl, seed=2, config=config)
    a, b = with_bar.to_dict(), plain.to_dict()
    a["run"].pop("wall_s")
    b["run"].pop("wall_s")
    assert a == b
    total = with_bar.aggregate["requests"]
    assert seen and all(t == total for _, t in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and seen[-1][0] == with_bar.aggregate["completed"]
    doc = json.loads(with_bar.to_json(), parse_constant=lambda c: pytest.fail(f"{c} is not standard JSON"))
    assert doc["run"]["drain_limit_s"] == (None if drain else with_bar.run["drain_limit_s"])  # unbounded: null


def _on_a_terminal(args: list[str]) -> str:
    """Run muxsim with stderr on a pseudo-terminal (stdout a pipe); what the terminal got."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a 100-column terminal
    p = subprocess.Popen([sys.executable, "-m", "muxsim.cli.main", *args], stdout=subprocess.PIPE,
                         stderr=follower)
    os.close(follower)
    out = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    p.wait(timeout=120)
    os.close(leader)
    assert p.returncode == 0
    json.loads(p.stdout.read())  # stdout holds the document alone
    return out.decode(errors="replace")


def test_a_bar_on_a_terminal_none_with_quiet_or_in_a_pipe(tmp_path: Path):
    wl, plan = tmp_path / "wl.json", tmp_path / "plan.json"
    wl.write_text(json.dumps(WORKLOAD))
    plan.write_text(json.dumps(PLAN))
    args = ["simulate", str(plan), str(wl), "--format", "json"]
    shown = _on_a_terminal(args)
    assert "simulate" in shown and "req" in shown
    assert _on_a_terminal([*args, "--quiet"]) == ""
    piped = subprocess.run([sys.executable, "-m", "muxsim.cli.main", *args], capture_output=True, text=True,
                           timeout=120)
    assert piped.returncode == 0 and piped.stderr == ""
