"""Output paths: every command that writes refuses what it must not replace, before any
work, and writes atomically over a regular file or a new path, keeping modes.

Random (command, output path kind) pairs: FIFOs, symbolic links, devices, directories,
the command's own inputs (by path and by hard link), empty paths, trailing slashes and
missing folders are refused with exit 2, one line naming the flag and nothing changed
on disk; a regular file or a new path is written, and nothing else changes.
"""

from __future__ import annotations

import atexit
import os
import shutil
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
    VIDUR_FILES,
    assert_refused,
    bounded,
    changed,
    cli,
    small_workload,
    snapshot,
    vidur_tree,
    workspace,
)


def _setup(d: Path) -> None:
    workspace(d)
    vidur_tree(d)
    (d / "p.json").write_text('{"gpu": "a100-80gb", "params": {}}')


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
    "requests-parquet": (["workload", "requests", "wl.json", "--out", "OUT"], "--out", ["wl.json"]),
    "requests-jsonl-gz": (["workload", "requests", "wl.json", "--out", "OUT"], "--out", ["wl.json"]),
    "compare-svg": (["compare", "wl.json", "--algorithms", "spatial", "--plot", "OUT"], "--plot", ["wl.json"]),
    "compare-pdf": (["compare", "wl.json", "--algorithms", "spatial", "--plot", "OUT"], "--plot", ["wl.json"]),
    "capacity": (["capacity", "wl.json", "--algorithm", "spatial", "--max-gpus", "2", "--plot", "OUT"], "--plot",
                 ["wl.json"]),
    "compare-capacity": (["compare", "wl.json", "--algorithms", "spatial", "--capacity", "--max-gpus", "2", "--plot",
                          "OUT"], "--plot", ["wl.json"]),
    "calibrate": (["calibrate", "prof.csv", "--out", "OUT"], "--out", ["prof.csv", "prof.models.json"]),
    "calibrate-vidur": (["calibrate", "--vidur", "vid", "--gpu", "a100-80gb", "--out", "OUT"], "--out",
                        VIDUR_FILES),
    "fidelity": (["fidelity", "--vidur", "vid", "--gpu", "a100-80gb", "--plot", "OUT"], "--plot", VIDUR_FILES),
    "fidelity-params": (["fidelity", "--vidur", "vid", "--params", "p.json", "--plot", "OUT"], "--plot",
                        ["p.json", *VIDUR_FILES]),
}
SUFFIX = {"compare": ".png", "capacity": ".png", "compare-capacity": ".svg", "from-trace": ".csv", "requests": ".csv", "requests-parquet": ".parquet",
          "requests-jsonl-gz": ".jsonl.gz", "compare-svg": ".svg", "compare-pdf": ".pdf", "fidelity": ".png",
          "fidelity-params": ".svg"}
REFUSED = ["fifo", "symlink", "dangling-symlink", "device", "directory", "input", "hard-link-to-input", "empty",
           "trailing-slash", "missing-folder"]


# ---- folders: run folders (--out-dir) and the figures of `muxsim plot` ----------------------------------
# command -> (arguments with OUT where the folder goes, flag named in errors, its input files)
DIR_COMMANDS = {
    "simulate": (["simulate", "plan.json", "wl.json", "--out-dir", "OUT", "--no-figures"], "--out-dir",
                 ["plan.json", "wl.json"]),
    "compare": (["compare", "wl.json", "--algorithms", "spatial", "--out-dir", "OUT", "--no-figures"], "--out-dir",
                ["wl.json"]),
    "plot": (["plot", "run", "--out", "OUT"], "--out", ["run/run.json", "run/summary.json"]),
    "export": (["export", "plan.json", "--to", "vllm", "--out", "OUT"], "--out", ["plan.json"]),
    "sweep": (["sweep", "sw.yaml", "--out-dir", "OUT", "-q"], "--out-dir", ["sw.yaml"]),
}
DIR_REFUSED = ["fifo", "symlink", "dangling-symlink", "device", "file", "input", "hard-link-to-input", "empty", "dot",
               "missing-folder", "non-empty-folder", "folder-holding-input"]
PLOT_ACCEPTS = {"non-empty-folder", "folder-holding-input", "dot"}  # plot draws into an existing folder
_RUN: dict[str, Path] = {}


def _dir_setup(d: Path) -> None:
    """The workspace and a run folder ``run`` (figures left out; made once per process)."""
    workspace(d)
    if "run" not in _RUN:
        keep = Path(tempfile.mkdtemp(prefix="muxsim-run-"))
        atexit.register(shutil.rmtree, keep, True)  # removed when the test process ends
        workspace(keep)
        assert cli("simulate", "plan.json", "wl.json", "--out-dir", "run", "--no-figures", cwd=keep).code == 0
        _RUN["run"] = keep / "run"
    shutil.copytree(_RUN["run"], d / "run")


