"""Steady states: what a policy sustains on one unit, in closed form.

Each policy supplies its analytic throughput model of a unit (``policy.steady_state``),
or declines with :class:`NoSteadyState`; the placement estimator asks it, not a copy of
it. A model reads a :class:`UnitModel`: per member its rate, mean answer length, batch
cap (what its KV share holds), SM shares, and per-batch curves the estimator builds from
the cost model (:class:`Curve`: index ``b - 1`` holds batch ``b``): a decode step alone
at its decode share, the prefill time per ``b`` requests in the groups the policy forms,
the prefill jobs per ``b`` requests, and a decode step's kernel fraction and HBM demand
(what the simulator's interference model charges co-running jobs).

The models here:

- :func:`prefill_priority` (ADBS, static quotas; one member alone: continuous batching).
  Prefills go first and run one after another on the whole mesh while the decode jobs
  wait (each prefill job also waits for every running decode job to end its step: the
  ones done first idle ``n/(n+1) - 1/2`` of a step for ``n`` jobs at random phases, less
  where the one left running speeds up without its co-runners); decodes run
  concurrently, slowed by each other as the interference model says, each co-runner
  counted by the fraction of time it decodes. So member ``i`` sustains ``b_i / (L_i
  t_dec_i(b_i) + sum_j t_pre_j(b_j))``. Batches as the scheduler reaches them: a member
  whose rate is met settles at the smallest batch meeting it; one that is not fills to
  its cap (the scheduler admits whatever fits). A fixed point from the smallest batches
  alone.
- :func:`prefills_beside`: no prefill priority (round-robin, FCFS) where a prefill fits
  beside every decode job (its share plus the decode shares within the overload
  limit): decodes never wait; each member's batch decodes continuously, slowed by the
  other decodes (counted by the fraction of time they decode) and by the prefill job
  (counted by the fraction of time one runs), so member ``i`` sustains ``b_i / (L_i
  t_dec_i(b_i) s_i)``. A member's prefill starts as soon as a request waits and takes
  those that arrived during the last one (``1 + r_i t_pre_i(1)``, at most what the
  prefill token budget allows); prefills run one at a time, and if the mesh cannot keep
  up with them (busier than 100%) every member is served in proportion.
- :func:`turns`: whole-mesh turns. Each member alone sustains at most its best
  throughput ``c_i``; the rates need ``sum r_i / c_i`` of the mesh's time; past 1 every
  member is served in proportion.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from muxsim.interference import DEFAULT_INTERFERENCE, InterferenceParams, slowdown

_FILL_ROUNDS = 32


class NoSteadyState(Exception):
    """The policy has no analytic model for this unit (the message says why)."""


class Curve:
    """One per-batch curve (index b-1 holds batch b): as a read-only array, as a list of
    floats (scalar reads are faster from a list), the prefix minima of its value per
    request (``per[b-1] = min over b' <= b of curve(b') / b'``), and the batch sizes."""

    __slots__ = ("arr", "b", "lst", "per")

    def __init__(self, values: np.ndarray, b: np.ndarray) -> None:
        self.arr = values.copy()
        self.arr.setflags(write=False)
        self.b = b
        self.lst: list[float] = self.arr.tolist()
        self.per: list[float] = np.minimum.accumulate(self.arr / b).tolist()


@dataclass(frozen=True)
class Member:
    """One LLM of a unit, as a steady-state model sees it."""

    rate: float  # requests/s
    output_len: float  # mean answer tokens
    cap: int  # the batch its KV share holds
    decode_sm: float
    prefill_sm: float
    decode: Curve  # ms of a decode step alone at decode_sm
    prefill: Curve  # ms of prefill per b requests, in the groups the policy forms
    prefills: Curve  # prefill jobs per b requests
    mix: tuple[list[float], list[float]] | None  # decode step alone: (kernel fraction, HBM demand) per batch
    # alone at these shares: best throughput with batches up to b, the batch reaching it,
    # and the first batch meeting the rate (0: none)
    alone: tuple[list[float], list[int], int]
    # for prefills beside decodes: ms to prefill g prompts at once at prefill_sm (index
    # g - 1), that prefill's (kernel fraction, HBM demand), and the most prompts one takes
    prompts: Curve | None = None
    prompts_mix: tuple[list[float], list[float]] | None = None
    max_group: int = 1


@dataclass(frozen=True)
class UnitModel:
    members: tuple[Member, ...]
    interference: InterferenceParams = DEFAULT_INTERFERENCE


