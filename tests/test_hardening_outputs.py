"""Output paths: every command that writes refuses what it must not replace, before any
work, and writes atomically over a regular file or a new path, keeping modes.

Random (command, output path kind) pairs: FIFOs, symbolic links, devices, directories,
the command's own inputs (by path and by hard link), empty paths, trailing slashes and
missing folders are refused with exit 2, one line naming the flag and nothing changed
on disk; a regular file or a new path is written, and nothing else changes.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from muxsim.errors import InputError
from muxsim.io import check_output, write_bytes_atomic
from tests.hardening import (
    AZURE,
    assert_refused,
    bounded,
    changed,
    cli,
    small_workload,
    snapshot,
    workspace,
)


def _setup(d: Path) -> None:
    workspace(d)


# command -> (arguments with OUT where the output goes, flag named in errors, its input files)
COMMANDS = {
    "plan": (["plan", "wl.json", "--algorithm", "spatial", "--out", "OUT"], "--out", ["wl.json"]),
    "simulate": (["simulate", "plan.json", "wl.json", "--out", "OUT"], "--out", ["plan.json", "wl.json"]),
    "compare": (["compare", "wl.json", "--algorithms", "spatial", "--plot", "OUT"], "--plot", ["wl.json"]),
    "synth": (["workload", "synth", "--mix", "2xllama-7b", "--alpha", "1", "--max-rate", "2", "--nodes", "1",
               "--gpus-per-node", "2", "--duration", "5", "--out", "OUT"], "--out", []),
    "from-trace": (["workload", "from-trace", "az.csv", "--model", "llama-7b", "--trace-out", "OUT",
                    "--out", "ft.json"], "--trace-out", ["az.csv"]),
    "requests": (["workload", "requests", "wl.json", "--out", "OUT"], "--out", ["wl.json"]),
    "calibrate": (["calibrate", "prof.csv", "--out", "OUT"], "--out", ["prof.csv", "prof.models.json"]),
}
SUFFIX = {"compare": ".png", "from-trace": ".csv", "requests": ".csv"}
REFUSED = ["fifo", "symlink", "dangling-symlink", "device", "directory", "input", "hard-link-to-input", "empty",
           "trailing-slash", "missing-folder"]


def _make(kind: str, d: Path, command: str) -> str | None:
    """Create an output path of ``kind`` in ``d``; None when this machine cannot."""
    name = "out" + SUFFIX.get(command, ".json")
    p = d / name
    inputs = COMMANDS[command][2]
    if kind == "fifo":
        os.mkfifo(p)
    elif kind == "symlink":
        (d / "target.txt").write_text("keep")
        p.symlink_to("target.txt")
    elif kind == "dangling-symlink":
        p.symlink_to("nowhere.json")
    elif kind == "device":
        if os.geteuid() != 0:
            return "/dev/null"  # not replaceable without root, so safe to aim at
        try:  # as root, a device node of our own (never the machine's /dev/null)
            os.mknod(p, 0o600 | stat.S_IFCHR, os.makedev(1, 3))
        except OSError:
            return None
    elif kind == "directory":
        p.mkdir()
    elif kind == "input":
        return inputs[0] if inputs else None
    elif kind == "hard-link-to-input":
        if not inputs:
            return None
        os.link(d / inputs[0], p)
    elif kind == "empty":
        return ""
    elif kind == "trailing-slash":
        return "newdir/"
    elif kind == "missing-folder":
        return "missing/" + name
    return name


def _argv(command: str, out: str) -> list[str]:
    return [out if a == "OUT" else a for a in COMMANDS[command][0]]


@pytest.mark.parametrize("kind", REFUSED)
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_special_output_paths_are_refused_and_nothing_changes(command, kind):
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        _setup(d)
        out = _make(kind, d, command)
        if out is None:
            return
        before = snapshot(d)
        dev_before = os.stat(out) if out == "/dev/null" else None
        r = cli(*_argv(command, out), cwd=d)
        assert_refused(r, COMMANDS[command][1])
        assert changed(before, snapshot(d)) == set()
        if dev_before is not None:
            assert stat.S_ISCHR(os.stat(out).st_mode)


@pytest.mark.parametrize(("command", "mode", "exists"), [
    ("plan", 0o640, True), ("simulate", 0o600, True), ("compare", 0o444, True), ("synth", 0o664, True),
    ("from-trace", 0o640, True), ("requests", 0o600, False), ("calibrate", 0o664, False), ("plan", 0, False)])
def test_a_regular_or_new_file_is_written_keeping_its_mode_or_the_umask(command, mode, exists):
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        _setup(d)
        name = "out" + SUFFIX.get(command, ".json")
        if exists:
            (d / name).write_text("old")
            os.chmod(d / name, mode)
        before = snapshot(d)
        r = cli(*_argv(command, name), cwd=d)
        assert r.code == 0, r.err
        allowed = {name, "ft.json"} if command == "from-trace" else {name}
        assert changed(before, snapshot(d)) <= allowed  # nothing but the outputs
        got = stat.S_IMODE(os.stat(d / name).st_mode)
        if exists:
            assert got == mode
        else:
            umask = os.umask(0)
            os.umask(umask)
            assert got == 0o666 & ~umask
        assert not [p for p in d.iterdir() if p.name.endswith(".tmp")]


NAME_PARTS = st.sampled_from(["a", "b.json", ".", "..", "", "/", "//", "new", "wl.json", "plan.json", " ", "x\ny",
                               "é", "-", "*", "sub", "a" * 300])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["plan", "requests", "synth"]), st.lists(NAME_PARTS, min_size=1, max_size=4))
def test_random_output_paths_write_there_or_are_refused(command, parts):
    out = "".join(parts).lstrip("/")  # relative: inside the test's folder, never at the root
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        _setup(d)
        (d / "sub").mkdir()
        before = snapshot(d)
        if not out.strip("/") or not os.path.normpath(d / out).startswith(str(d) + os.sep):
            return  # a path that would leave the test's folder is not tried
        r = cli(*_argv(command, out), cwd=d)
        after = snapshot(d)
        if r.code == 2:
            assert_refused(r, COMMANDS[command][1])
            assert changed(before, after) == set()
        else:
            assert r.code == 0, r.err
            written = Path(os.path.normpath(d / out))
            assert written.is_file() and not written.is_symlink()
            assert {str((d / k).resolve()) for k in changed(before, after)} == {str(written.resolve())}
            assert written.resolve() not in {(d / f).resolve() for f in COMMANDS[command][2]}  # never an input


def test_output_paths_are_checked_before_the_work(tmp_path, monkeypatch):
    small_workload(tmp_path)
    (tmp_path / "dir.png").mkdir()
    import muxsim.cli.compare as compare

    monkeypatch.setattr(compare, "compare_runs", lambda *a, **k: pytest.fail("the run started"))
    assert_refused(cli("compare", "wl.json", "--plot", "dir.png", cwd=tmp_path), "--plot")


def test_the_default_trace_out_may_not_be_the_input(tmp_path):
    (tmp_path / "wl.trace.csv").write_text(AZURE)
    before = snapshot(tmp_path)
    assert_refused(cli("workload", "from-trace", "wl.trace.csv", "--model", "llama-7b", "--out", "wl.json",
                       cwd=tmp_path), "--trace-out", "wl.trace.csv")
    assert changed(before, snapshot(tmp_path)) == set()


def test_outputs_must_differ_and_a_workload_trace_is_an_input(tmp_path):
    (tmp_path / "az.csv").write_text(AZURE)
    assert_refused(cli("workload", "from-trace", "az.csv", "--model", "llama-7b", "--out", "x.json",
                       "--trace-out", "x.json", cwd=tmp_path), "--trace-out")
    assert cli("workload", "from-trace", "az.csv", "--model", "llama-7b", "--out", "t.json",
               cwd=tmp_path).code == 0
    assert cli("plan", "t.json", "--out", "p.json", cwd=tmp_path).code == 0
    before = snapshot(tmp_path)
    for argv in (["workload", "requests", "t.json", "--out", "t.trace.csv"],
                 ["simulate", "p.json", "t.json", "--out", "t.trace.csv"]):
        assert_refused(cli(*argv, cwd=tmp_path), "t.trace.csv", "trace")
    assert changed(before, snapshot(tmp_path)) == set()


def test_profile_refuses_its_outputs_and_sidecars_before_any_worker(tmp_path):
    (tmp_path / "p.models.json").mkdir()
    argv = ["profile", "--model", "tiny-1l-16h", "--device", "cpu", "--out", "p.csv"]
    assert_refused(cli(*argv, cwd=tmp_path), "--out models sidecar")
    assert_refused(cli("profile", "--model", "tiny-1l-16h", "--device", "cpu", "--out", "q.csv",
                       "--interference", "q.csv", cwd=tmp_path), "--interference")


def test_an_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "o.json"
    target.write_text("old")

    def boom(*_):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        write_bytes_atomic(target, b"new")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["o.json"]


def test_check_output_in_python(tmp_path):
    inp = tmp_path / "in.json"
    inp.write_text("{}")
    os.symlink(tmp_path, tmp_path / "again")
    with pytest.raises(InputError, match="also the workload"):  # the same file through a linked folder
        check_output(tmp_path / "again" / "in.json", "out", [("workload", inp)])
    for bad in (None, b"x", 3):
        with pytest.raises(InputError, match=r"^out: expected a file path"):
            check_output(bad)
    assert check_output(tmp_path / "new.json") == tmp_path / "new.json"


def test_a_fifo_output_in_a_bounded_subprocess(tmp_path):
    """Through the real command, under a memory limit and a timeout: nothing blocks on
    the FIFO (a write that opened it would wait for a reader forever)."""
    workspace(tmp_path)
    os.mkfifo(tmp_path / "o.json")
    assert_refused(bounded("plan", "wl.json", "--out", "o.json", cwd=tmp_path, timeout=60), "--out", "FIFO")
    assert stat.S_ISFIFO(os.lstat(tmp_path / "o.json").st_mode)
