"""``muxsim plot RUN_DIR``: the figures of a run folder (``simulate``/``compare --out-dir``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from muxsim.cli.common import add_quiet


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("plot", help="draw the figures of a run folder",
                              description="Draw latency CDFs per model, SLO attainment against the SLO scale, "
                                          "throughput against the offered rate, utilization per mesh and the "
                                          "plan(s) of a run folder written by --out-dir.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder (simulate or compare --out-dir)")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="the folder the figures go to: an existing one (figures of the same name are replaced) or "
                        "a new one in a folder that exists (default: RUN_DIR/figures)")
    p.add_argument("--image-format", choices=["png", "svg", "pdf"], default="png", help="file format of the figures")
    add_quiet(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from muxsim.runfolder import check_figures_out, folder_inputs, read_run_folder, write_figures

    folder = read_run_folder(args.run_dir)
    out = args.out if args.out is not None else str(Path(args.run_dir) / "figures")
    inputs = folder_inputs(folder)
    check_figures_out(folder, out, args.image_format, field="--out", inputs=inputs)  # before any drawing
    names = write_figures(folder, out, args.image_format, quiet=args.quiet, field="--out", inputs=inputs)
    print(f"wrote {len(names)} figures to {out.rstrip('/')}/: {', '.join(names)}")
    return 0
