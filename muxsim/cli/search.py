"""Options of the placement searches, shared by ``plan``, ``compare`` and ``capacity``:
the time limit and flex-slo's scoring (candidates simulated, horizon, seed, SLO scale).
Every flag is bounded (:mod:`muxsim.limits`); argparse names the flag on bad values."""

from __future__ import annotations

import argparse
from typing import Any

from muxsim.cli.common import SEED, number
from muxsim.limits import MAX_SCORE_BUDGET, MAX_SEARCH, MAX_SLO_SCALE, MAX_TIME_LIMIT_S, MAX_TIME_S

ALGORITHM_HELP = ("flex-slo (flex, candidates re-scored by short simulations on another draw of the workload), "
                  "flex (MuxServe's multiplexing with replicas, estimator only), muxserve (MuxServe's enumeration "
                  "greedy), greedy-memory, spatial (dedicated GPUs, spare ones spent), spatial-min (the paper's "
                  "spatial baseline), temporal (whole-mesh turns), ilp (exact among plans whose replicas run alone; "
                  "HiGHS)")


def add_search_options(p: argparse.ArgumentParser, *, time_limit: float | None = None) -> None:
    """--time-limit, and flex-slo's --budget, --score-horizon, --score-seed,
    --score-sample and --slo-scale (``time_limit``: the default of --time-limit)."""
    from muxsim.placement.scoring import HORIZON_S, SAMPLES
    from muxsim.placement.slo import BUDGET

    default = ("no limit but the ilp's 60 s; searches of over "
               f"{MAX_SEARCH:,} LLM x mesh fills need one") if time_limit is None else f"{time_limit:g}"
    p.add_argument("--time-limit", type=number(0, MAX_TIME_LIMIT_S, lo_open=True), default=time_limit, metavar="S",
                   help="stop each search after S seconds, model building included (ilp: best found so far, with "
                        f"its gap; default: {default})")
    p.add_argument("--budget", type=number(1, MAX_SCORE_BUDGET, integer=True), default=BUDGET, metavar="N",
                   help="flex-slo: candidate plans it simulates")
    p.add_argument("--score-horizon", type=number(0, MAX_TIME_S, lo_open=True), default=HORIZON_S, metavar="S",
                   help="flex-slo: seconds of requests each candidate is simulated on")
    p.add_argument("--score-seed", type=SEED, default=None, metavar="N",
                   help="flex-slo: seed of the scoring draw (default: the evaluation run's seed + 1, the workload's "
                        "seed + 1 for plan; the evaluation seed itself is refused outside --score-sample oracle)")
    p.add_argument("--score-sample", choices=list(SAMPLES), default=SAMPLES[0],
                   help="flex-slo: what candidates are simulated on: draw (a fresh draw of the workload; for a "
                        "trace, of its per-LLM rates, burstiness and lengths), blocks (a trace's own 10 s blocks "
                        "resampled: in-sample), oracle (the evaluation run itself: an upper bound for experiments, "
                        "not a way to place)")
    p.add_argument("--slo-scale", type=number(0, MAX_SLO_SCALE, lo_open=True), default=None, metavar="X",
                   help="SLO attainment at X times each request's latency alone: what flex-slo maximizes and "
                        "capacity reaches (default: the workload's absolute targets if it sets any, else 8)")


def search_options(algorithm: str, args: argparse.Namespace, eval_seed: int | None = None) -> dict[str, Any]:
    """The options ``algorithm`` takes from the parsed command line; ``eval_seed``: the
    seed the plan is then simulated with (flex-slo's scoring draw avoids it)."""
    opts: dict[str, Any] = {}
    time_limit = getattr(args, "time_limit", None)
    if time_limit is not None:
        opts["time_limit_s"] = time_limit
    if algorithm == "flex-slo":
        given = (("budget", "budget"), ("score_horizon_s", "score_horizon"), ("score_seed", "score_seed"),
                 ("score_sample", "score_sample"), ("slo_scale", "slo_scale"))
        opts.update({k: getattr(args, a) for k, a in given if getattr(args, a, None) is not None})
        if eval_seed is not None:
            opts["eval_seed"] = eval_seed
    return opts