@dataclass(frozen=True)
class SteadyState:
    """Per member: the batch it settles at, the requests/s it serves (at most its rate)
    and the requests/s it could take (at its KV cap, the others as they are)."""

    batch: tuple[int, ...]
    throughput: tuple[float, ...]
    capacity: tuple[float, ...]


def prefill_priority(unit: UnitModel) -> SteadyState:
    """Prefill-first scheduling of colocated members (see the module doc). Per-member
    quantities are plain floats; only per-candidate-batch vectors are numpy."""
    ms = unit.members
    n = len(ms)
    rates = [m.rate for m in ms]
    caps = [m.cap for m in ms]
    dsm = [m.decode_sm for m in ms]
    lout = [m.output_len for m in ms]
    pre = [m.prefill for m in ms]
    dec = [m.decode for m in ms]
    ev = [m.prefills for m in ms]
    pre_l = [c.lst for c in pre]
    dec_l = [c.lst for c in dec]
    ev_l = [c.lst for c in ev]
    b = [m.alone[2] if 0 < m.alone[2] <= m.cap else m.alone[1][m.cap - 1] for m in ms]  # first batch alone
    slow = [1.0] * n
    duty = [1.0] * n
    params = unit.interference
    mix = [m.mix for m in ms] if n > 1 else []
    need = [r * (1 - 1e-9) for r in rates]
    # A prefill waits for every running decode job to finish its step; the jobs done
    # first idle meanwhile: for n jobs at uniform phases, n/(n+1) - 1/2 of a step each.
    sync = n / (n + 1) - 0.5 if n > 1 else 0.0
    stall = 0.0  # ms every prefill job costs the decode jobs beyond its own time
    ks = range(n)
    # per member at its batch: decode step (with slowdown), prefill cost per cycle
    dec_at = [dec_l[k][b[k] - 1] for k in ks]
    pre_at = [pre_l[k][b[k] - 1] for k in ks]
    for _ in range(_FILL_ROUNDS if n > 1 else 0):
        # the job still running runs alone, faster: at slowdown 2 nothing is lost
        stall = sync * sum(dec_l[k][b[k] - 1] * max(0.0, 2.0 - slow[k]) for k in ks) / n
        ker = [mix[k][0][b[k] - 1] for k in ks]
        hbm = [mix[k][1][b[k] - 1] for k in ks]
        s_all = sum(duty[k] * dsm[k] for k in ks)
        d_all = sum(duty[k] * hbm[k] for k in ks)
        # each co-runner counted by the fraction of time it decodes, the member itself fully
        slow = [slowdown(s_all - duty[k] * dsm[k] + dsm[k], d_all - duty[k] * hbm[k] + hbm[k], ker[k], hbm[k], params)
                for k in ks]
        dec_at = [dec_l[k][b[k] - 1] * slow[k] for k in ks]
        pre_at = [pre_l[k][b[k] - 1] + stall * ev_l[k][b[k] - 1] for k in ks]
        p_sum = sum(pre_at)
        changed = False
        for k in ks:
            # the scheduler admits whatever fits: a backlogged member's batch fills to
            # its cap, a served one's settles at the smallest batch meeting its rate
            new = first_meeting(caps[k], need[k], lout[k] * slow[k], p_sum - pre_at[k], stall, dec[k], pre[k],
                                ev[k], b[k])
            if new != b[k]:
                b[k] = new
                dec_at[k] = dec_l[k][new - 1] * slow[k]
                pre_at[k] = pre_l[k][new - 1] + stall * ev_l[k][new - 1]
                p_sum = sum(pre_at)
                changed = True
        new_duty = [min(1.0, rates[k] / (1000.0 * b[k] / (lout[k] * dec_at[k] + p_sum))) for k in ks]
        if not changed and all(abs(x - y) < 1e-3 for x, y in zip(new_duty, duty)):
            break
        duty = new_duty
    p_sum = sum(pre_at)
    tpt = [1000.0 * b[k] / (lout[k] * dec_at[k] + p_sum) for k in ks]
    # capacity: what each member could take at its KV cap with the others fixed
    capacity = [best_up_to(caps[k], lout[k] * slow[k], p_sum - pre_at[k], stall, dec[k], pre[k], ev[k])
                for k in ks]
    return SteadyState(batch=tuple(b), throughput=tuple(min(r, t) for r, t in zip(rates, tpt)),
                       capacity=tuple(max(c, t) for c, t in zip(capacity, tpt)))