def _dir_argv(command: str, out: str) -> list[str]:
    return [out if a == "OUT" else a for a in DIR_COMMANDS[command][0]]


def _make_folder(kind: str, d: Path, inputs: list[str]) -> str | None:
    """The kinds that differ for a folder output (see :func:`_make`)."""
    p = d / "out"
    if kind == "symlink":
        (d / "elsewhere").mkdir()
        p.symlink_to("elsewhere")
    elif kind == "file":
        p.write_text("keep")
    elif kind == "dot":
        return "."
    elif kind == "non-empty-folder":
        p.mkdir()
        (p / "mine.txt").write_text("keep")
    elif kind == "folder-holding-input":
        return str(Path(inputs[0]).parent) if "/" in inputs[0] else "."
    return "out"


def _make(kind: str, d: Path, command: str, folder: bool = False) -> str | None:
    """Create an output path of ``kind`` in ``d`` (for a folder output with ``folder``);
    None when this machine cannot."""
    inputs = (DIR_COMMANDS if folder else COMMANDS)[command][2]
    if folder and kind in {"symlink", "file", "dot", "non-empty-folder", "folder-holding-input"}:
        return _make_folder(kind, d, inputs)
    name = "out" if folder else "out" + SUFFIX.get(command, ".json")
    p = d / name
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


REFUSED_CASES = [(c, k, False) for c in sorted(COMMANDS) for k in REFUSED] + [
    (c, k, True) for c in sorted(DIR_COMMANDS) for k in DIR_REFUSED if not (c == "plot" and k in PLOT_ACCEPTS)]


@pytest.mark.parametrize(("command", "kind", "folder"), REFUSED_CASES,
                         ids=[f"{c}-{k}{'-folder' if f else ''}" for c, k, f in REFUSED_CASES])
def test_special_output_paths_are_refused_before_the_work_and_nothing_changes(command, kind, folder, monkeypatch):
    """Every file output and every folder output (run folders, plot's folder; for plot
    an existing folder is fine, see test_plot_draws_into_an_existing_folder_...)."""
    import muxsim.costmodel.vidur as vidur
    import muxsim.plot.figures as figures
    import muxsim.sim as sim

    table = DIR_COMMANDS if folder else COMMANDS
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (_dir_setup if folder else _setup)(d)
        out = _make(kind, d, command, folder)
        if out is None:
            return
        before = snapshot(d)
        dev_before = os.stat(out) if out == "/dev/null" else None
        monkeypatch.setattr(sim, "simulate", lambda *a, **k: pytest.fail("the run started"))
        monkeypatch.setattr(figures, "save", lambda *a, **k: pytest.fail("a figure was drawn"))
        monkeypatch.setattr(vidur, "read_tree", lambda *a, **k: pytest.fail("the Vidur tree was read"))
        r = cli(*[out if a == "OUT" else a for a in table[command][0]], cwd=d)
        assert_refused(r, table[command][1])
        assert changed(before, snapshot(d)) == set()
        if dev_before is not None:
            assert stat.S_ISCHR(os.stat(out).st_mode)


@pytest.mark.parametrize(("command", "mode", "exists"), [
    ("plan", 0o640, True), ("simulate", 0o600, True), ("compare", 0o444, True), ("synth", 0o664, True),
    ("from-trace", 0o640, True), ("requests", 0o600, False), ("calibrate", 0o664, False), ("plan", 0, False),
    ("requests-parquet", 0o640, True), ("requests-jsonl-gz", 0, False), ("calibrate-vidur", 0o640, True),
    ("calibrate-vidur", 0, False), ("fidelity", 0o600, True), ("fidelity-params", 0, False)])
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


@pytest.mark.parametrize(("command", "kind"), [("simulate", "new"), ("simulate", "empty-folder"),
                                               ("compare", "trailing-slash"), ("plot", "new"),
                                               ("sweep", "new"), ("sweep", "empty-folder")])
def test_a_new_or_empty_folder_is_built_whole_and_nothing_else_changes(command, kind):
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        _dir_setup(d)
        out = "out/" if kind == "trailing-slash" else "out"
        if kind == "empty-folder":
            (d / "out").mkdir(mode=0o750)
            os.chmod(d / "out", 0o750)
        before = snapshot(d)
        r = cli(*_dir_argv(command, out), cwd=d)
        assert r.code == 0, r.err
        assert {k.split("/")[0] for k in changed(before, snapshot(d))} == {"out"}
        assert (d / "out").is_dir() and not (d / "out").is_symlink() and any((d / "out").iterdir())
        assert not [p for p in d.iterdir() if p.name.endswith(".tmp")]
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o750 if kind == "empty-folder" else 0o777 & ~umask
        assert stat.S_IMODE(os.stat(d / "out").st_mode) == mode


