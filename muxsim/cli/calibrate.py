"""``muxsim calibrate``: fit the analytic cost model to a measured profile."""

from __future__ import annotations

import argparse
from typing import Any

from muxsim.cli.common import (
    SEED,
    add_format,
    bounded_text,
    check_outputs,
    check_suffix,
    format_table,
    number,
    print_json,
)
from muxsim.limits import MAX_PATH_CHARS


def register(sub: Any) -> None:
    p = sub.add_parser("calibrate", help="fit the analytic cost model to measured rows",
                       description="Fit the analytic model's efficiency parameters to a profile (least squares "
                                   "on log latency) and write them as PARAMS.json; the fit error is reported "
                                   "on rows not used for fitting. With --vidur, fit every kernel, all-reduce "
                                   "and engine parameter to a Vidur data/profiling tree instead.")
    p.add_argument("profile", nargs="?", help="profile CSV/JSONL in the tidy schema (or give --vidur)")
    p.add_argument("--vidur", metavar="DIR",
                   help="a Vidur data/profiling tree (or a checkout holding one): operator, all-reduce and "
                        "CPU-overhead timings, .csv or .csv.xz")
    p.add_argument("--lomo", action="store_true",
                   help="with --vidur: also report the leave-one-model-out error (one more fit per model)")
    p.add_argument("--source", metavar="TEXT", type=bounded_text(MAX_PATH_CHARS),
                   help="with --vidur: where the tree came from (repository, commit), recorded in PARAMS.json's "
                        "provenance (default: Vidur's repository)")
    p.add_argument("--out", required=True, help="where to write PARAMS.json (.json)")
    p.add_argument("--gpu", help="GPU of the rows to fit (needed when the profile covers several; "
                                 "required with --vidur)")
    p.add_argument("--train", metavar="FILTER",
                   help="the rows to fit, e.g. \"model == 'llama-7b' and tp == 1 and sm_pct >= 50\": comparisons "
                        "of the profile's columns with strings, numbers or lists (in [...]) joined by and, or, not "
                        "and parentheses (nothing is evaluated as code); the rest are held out")
    p.add_argument("--holdout", type=number(0, 1), default=0.25,
                   help="without --train: fraction of rows held out at random, in [0, 1) (default 0.25)")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the random split (default 0)")
    add_format(p, ("table", "json"))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from muxsim.errors import InputError
    from muxsim.io import write_json_atomic

    if (args.profile is None) == (args.vidur is None):
        raise InputError("calibrate: give a PROFILE or --vidur DIR (one of the two)")
    check_suffix(args.out, (".json",), "--out")
    if args.vidur is not None:
        from muxsim.costmodel.vidur_fit import params_document

        files = _vidur_files(args)
        inputs = [("Vidur file", p) for p in files.paths()]
        check_outputs([("--out", args.out)], inputs)
        model, lines = _fit_vidur(args, files)
    else:
        from muxsim.costmodel.calibrate import params_document
        from muxsim.costmodel.profile import sidecar_paths

        if args.lomo or args.source:
            raise InputError(f"{'--lomo' if args.lomo else '--source'}: only with --vidur")
        inputs = [("profile", args.profile), *(("profile sidecar", p) for p in sidecar_paths(args.profile))]
        check_outputs([("--out", args.out)], inputs)
        model, lines = _fit_profile(args)
    doc = params_document(model)
    write_json_atomic(args.out, doc, inputs=inputs)
    if args.format == "json":
        print_json(doc)
        return 0
    print("\n".join(lines))
    print(f"wrote {args.out}")
    return 0


def _fit_profile(args: argparse.Namespace) -> tuple[Any, list[str]]:
    from muxsim.costmodel import calibrate

    model = calibrate(args.profile, args.gpu, train=args.train, holdout=args.holdout, seed=args.seed)
    rep = model.calibration
    lines = [f"fitted {', '.join(rep.fitted)} on {rep.n_train} rows ({rep.gpu})",
             f"error on {rep.eval_on}, {rep.n_eval} rows: median {rep.median_ape:.2f}%, p90 {rep.p90_ape:.2f}%",
             format_table([{"parameter": k, "value": v} for k, v in rep.params.items()])]
    if rep.per_group:
        lines.append(format_table(rep.per_group))
    return model, lines


def _vidur_files(args: argparse.Namespace) -> Any:
    """The files a Vidur fit will read (the tree is listed, nothing is read yet)."""
    from muxsim.costmodel.vidur import tree_files
    from muxsim.errors import InputError
    from muxsim.gpus import get_gpu

    if args.gpu is None:
        raise InputError("--gpu: required with --vidur (e.g. a100-80gb)")
    if args.train is not None:
        raise InputError("--train: not with --vidur (Vidur fits use every row; --lomo holds out whole models)")
    return tree_files(args.vidur, get_gpu(args.gpu, "--gpu"))


def _fit_vidur(args: argparse.Namespace, files: Any) -> tuple[Any, list[str]]:
    from muxsim.costmodel.vidur_fit import calibrate_vidur, load_vidur

    data = load_vidur(files, args.gpu)
    model = calibrate_vidur(data, data.gpu, lomo=args.lomo, source=args.source)
    rep = model.calibration
    lines = [f"fitted {rep.gpu} to {len(rep.files)} files of {rep.source}", format_table(rep.models)]
    for name, err in [("in sample", rep.in_sample), ("leave one model out", rep.leave_one_model_out)]:
        if err:
            lay = err["layer"]
            lines.append(f"layer (profiled operators + two all-reduces), {name}: median "
                         f"{lay['ape_pct']['p50']:.2f}%, p90 {lay['ape_pct']['p90']:.2f}% over {lay['points']} points")
    return model, lines + [f"note: {note}" for note in rep.notes]
