"""SLO-aware placement (``flex-slo``): estimator-ranked candidates, re-scored by simulation.

The estimator judges a plan by its mean throughput; it cannot see the queues that bursts
build, nor how much headroom a mesh keeps. So this search makes a short list of plans
the estimator rates well and lets the simulator pick:

1. the estimator's best plan: the ``flex`` search (:mod:`~muxsim.placement.flex`)
   from every baseline's plan;
2. the strong ``spatial`` baseline's plan;
3. the estimator's best plan searched again for headroom: capacity counted up to
   ``h`` x each LLM's rate, for each ``h`` of ``headrooms`` (plans that keep a margin
   where bursts need one);
4. the ``flex`` search's answers from the other starts, and the other baselines' plans.

Only candidates the estimator rates at least as high as every baseline's plan stay (so
this search, like ``flex``, never returns a plan rated below one it could construct).
The first ``budget`` of them, in this order, are simulated on a scoring sample
(:class:`~muxsim.placement.scoring.SimScorer`; by default a fresh draw of the workload
with another seed over a shorter horizon, sharing no request with the evaluation run;
``score_sample="oracle"`` scores on the evaluation run itself and says so in its
message: an upper bound for experiments, not a placement). No candidate that serves less
than the ``spatial`` plan on the scoring sample (by more than one standard error) is
kept; of the others the highest SLO attainment wins, then the highest throughput, then
the order above, where differences within one standard error of the scoring sample
count as ties (the simulator overrules the estimator only where it can tell the plans
apart). The objective is attainment at
``slo_scale`` x each request's latency alone, or the workload's absolute TTFT / TPOT /
end-to-end targets when it sets them and no scale is given.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from muxsim.errors import InputError
from muxsim.placement.estimator import Estimator
from muxsim.placement.flex import (
    MAX_MOVES,
    Assignment,
    Replicas,
    Search,
    baseline_starts,
    plan_of,
    search_from,
)
from muxsim.placement.result import FEASIBLE, INFEASIBLE, Deadline, PlacementResult
from muxsim.placement.scoring import HORIZON_S, SAMPLES, SimScorer

BUDGET = 6  # candidate plans simulated
HEADROOMS = (1.2, 1.5)  # capacity margins the extra candidates are searched for


def flex_slo(est: Estimator, *, workload: Any = None, sim_config: Any = None, budget: int = BUDGET,
             score_horizon_s: float = HORIZON_S, score_seed: int | None = None, slo_scale: float | None = None,
             headrooms: tuple[float, ...] = HEADROOMS, max_groups: int = 400, time_limit_s: float | None = None,
             max_moves: int = MAX_MOVES, score_sample: str = SAMPLES[0], eval_seed: int | None = None,
             cost: Any = None, memory: Any = None) -> PlacementResult:
    """See the module doc. ``eval_seed``: the seed the plan will be evaluated with
    (default: the workload's); the scoring draw avoids it (default: ``eval_seed + 1``)."""
    start = time.perf_counter()
    if workload is None or not hasattr(workload, "slo_targets"):
        raise InputError("algorithm: flex-slo simulates candidate plans and needs a workload (workload.json)")
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise InputError(f"budget: must be an integer >= 1, got {budget!r}")
    deadline = Deadline(time_limit_s)
    starts = baseline_starts(est, max_groups, deadline)
    stats: dict[str, Any] = {}
    if not starts:
        stats["placement_s"] = time.perf_counter() - start
        return PlacementResult(INFEASIBLE, "no baseline plan holds every LLM", None, float("-inf"), stats)
    search = Search(Replicas(est))
    base = {name: search.score(a).total for name, a in starts.items()}
    floor = max(base.values())
    found = search_from(search, starts, max_moves=max_moves, deadline=deadline, stats=stats)
    # the estimator's best, then the strong baseline (always scored when it is rated as
    # high as the others), then plans with headroom, other local optima, other baselines
    cands: list[tuple[str, Assignment]] = [(f"flex from {found[0].start}", found[0].a)]
    if "spatial" in starts:
        cands.append(("spatial", starts["spatial"]))
    for h in headrooms:
        got = Search(search.rx, headroom=h).improve(found[0].a, max_moves=max_moves, deadline=deadline)
        if got is not None:
            cands.append((f"flex, headroom {h:g}", got.a))
    cands += [(f"flex from {f.start}", f.a) for f in found[1:]]
    cands += list(starts.items())
    kept: list[tuple[str, Any, float]] = []
    seen: set[Any] = set()
    for label, a in cands:
        total = search.score(a).total
        plan = plan_of(search, a, "flex-slo")
        same = json.dumps({**plan.to_dict(), "estimate": None}, sort_keys=True)
        if total < floor - 1e-6 or same in seen:
            continue
        seen.add(same)
        kept.append((label, plan, total))
    scorer = SimScorer(workload, seed=score_seed, horizon_s=score_horizon_s, scale=slo_scale, config=sim_config,
                       cost=cost, memory=memory, sample=score_sample, eval_seed=eval_seed)
    scored = []
    for label, plan, total in kept[:budget]:
        s = scorer(plan)
        scored.append({"candidate": label, "estimate_rps": round(total, 6), "attainment": round(s.attainment, 6),
                       "throughput_rps": round(s.throughput_rps, 6), "_score": s, "_plan": plan})
    best = _pick(scored, len(scorer.requests), scorer.window_s)
    stats.update(baselines_rps={k: round(v, 6) for k, v in base.items()}, objective=scorer.objective,
                 score_sample=score_sample, score_seed=scorer.seed, score_horizon_s=scorer.window_s, score_requests=len(scorer.requests),
                 candidates=len(kept), simulated_groups=scorer.simulated,
                 scored=[{k: v for k, v in r.items() if not k.startswith("_")} for r in scored],
                 chosen=best["candidate"], estimator_calls=est.calls + search.est.calls,
                 placement_s=time.perf_counter() - start)
    plan = best["_plan"]
    on = {"draw": f"a fresh draw, seed {scorer.seed}", "blocks": f"the trace's own blocks (in-sample), seed {scorer.seed}",
          "oracle": "ORACLE: the evaluation run itself"}[score_sample]
    msg = (f"{best['candidate']}: best {scorer.objective} {best['attainment']:.3f} of {len(scored)} candidate(s) "
           f"simulated ({scorer.window_s:g} s, {on})")
    return PlacementResult(FEASIBLE, msg, plan, float(plan.estimate["throughput_rps"]), stats)


def _pick(scored: list[dict[str, Any]], requests: int, window_s: float) -> dict[str, Any]:
    """The candidate to keep. Candidates whose simulated throughput falls below the
    ``spatial`` plan's by more than one standard error (sqrt(x / window)) are out: the
    strong baseline is the bar. Among the rest, those whose simulated attainment is
    within one standard error (sqrt(a (1 - a) / requests)) of the best, then those whose
    throughput is within one standard error of the best of them, the first in estimator
    order. Differences the scoring sample cannot resolve do not overrule the estimator."""
    bar = next((r["_score"].throughput_rps for r in scored if r["candidate"] == "spatial"), None)
    if bar is not None:
        scored = [r for r in scored if r["_score"].throughput_rps >= bar - math.sqrt(bar / window_s) - 1e-12]
    top = max(r["_score"].attainment for r in scored)
    close = [r for r in scored
             if r["_score"].attainment >= top - math.sqrt(max(top * (1 - top), 0.0) / max(requests, 1)) - 1e-12]
    fast = max(r["_score"].throughput_rps for r in close)
    return next(r for r in close if r["_score"].throughput_rps >= fast - math.sqrt(fast / window_s) - 1e-12)