def test_plot_draws_into_an_existing_folder_replacing_only_figures(tmp_path, monkeypatch):
    _dir_setup(tmp_path)
    figs = tmp_path / "run" / "figures"
    figs.mkdir()
    (figs / "mine.txt").write_text("keep")
    (tmp_path / "target.png").write_bytes(b"keep")
    (figs / "ttft_cdf.png").symlink_to(tmp_path / "target.png")
    import muxsim.plot.figures as figures

    before = snapshot(tmp_path)
    with monkeypatch.context() as m:
        m.setattr(figures, "save", lambda *a, **k: pytest.fail("a figure was drawn"))
        assert_refused(cli("plot", "run", cwd=tmp_path), "--out", "symbolic link")
    assert changed(before, snapshot(tmp_path)) == set()
    (figs / "ttft_cdf.png").unlink()
    (figs / "tpot_cdf.png").write_bytes(b"old")
    before = snapshot(tmp_path)
    r = cli("plot", "run", "--out", "run", cwd=tmp_path)  # into the run folder itself: its files are inputs
    assert r.code == 0, r.err
    drawn = changed(before, snapshot(tmp_path)) - {"run"}  # the folder's own mtime changes too
    assert drawn and all(k.startswith("run/") and k.endswith(".png") and k.count("/") == 1 for k in drawn)
    assert (figs / "mine.txt").read_text() == "keep" and (figs / "tpot_cdf.png").read_bytes() == b"old"


def test_outputs_inside_a_run_folder_or_equal_to_it_are_refused(tmp_path):
    workspace(tmp_path)
    (tmp_path / "r").mkdir()
    before = snapshot(tmp_path)
    assert_refused(cli("simulate", "plan.json", "wl.json", "--out-dir", "r", "--out", "r/x.json", cwd=tmp_path),
                   "--out", "--out-dir")
    assert_refused(cli("compare", "wl.json", "--out-dir", "c.png", "--plot", "c.png", cwd=tmp_path), "--plot")
    assert changed(before, snapshot(tmp_path)) == set()


FOLDER_PARTS = st.sampled_from(["a", "new", ".", "..", "", "/", "full", "empty", "fifo", "link", "file", "wl.json",
                                "sub", " ", "é", "x\ny"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(FOLDER_PARTS, min_size=1, max_size=3))
def test_random_folder_paths_are_built_or_refused(parts):
    """``io.write_dir_atomic`` over random paths among special files: it builds a new or
    empty folder whole, or refuses with an InputError and changes nothing."""
    from muxsim.io import write_dir_atomic

    out = "/".join(parts).lstrip("/")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "wl.json").write_text("{}")
        (d / "full").mkdir()
        (d / "full" / "f").write_text("x")
        (d / "empty").mkdir()
        (d / "sub").mkdir()
        os.mkfifo(d / "fifo")
        (d / "link").symlink_to("empty")
        (d / "file").write_text("x")
        if not out.strip("/") or not os.path.normpath(d / out).startswith(str(d) + os.sep):
            return  # a path that would leave the test's folder is not tried
        before = snapshot(d)
        try:
            write_dir_atomic(d / out, lambda tmp_dir: (tmp_dir / "f.txt").write_text("new"),
                             inputs=[("workload", d / "wl.json")])
        except InputError as e:
            assert str(e).startswith("--out-dir: ") and "\n" not in str(e)
            assert changed(before, snapshot(d)) == set()
            return
        built = Path(os.path.normpath(d / out))
        assert (built / "f.txt").read_text() == "new" and sorted(os.listdir(built)) == ["f.txt"]
        assert not built.is_symlink() and built.parent.resolve() != built.resolve()
        allowed = {built, built / "f.txt", built.parent}  # the folder above: its mtime
        assert {(d / k).resolve() for k in changed(before, snapshot(d))} <= {p.resolve() for p in allowed}


def test_a_model_named_by_alias_is_no_input_file(tmp_path):
    """A Hugging Face id or alias names a catalog model, not a config.json path: a folder
    of that name may be written (only files a workload or plan reads are inputs)."""
    from muxsim.io import check_outputs
    from muxsim.plan import plan_from_dict
    from muxsim.plancheck import plan_files
    from muxsim.workload import Workload, input_files
    from tests.test_run_folder import PLAN, WORKLOAD

    wl = Workload.from_dict(WORKLOAD)
    assert "meta-llama/Llama-2-7b-hf" in [m.model for m in wl.models] and input_files(wl) == []
    units = [{**u, "model": "huggyllama/llama-7b" if u["name"] == "zeta" else u["model"]}
             for u in PLAN["meshes"][0]["units"]]
    plan = plan_from_dict({**PLAN, "meshes": [{**PLAN["meshes"][0], "units": units}]})
    assert plan_files(plan) == []
    check_outputs([], input_files(wl) + plan_files(plan), dirs=[("--out-dir", tmp_path / "meta-llama")])
