"""Every command's --help: each option and argument says what it is, each default is shown."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from muxsim.cli.main import build_parser


def _parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


PARSERS = list(_parsers(build_parser()))


@pytest.mark.parametrize("path,parser", PARSERS, ids=[" ".join(p) or "muxsim" for p, _ in PARSERS])
def test_every_flag_has_help_and_shows_its_default(path, parser):
    text = parser.format_help()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            continue
        name = action.option_strings[-1] if action.option_strings else action.dest
        assert action.help and action.help.strip(), f"muxsim {' '.join(path)} {name}: no help text"
        has_default = action.option_strings and action.default not in (None, False, argparse.SUPPRESS)
        if has_default:
            rendered = parser._get_formatter()._get_help_string(action)
            assert "default" in rendered, f"muxsim {' '.join(path)} {name}: default {action.default!r} not shown"
    assert "(default: None)" not in text


def test_help_through_a_subprocess_lists_every_command():
    r = subprocess.run([sys.executable, "-m", "muxsim.cli.main", "--help"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0
    for cmd in ("workload", "plan", "simulate", "compare", "plot", "cost", "calibrate", "profile"):
        assert cmd in r.stdout
    r = subprocess.run([sys.executable, "-m", "muxsim.cli.main", "compare", "--help"], capture_output=True,
                       text=True, timeout=60)
    assert "--out-dir" in r.stdout and "(default: 60.0)" in r.stdout