def prefills_beside(unit: UnitModel) -> SteadyState:
    """Prefills beside decode jobs, no prefill priority (see the module doc)."""
    ms = unit.members
    n = len(ms)
    params = unit.interference
    ks = range(n)
    rates = [m.rate for m in ms]
    need = [r * (1 - 1e-9) for r in rates]
    b0 = ms[0].decode.b
    zero = Curve(np.zeros_like(b0), b0)  # no prefill time in a decode cycle
    # per request: prefill ms at prefill_sm, in the groups a prefill forms
    per_req = []
    pker, phbm = [], []
    for m in ms:
        if m.prompts is None:
            raise NoSteadyState(f"no prefill curve at share {m.prefill_sm:g}")
        g = min(float(m.max_group), float(len(m.prompts.lst)), 1.0 + m.rate * m.prompts.lst[0] / 1000.0)
        per_req.append(_at(m.prompts.lst, g) / g)
        mix = m.prompts_mix
        pker.append(_at(mix[0], g) if mix else 0.0)
        phbm.append(_at(mix[1], g) if mix else 0.0)
    b = [m.alone[2] if 0 < m.alone[2] <= m.cap else m.alone[1][m.cap - 1] for m in ms]
    duty = [1.0] * n
    busy = 0.0  # fraction of time a prefill runs
    slow = [1.0] * n
    served = list(rates)
    tpt = list(rates)
    for _ in range(_FILL_ROUNDS):
        mix = [m.mix for m in ms]
        ker = [mix[k][0][b[k] - 1] if mix[k] else 0.0 for k in ks]
        hbm = [mix[k][1][b[k] - 1] if mix[k] else 0.0 for k in ks]
        s_all = sum(duty[k] * ms[k].decode_sm for k in ks)
        d_all = sum(duty[k] * hbm[k] for k in ks)
        # the prefill running (a fraction `busy` of the time), weighted by its members' shares
        share = [served[k] * per_req[k] for k in ks]
        tot = sum(share) or 1.0
        p_sm = sum(share[k] * ms[k].prefill_sm for k in ks) / tot
        p_hbm = sum(share[k] * phbm[k] for k in ks) / tot
        slow = [slowdown(s_all - duty[k] * ms[k].decode_sm + ms[k].decode_sm + busy * p_sm,
                         d_all - duty[k] * hbm[k] + hbm[k] + busy * p_hbm, ker[k], hbm[k], params) for k in ks]
        b = [first_meeting(ms[k].cap, need[k], ms[k].output_len * slow[k], 0.0, 0.0, ms[k].decode, zero, zero, b[k])
             for k in ks]
        tpt = [1000.0 * b[k] / (ms[k].output_len * ms[k].decode.lst[b[k] - 1] * slow[k]) for k in ks]
        served = [min(rates[k], tpt[k]) for k in ks]
        pre_slow = [slowdown(s_all + ms[k].prefill_sm, d_all + phbm[k], pker[k], phbm[k], params) for k in ks]
        new_busy = sum(served[k] * per_req[k] * pre_slow[k] for k in ks) / 1000.0
        new_duty = [min(1.0, rates[k] / tpt[k]) for k in ks]
        done = abs(new_busy - busy) < 1e-4 and all(abs(x - y) < 1e-3 for x, y in zip(new_duty, duty))
        busy, duty = new_busy, new_duty
        if done:
            break
    scale = 1.0 / busy if busy > 1.0 else 1.0  # the prefills cannot keep up: all served in proportion
    capacity = [best_up_to(ms[k].cap, ms[k].output_len * slow[k], 0.0, 0.0, ms[k].decode, zero, zero) for k in ks]
    return SteadyState(batch=tuple(b), throughput=tuple(s * scale for s in served),
                       capacity=tuple(max(c * scale, s * scale) for c, s in zip(capacity, served)))


def _at(values: list[float], x: float) -> float:
    """``values`` (index k - 1 holds k) at ``1 <= x <= len(values)``, linear between."""
    k = int(x)
    if k >= len(values):
        return values[-1]
    f = x - k
    return (1.0 - f) * values[k - 1] + f * values[k]


