"""``muxsim calibrate``: fit the analytic cost model to a measured profile."""

from __future__ import annotations

import argparse
from typing import Any

from muxsim.cli.common import (
    SEED,
    add_format,
    check_outputs,
    check_suffix,
    format_table,
    number,
    print_json,
)


def register(sub: Any) -> None:
    p = sub.add_parser("calibrate", help="fit the analytic cost model to measured rows",
                       description="Fit the analytic model's efficiency parameters to a profile (least squares "
                                   "on log latency) and write them as PARAMS.json; the fit error is reported "
                                   "on rows not used for fitting.")
    p.add_argument("profile", help="profile CSV/JSONL in the tidy schema")
    p.add_argument("--out", required=True, help="where to write PARAMS.json (.json)")
    p.add_argument("--gpu", help="GPU of the rows to fit (needed when the profile covers several)")
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
    from muxsim.costmodel import calibrate
    from muxsim.costmodel.calibrate import params_document
    from muxsim.costmodel.profile import sidecar_paths
    from muxsim.io import write_json_atomic

    check_suffix(args.out, (".json",), "--out")
    inputs = [("profile", args.profile), *(("profile sidecar", p) for p in sidecar_paths(args.profile))]
    check_outputs([("--out", args.out)], inputs)
    model = calibrate(args.profile, args.gpu, train=args.train, holdout=args.holdout, seed=args.seed)
    doc = params_document(model)
    write_json_atomic(args.out, doc, inputs=inputs)
    if args.format == "json":
        print_json(doc)
        return 0
    rep = model.calibration
    print(f"fitted {', '.join(rep.fitted)} on {rep.n_train} rows ({rep.gpu})")
    print(f"error on {rep.eval_on}, {rep.n_eval} rows: median {rep.median_ape:.2f}%, p90 {rep.p90_ape:.2f}%")
    print(format_table([{"parameter": k, "value": v} for k, v in rep.params.items()]))
    if rep.per_group:
        print(format_table(rep.per_group))
    print(f"wrote {args.out}")
    return 0
