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
from collections.abc import Sequence
from typing import Any

from muxsim import __version__
from muxsim.cli.common import HelpFormatter
from muxsim.errors import InputError

# Subcommand modules, in the order --help lists them.
COMMANDS = ["workload", "plan", "simulate", "compare", "capacity", "plot", "cost", "calibrate", "profile", "execute", "sweep"]


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # argparse's own errors: one line, exit 2
        self.exit(2, f"error: {message}\n")


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