def turns(unit: UnitModel) -> SteadyState:
    """Whole-mesh turns at full SMs (see the module doc); idle turns all go to one member
    in its capacity."""
    ms = unit.members
    rates = np.array([m.rate for m in ms])
    cap = np.array([m.alone[0][m.cap - 1] for m in ms])
    need = float((rates / cap).sum())  # fraction of mesh time the rates need
    tpt = rates if need <= 1.0 else rates / need
    spare = np.maximum(tpt, cap * (1.0 - need + rates / cap))  # all idle turns to one member
    batch = tuple(m.alone[2] if 0 < m.alone[2] <= m.cap else m.cap for m in ms)
    return SteadyState(batch=batch, throughput=tuple(float(x) for x in tpt), capacity=tuple(float(x) for x in spare))


# ---- the batch searches of the fixed point ---------------------------------------------
def all_below(level: float, x: int, ldec: float, p_other: float, stall: float,
              dec: Curve, pre: Curve, ev: Curve) -> bool:
    """Whether every batch ``b' <= x`` has a throughput ``1000 b' / (ldec dec(b') +
    p_other + pre(b') + stall ev(b'))`` below ``level``, by the bound ``1000 / (ldec min
    dec/b + p_other / x + min pre/b + stall min ev/b)`` (prefix minima per request),
    with a margin far above rounding error. False: the bound cannot tell."""
    den = (ldec * dec.per[x - 1] + (p_other / x if p_other >= 0.0 else p_other) + pre.per[x - 1]
           + stall * ev.per[x - 1])
    return den > 0.0 and 1000.0 / den < level * (1.0 - 1e-12)


def best_up_to(c: int, ldec: float, p_other: float, stall: float, dec: Curve, pre: Curve, ev: Curve) -> float:
    """Highest throughput ``1000 b / (ldec dec(b) + p_other + pre(b) + stall ev(b))`` over
    batches ``b <= c``. Where the bound of :func:`first_meeting` shows every smaller
    batch below the value at ``c``, that value is the maximum (same IEEE operations as the
    vector form); otherwise the vector decides."""
    top = 1000.0 * c / (((ldec * dec.lst[c - 1] + p_other) + pre.lst[c - 1]) + stall * ev.lst[c - 1])
    x = c - 1
    if x < 1:
        return top
    if all_below(top, x, ldec, p_other, stall, dec, pre, ev):
        return top
    return float(np.max(1000.0 * dec.b[:c] / (ldec * dec.arr[:c] + p_other + pre.arr[:c] + stall * ev.arr[:c])))


def first_meeting(c: int, need: float, ldec: float, p_other: float, stall: float, dec: Curve, pre: Curve,
                  ev: Curve, start: int) -> int:
    """Smallest batch ``b <= c`` whose throughput ``1000 b / (ldec dec(b) + (p_other +
    pre(b)) + stall ev(b))`` reaches ``need``, else ``c``: the answer of a scan over
    every candidate, found in a few evaluations.

    A search from ``start`` (the last answer) finds a batch that meets ``need`` whose
    predecessor does not, evaluating the same IEEE operations in the same order as
    the scan. That it is the first is then certified with a bound: for ``b' <= x``,
    ``t(b') <= 1000 / (ldec min dec/b + p_other / x + min pre/b + stall min ev/b)``
    (prefix minima per request). If the bound does not clear ``need`` by a margin far
    above rounding error (curves that are not monotone), the scan decides."""
    dl, pl, el = dec.lst, pre.lst, ev.lst

    def meets(x: int) -> bool:
        return 1000.0 * x / (ldec * dl[x - 1] + ((p_other + pl[x - 1]) + stall * el[x - 1])) >= need

    j = min(max(start, 1), c)
    if meets(j):
        hi, step = j, 1
        while True:
            lo = hi - step
            if lo < 1:
                lo = 0
                break
            if not meets(lo):
                break
            hi, step = lo, step * 2
    else:
        lo, step = j, 1
        while True:
            hi = lo + step
            if hi > c:
                hi = c + 1  # past the end: nothing meets it
                break
            if meets(hi):
                break
            lo, step = hi, step * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if meets(mid):
            hi = mid
        else:
            lo = mid
    x = hi - 1  # every batch up to x must fall short
    if x < 1:
        return hi
    if all_below(need, x, ldec, p_other, stall, dec, pre, ev):
        return min(hi, c)
    tk = 1000.0 * dec.b[:c] / (ldec * dec.arr[:c] + ((p_other + pre.arr[:c]) + stall * ev.arr[:c]))
    ok = np.flatnonzero(tk >= need)
    return int(ok[0]) + 1 if ok.size else c
