"""The README and the docs as written: their Python blocks run, their command lines parse,
their links point at files that exist."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks(path: Path, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", path.read_text(), flags=re.S)


def test_readme_python_blocks_run_as_written(tmp_path):
    code = blocks(ROOT / "README.md", "python")
    assert code
    script = tmp_path / "readme.py"
    script.write_text("\n\n".join(code))
    env = {**os.environ, "MPLBACKEND": "Agg"}
    r = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env=env)
    assert r.returncode == 0, r.stderr[-2000:]


@pytest.mark.parametrize("path", DOCS, ids=[p.name for p in DOCS])
def test_documented_command_lines_parse(path):
    from muxsim.cli.main import build_parser

    parser = build_parser()
    lines = [ln.split("  #")[0].strip() for b in blocks(path, "bash") for ln in b.replace("\\\n", " ").splitlines()]
    commands = [ln for ln in lines if ln.startswith("muxsim ")]
    for cmd in commands:
        try:
            parser.parse_args(shlex.split(cmd)[1:])
        except SystemExit as e:
            pytest.fail(f"{path.name}: `{cmd}` does not parse (exit {e.code})")


@pytest.mark.parametrize("path", DOCS, ids=[p.name for p in DOCS])
def test_links_point_inside_the_repository(path):
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text()):
        if target.startswith(("http://", "https://")):
            continue
        assert (path.parent / target).exists(), f"{path.name}: link to missing {target}"


def test_every_cited_document_is_in_the_repository():
    """A Markdown file named in code or docs is a file of the repository (relative to the
    citing file, to the root, or by its name)."""
    files = [p for p in ROOT.rglob("*") if p.is_file() and not {".venv", ".git"} & set(p.parts)]
    names = {p.name for p in files}
    cited = re.compile(r"(?<![\w/.-])([A-Za-z0-9_][A-Za-z0-9_./-]*\.md)\b")
    missing = []
    for p in files:
        if p.suffix not in (".py", ".md", ".toml", ".ipynb", ".yaml"):
            continue
        for name in cited.findall(p.read_text(errors="ignore")):
            if not ((p.parent / name).exists() or (ROOT / name).exists() or Path(name).name in names):
                missing.append(f"{p.relative_to(ROOT)}: {name}")
    assert not missing
