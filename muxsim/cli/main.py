"""Entry point of the ``muxsim`` command.

Each subcommand lives in its own module of this package and exposes
``register(subparsers)``, which adds its parser and sets ``func`` to a callable taking
the parsed arguments and returning an exit status. Bad input raises
:class:`muxsim.errors.InputError`: one line ``error: ...`` on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from muxsim import __version__
from muxsim.cli.common import HelpFormatter
from muxsim.errors import InputError

# Subcommand modules, in the order --help lists them.
COMMANDS = ["workload", "plan", "simulate", "compare", "capacity", "plot", "cost", "calibrate", "fidelity", "profile",
            "execute", "validate", "export", "sweep"]


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # argparse's own errors: one line naming the flag, exit 2
        self.exit(2, f"error: {' '.join(message.removeprefix('argument ').split())}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="muxsim",
        description="Plan and simulate many LLMs sharing GPUs (MuxServe's spatial-temporal multiplexing).",
    )
    parser.add_argument("--version", action="version", version=f"muxsim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"muxsim.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"muxsim.cli.{name}":
                continue  # not built yet
            raise
        module.register(sub)
    return parser


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    """Warnings as one line ``warning: <message>`` on stderr."""
    text = " ".join(str(message).split())
    print(f"warning: {text}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, or argparse's one-line error (already printed)
        return e.code if isinstance(e.code, int) else 2
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            return int(args.func(args) or 0)
        except InputError as e:
            print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
            return 2
        except BrokenPipeError:
            return 0
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            return 130
        except MemoryError:  # a bound that should have refused the input did not: a bug
            print("error: out of memory (please report the input that caused it)", file=sys.stderr)
            return 1


if __name__ == "__main__":
    raise SystemExit(main())
