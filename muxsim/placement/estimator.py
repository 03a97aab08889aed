"""Throughput estimator F(unit, workload): MuxServe's, built on the shared cost model.

For LLM i alone on a mesh of ``size`` GPUs, a batch of ``b`` requests is prefilled and
then decoded for ``output_len`` steps, so it sustains
``tpt_i(b) = b / (t_prefill_i(b) + output_len_i * t_decode_i(b))`` requests per second.
Colocated LLMs (one unit) prefill one after another and decode concurrently on their
SM shares, so ``tpt_i = b_i / (output_len_i * t_decode_i(b_i) + sum_j t_prefill_j(b_j))``
(``t_prefill`` as the schedulers run prefills, with the stalls they cause; see below).

How the unit is estimated (MuxServe's steps, with the defects docs/method.md names fixed):

- KV pool per GPU = what :class:`muxsim.memory.MemoryModel` leaves after weights and
  reserves of all colocated LLMs, split in proportion to rate x KV bytes per token, each
  LLM keeping at least one request's worth; a running request holds ``prompt_len +
  RESIDENT_OUTPUT * output_len`` tokens on average, which caps each batch.
- Decode SM share: scan 0.3 .. 0.9 and take the first with which the LLM alone meets its
  rate, else the best; the shares on a mesh may sum to at most ``overload`` (1.2): past
  it, shares drop 0.1 at a time where that costs least. SMs left under 100% go, 0.1 at a
  time, to the most loaded LLM (MuxServe leaves them idle; an LLM alone gets them all).
  In this timeline decodes wait while a prefill runs, so each prefill gets the SMs
  the decode jobs leave: all of them (1.0, MuxServe's 80-100% prefill share).
- Batch sizes, as the simulated schedulers reach them (not as an optimizer would choose
  them: MuxServe's estimator grows batches only while the unit total rises, which the
  scheduler never does, and was up to 2x optimistic for a hot LLM beside a big one): an
  LLM whose rate is met settles at the smallest batch that meets it given the others;
  one that is not runs a full batch (its KV cap), since the scheduler admits whatever
  fits. A fixed point from the smallest batches alone (exact per-batch curves of the
  cost model, no rounding to profiled points).
- Prefills run as the schedulers start them, not one per batch: a prefill job starts at
  the next step boundary and takes the requests that arrived meanwhile (1 + rate x one
  decode step, at least one, at most 2048 tokens), so a request costs ``t_prefill(g) / g``
  for that group size ``g``. Every prefill job also waits for all running decode jobs to
  end their step; the ones done first idle meanwhile, ``n/(n+1) - 1/2`` of a step for n
  jobs at random phases (less where the job left running speeds up without its
  co-runners: nothing at a slowdown of 2), charged to the cycle like prefill time.
- Reported throughput is capped at the request rate (their code is not).
- Past MuxServe: co-running decode jobs slow each other as the simulator's interference
  model says (SM oversubscription past 100%, summed HBM demand past 100%), each
  co-runner counted by the fraction of time it decodes (rate / throughput).
  ``interference=(0, 0)`` turns that part off.

Every estimate is memoized by (members, mesh size); curves by (LLM, size, phase, SM).
The batch searches of the fill read a handful of candidates and certify the answer with
a bound, falling back to a scan of every candidate where the bound cannot (see
``_first_meeting``); ``tests/test_estimator_search.py`` checks they agree bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from muxsim.memory import BLOCK_TOKENS
from muxsim.placement.problem import Problem

DECODE_SM_GRID = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
SM_STEP = 0.1
OVERLOAD = 1.2  # decode SM shares on one mesh may sum to this much (MPS oversubscription)
MAX_BATCH = 256
# A running request holds its prompt plus, on average, this fraction of its mean answer.
# With answers of one length it would be 1/2; with lengths as variable as ShareGPT's
# (CV about 1) long answers stay longer in the batch, and the length-biased mean of what
# has been generated is E[o^2] / (2 E[o]) = E[o]: 1.0. It sets both the KV a request
# occupies (the batch cap) and the context a decode step reads.
RESIDENT_OUTPUT = 1.0
_FILL_ROUNDS = 32
PREFILL_TOKENS = 2048  # prompt tokens one prefill takes at most (SimConfig.max_prefill_tokens)


@dataclass(frozen=True)
class UnitEstimate:
    """The estimator's verdict on ``members`` (indices into the problem's LLMs) sharing a
    mesh of ``size`` GPUs. Per-member tuples are in ``members`` order."""

    members: tuple[int, ...]
    size: int
    feasible: bool
    reason: str = ""
    throughput: tuple[float, ...] = ()  # requests/s, capped at each rate
    capacity: tuple[float, ...] = ()  # requests/s the LLM could take at the chosen shares
    decode_sm: tuple[float, ...] = ()
    prefill_sm: tuple[float, ...] = ()
    kv_share: tuple[float, ...] = ()
    batch: tuple[int, ...] = ()  # batch the estimate assumes
    max_batch: tuple[int, ...] = ()  # batch the KV share holds
    rates: tuple[float, ...] = ()  # the members' request rates

    @cached_property
    def total(self) -> float:
        return float(sum(self.throughput)) if self.feasible else float("-inf")

    @property
    def weighted_load(self) -> tuple[float, float]:
        """(sum of rate x load, sum of rate) over members: a rate-weighted mean load."""
        if not self.feasible:
            return (float("inf"), 1.0)
        return (sum(r * r / c if c > 0 else float("inf") for r, c in zip(self.rates, self.capacity)),
                sum(self.rates))

    @cached_property
    def load(self) -> float:
        """Highest rate / capacity among members (1.0 or more: someone is not served)."""
        if not self.feasible:
            return float("inf")
        return max((r / c if c > 0 else float("inf")) for r, c in zip(self.rates, self.capacity))


class _Curve:
    """One per-batch curve (index b-1 holds batch b): as a read-only array, as a list of
    floats (scalar reads are faster from a list), and the prefix minima of its value per
    request (``per[b-1] = min over b' <= b of curve(b') / b'``)."""

    __slots__ = ("arr", "lst", "per")

    def __init__(self, values: np.ndarray, b: np.ndarray) -> None:
        self.arr = values.copy()
        self.arr.setflags(write=False)
        self.lst: list[float] = self.arr.tolist()
        self.per: list[float] = np.minimum.accumulate(self.arr / b).tolist()


def _all_below(level: float, x: int, ldec: float, p_other: float, stall: float,
               dec: _Curve, pre: _Curve, ev: _Curve) -> bool:
    """Whether every batch ``b' <= x`` has a throughput ``1000 b' / (ldec dec(b') +
    p_other + pre(b') + stall ev(b'))`` below ``level``, by the bound ``1000 / (ldec min
    dec/b + p_other / x + min pre/b + stall min ev/b)`` (prefix minima per request),
    with a margin far above rounding error. False: the bound cannot tell."""
    den = (ldec * dec.per[x - 1] + (p_other / x if p_other >= 0.0 else p_other) + pre.per[x - 1]
           + stall * ev.per[x - 1])
    return den > 0.0 and 1000.0 / den < level * (1.0 - 1e-12)


def _infeasible(members: tuple[int, ...], size: int, reason: str) -> UnitEstimate:
    return UnitEstimate(members=members, size=size, feasible=False, reason=reason)


class Estimator:
    """Memoized MuxServe estimator over one :class:`Problem`."""

    def __init__(self, problem: Problem, cost: Any, memory: Any, *, overload: float = OVERLOAD,
                 max_batch: int = MAX_BATCH, interference: tuple[float, float] | None = None,
                 resident_output: float = RESIDENT_OUTPUT) -> None:
        self.problem = problem
        self.resident_output = resident_output
        if interference is None:
            from muxsim.sim.config import InterferenceParams

            p = InterferenceParams()
            interference = (p.sm_coef, p.hbm_coef)
        self.interference = interference  # (SM, HBM) coefficients; (0, 0): MuxServe's estimator
        self.cost = cost
        self.memory = memory
        self.overload = overload
        self.max_batch = max_batch
        self._b = np.arange(1, max_batch + 1, dtype=float)
        self._curves: dict[tuple[Any, ...], Any] = {}
        # curves are shared by LLMs that agree on what a curve depends on: the same model
        # and lengths for decode curves; and the same rate for the prefill ones
        shape: dict[tuple[Any, ...], int] = {}
        rated: dict[tuple[Any, ...], int] = {}
        self._rates = [float(m.rate) for m in problem.llms]
        self._shape_id = [shape.setdefault((m.spec, m.prompt_len, m.output_len), len(shape))
                          for m in problem.llms]
        self._rated_id = [rated.setdefault((m.spec, m.prompt_len, m.output_len, m.rate), len(rated))
                          for m in problem.llms]
        self._units: dict[tuple[Any, ...], UnitEstimate] = {}
        self._pools: dict[tuple[Any, ...], float] = {}
        self._best: dict[tuple[Any, ...], float] = {}
        self._shares: dict[tuple[Any, ...], float] = {}
        self._kv_member: dict[tuple[int, int], tuple[float, int]] = {}
        self._ceilings: dict[tuple[int, ...], float] = {}
        self._splits: dict[int, Estimator] = {}
        self.calls = 0  # estimates computed (memo misses)

    def split(self, replicas: int) -> Estimator:
        """The estimator of one replica when every LLM has ``replicas`` of them: the same
        cost, memory and options over LLMs with ``rate / replicas``. Memoized; ``split(1)``
        is this estimator."""
        if replicas == 1:
            return self
        e = self._splits.get(replicas)
        if e is None:
            from dataclasses import replace

            p = replace(self.problem, llms=tuple(replace(m, rate=m.rate / replicas) for m in self.problem.llms))
            e = self._splits[replicas] = self.for_problem(p)
        return e

    def for_problem(self, problem: Problem) -> Estimator:
        """A fresh estimator with the same cost, memory and options over ``problem``
        (e.g. the same LLMs with some listed again at a share of their rate)."""
        return Estimator(problem, self.cost, self.memory, overload=self.overload, max_batch=self.max_batch,
                         interference=self.interference, resident_output=self.resident_output)

    # ---- pieces ----------------------------------------------------------------------
    def supports(self, i: int, size: int) -> bool:
        """Tensor parallelism of ``size`` is possible for LLM i (size divides its heads)."""
        return self.problem.llms[i].spec.heads % size == 0

    def _curve(self, i: int, size: int, phase: str, sm: float) -> _Curve:
        """Per-batch curve of LLM i on ``size`` GPUs: ``prefill`` (ms to prefill a batch,
        in the groups the schedulers form), ``prefills`` (prefill jobs per batch) or
        ``decode`` (ms per step at share ``sm``)."""
        key = (self._shape_id[i] if phase == "decode" else self._rated_id[i], size, phase, sm)
        c = self._curves.get(key)
        if c is None:
            rounded = (*key[:3], round(sm, 3))
            c = self._curves.get(rounded)
            if c is None:
                m = self.problem.llms[i]
                if phase == "prefill":
                    v = self._prefill_in_groups(i, size, sm)
                elif phase == "prefills":
                    v = self._prefills(i, size)
                else:  # a decode step at the mean context of a request in flight
                    v = self.cost.decode_ms(m.spec, self._b, self._resident(m), tp=size, sm=sm)
                c = self._curves[rounded] = _Curve(np.broadcast_to(np.asarray(v, dtype=float), self._b.shape), self._b)
            self._curves[key] = c
        return c

    def _prefill_in_groups(self, i: int, size: int, sm: float) -> np.ndarray:
        """Prefill time of ``b`` requests, per batch size ``b``, as the schedulers run it:
        a prefill starts at the first step boundary after a request is admissible, so it
        takes that request and those arriving during about one decode step (at most ``b``
        and what ``PREFILL_TOKENS`` allows), not the whole batch at once. Under overload a
        slot opens when a request finishes, again one or a few at a time."""
        m = self.problem.llms[i]
        one = np.asarray(self.cost.prefill_ms(m.spec, self._b, m.prompt_len, tp=size, sm=sm), dtype=float)
        one = np.broadcast_to(one, self._b.shape)
        group = self._b / self._curve(i, size, "prefills", 1.0).arr
        return self._b / group * np.interp(group, self._b, one)

    def _prefills(self, i: int, size: int) -> np.ndarray:
        """Prefill jobs it takes to admit ``b`` requests, per batch size (see above)."""
        m = self.problem.llms[i]
        step = np.broadcast_to(np.asarray(
            self.cost.decode_ms(m.spec, self._b, self._resident(m), tp=size, sm=1.0), dtype=float), self._b.shape)
        most = max(1, int(PREFILL_TOKENS // max(m.prompt_len, 1.0)))
        return self._b / np.clip(1.0 + m.rate * step / 1000.0, 1.0, np.minimum(self._b, most))

    def _resident(self, m: Any) -> float:
        """Mean tokens a running request holds: its prompt plus ``resident_output`` of its
        mean answer (see RESIDENT_OUTPUT)."""
        return m.prompt_len + self.resident_output * m.output_len

    def _decode_mix(self, i: int, size: int, sm: float) -> tuple[list[float], list[float]]:
        """(kernel fraction, HBM demand) of a decode step alone, per batch size: what the
        simulator's interference model charges co-running jobs for."""
        m = self.problem.llms[i]
        key = (self._shape_id[i], size, "mix", round(sm, 3))
        c = self._curves.get(key)
        if c is None:
            terms = getattr(self.cost, "forward_terms", None)
            if terms is None:  # a cost model without a breakdown: no interference
                c = ([0.0] * self.max_batch, [0.0] * self.max_batch)
            else:
                kv = self._b * (self._resident(m))
                t = terms(m.spec, self._b, self._b, kv, kv, tp=size, sm=sm)
                total = np.maximum(np.asarray(t.total_ms, dtype=float), 1e-12)
                kernel = np.clip((total - np.asarray(t.comm_ms) - np.asarray(t.overhead_ms)) / total, 0.0, 1.0)
                hbm = np.clip(np.asarray(t.memory_ms) / total, 0.0, 1.0)
                c = (np.broadcast_to(kernel, self._b.shape).tolist(), np.broadcast_to(hbm, self._b.shape).tolist())
            self._curves[key] = c
        return c

    def _pool_blocks(self, members: tuple[int, ...], size: int) -> float:
        specs = tuple(sorted((self.problem.llms[i].spec for i in members), key=lambda s: s.name))
        key = (specs, size)
        v = self._pools.get(key)
        if v is None:
            if self.memory.kv_pool_bytes_per_gpu([(s, size) for s in specs]) <= 0:
                v = 0.0
            else:
                v = float(self.memory.kv_blocks_per_gpu([(s, size) for s in specs]))
            self._pools[key] = v
        return v

    def fits(self, members: tuple[int, ...], size: int) -> bool:
        """Weights and reserves of ``members`` leave a KV pool on a ``size``-GPU mesh."""
        return all(self.supports(i, size) for i in members) and self._pool_blocks(members, size) > 0

    def min_size(self, i: int, sizes: tuple[int, ...]) -> int | None:
        """Smallest of ``sizes`` on which LLM i alone holds at least one request."""
        for s in sorted(sizes):
            if self.dedicated(i, s).feasible:
                return s
        return None

    # ---- estimates -------------------------------------------------------------------
    def ceiling(self, members: tuple[int, ...]) -> float:
        """Sum of the members' rates. A unit's ``total`` sums throughputs capped at these
        rates in the same (sorted) order, and rounding is monotone, so no estimate of
        these members can exceed it: searches use it to skip estimates that cannot win."""
        v = self._ceilings.get(members)
        if v is None:
            rates = self._rates
            v = self._ceilings[members] = float(sum(rates[x] for x in sorted(members)))
        return v

    def flex(self, members: tuple[int, ...], size: int) -> UnitEstimate:
        """MuxServe: colocated LLMs with their own decode SM shares (``mode: flex``)."""
        return self._memo(("flex", tuple(sorted(members)), size))

    @property
    def max_colocated(self) -> int:
        """Most LLMs one flex mesh can hold: each decode job takes at least 0.3 of the SMs."""
        return int(self.overload / DECODE_SM_GRID[0] + 1e-9)

    def dedicated(self, i: int, size: int) -> UnitEstimate:
        """One LLM alone on the mesh with all SMs, prefill and decode in turn (spatial)."""
        return self._memo(("dedicated", (i,), size))

    def temporal(self, members: tuple[int, ...], size: int) -> UnitEstimate:
        """Colocated LLMs taking whole-mesh turns at full SMs (``mode: temporal``)."""
        return self._memo(("temporal", tuple(sorted(members)), size))

    def _memo(self, key: tuple[Any, ...]) -> UnitEstimate:
        u = self._units.get(key)
        if u is None:
            self.calls += 1
            kind, members, size = key
            u = self._estimate(members, size, kind)
            self._units[key] = u
        return u

    def _kv(self, members: tuple[int, ...], size: int) -> tuple[list[float], list[int]] | str:
        if not members:
            return "no LLMs"
        for i in members:
            if not self.supports(i, size):
                m = self.problem.llms[i]
                return f"{m.name}: tp {size} does not divide its {m.spec.heads} heads"
        blocks = self._pool_blocks(members, size)
        if blocks <= 0:
            return "weights and reserves exceed GPU memory"
        llms = [self.problem.llms[i] for i in members]
        per = [self._kv_terms(i, size) for i in members]
        weight = [w for w, _ in per]
        # every LLM keeps at least one request's worth of blocks (a rate-only split would
        # starve a cold LLM beside a hot one); the rest is split by rate x KV bytes
        need = [one / blocks for _, one in per]
        if sum(need) > 1:
            return "the KV pool cannot hold one request of each LLM"
        shares = _split_with_floors(weight, need)
        caps = []
        for m, s in zip(llms, shares):
            tokens = self.memory.kv_capacity_tokens(m.spec, size, int(blocks * s))
            caps.append(min(self.max_batch, int(tokens // (self._resident(m)))))
            if caps[-1] < 1:
                return f"{m.name}: its KV share holds no whole request"
        return shares, caps

    def _kv_terms(self, i: int, size: int) -> tuple[float, int]:
        """LLM i's weight in the KV split (rate x KV bytes per token) and the blocks one
        request of it holds (per GPU), on a ``size``-GPU mesh."""
        key = (i, size)
        v = self._kv_member.get(key)
        if v is None:
            m = self.problem.llms[i]
            v = self._kv_member[key] = (max(m.rate, 1e-9) * m.spec.kv_bytes_per_token(size),
                                        math.ceil(self._resident(m) / BLOCK_TOKENS)
                                        * self.memory.blocks_per_token_block(m.spec, size))
        return v

    def _alone_stats(self, i: int, size: int, decode_sm: float) -> tuple[list[float], list[int], int]:
        """For LLM i alone: the best throughput with batches up to b (prefix maxima), the
        batch reaching it (prefix argmax), and the first batch meeting its rate (0: none)."""
        key = (i, size, decode_sm, "alone")
        v = self._best.get(key)
        if v is None:
            alone = self._alone(i, size, 1.0, decode_sm)
            best = np.maximum.accumulate(alone)
            idx = np.arange(alone.size)
            prev = np.concatenate(([-np.inf], best[:-1]))
            arg = np.maximum.accumulate(np.where(alone > prev, idx, 0))  # first index of the max
            ok = np.nonzero(alone >= self.problem.llms[i].rate)[0]
            v = self._best[key] = (best.tolist(), (arg + 1).tolist(), int(ok[0]) + 1 if ok.size else 0)
        return v

    def _alone_best(self, i: int, size: int, decode_sm: float, cap: int) -> float:
        """Highest throughput LLM i reaches alone with batches up to ``cap``."""
        return self._alone_stats(i, size, decode_sm)[0][cap - 1]

    def _alone(self, i: int, size: int, prefill_sm: float, decode_sm: float) -> np.ndarray:
        m = self.problem.llms[i]
        pre = self._curve(i, size, "prefill", prefill_sm).arr
        dec = self._curve(i, size, "decode", decode_sm).arr
        return 1000.0 * self._b / (pre + m.output_len * dec)

    def _estimate(self, members: tuple[int, ...], size: int, kind: str) -> UnitEstimate:
        kv = self._kv(members, size)
        if isinstance(kv, str):
            return _infeasible(members, size, kv)
        shares, caps = kv
        rates = [self._rates[i] for i in members]
        if kind == "temporal":
            return self._temporal(members, size, shares, caps, np.array(rates))
        # decode SM shares
        grid = (1.0,) if kind == "dedicated" else DECODE_SM_GRID
        dsm = [self._first_share(i, size, cap, grid) for i, cap in zip(members, caps)]
        if kind == "flex" and sum(dsm) > self.overload + 1e-9:
            dsm = self._fit_shares(members, size, caps, dsm)
            if dsm is None:
                return _infeasible(members, size, f"{len(members)} decode jobs need more than "
                                                  f"{self.overload:.0%} of the SMs at {DECODE_SM_GRID[0]:.0%} each")
        if kind == "flex":
            dsm = self._spread_spare(members, size, caps, dsm)
        # Colocated prefills run one after another and every decode cycle waits for them
        # (the sum_j t_prefill_j term), so the decode jobs leave a prefill the whole mesh.
        psm = [1.0] * len(members)
        b, tpt, capacity = self._coupled(members, size, caps, dsm, rates)
        return UnitEstimate(
            members=members, size=size, feasible=True,
            throughput=tuple(min(r, t) for r, t in zip(rates, tpt)),
            capacity=tuple(max(c, t) for c, t in zip(capacity, tpt)),
            decode_sm=tuple(dsm), prefill_sm=tuple(psm), kv_share=tuple(shares),
            batch=tuple(b), max_batch=tuple(caps), rates=tuple(rates))

    def _coupled(self, members: tuple[int, ...], size: int, caps: list[int], dsm: list[float],
                 rates: list[float]) -> tuple[list[int], list[float], list[float]]:
        """Batch sizes, throughputs and capacities of colocated LLMs (see the module doc).
        Per-LLM quantities are plain floats; only per-candidate-batch vectors are numpy."""
        n = len(members)
        lout = [self.problem.llms[i].output_len for i in members]
        pre = [self._curve(i, size, "prefill", 1.0) for i in members]
        dec = [self._curve(i, size, "decode", d) for i, d in zip(members, dsm)]
        ev = [self._curve(i, size, "prefills", 1.0) for i in members]
        pre_l = [c.lst for c in pre]
        dec_l = [c.lst for c in dec]
        ev_l = [c.lst for c in ev]
        b = [self._first_batch(i, size, d, c) for i, d, c in zip(members, dsm, caps)]
        slow = [1.0] * n
        duty = [1.0] * n
        ic_sm, ic_hbm = self.interference
        mix = [self._decode_mix(i, size, d) for i, d in zip(members, dsm)] if n > 1 else []
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
            slow = [1.0 + ic_sm * ker[k] * max(0.0, s_all - duty[k] * dsm[k] + dsm[k] - 1.0)
                    + ic_hbm * hbm[k] * max(0.0, d_all - duty[k] * hbm[k] + hbm[k] - 1.0) for k in ks]
            dec_at = [dec_l[k][b[k] - 1] * slow[k] for k in ks]
            pre_at = [pre_l[k][b[k] - 1] + stall * ev_l[k][b[k] - 1] for k in ks]
            p_sum = sum(pre_at)
            changed = False
            for k in ks:
                # the scheduler admits whatever fits: a backlogged LLM's batch fills to
                # its cap, a served one's settles at the smallest batch meeting its rate
                new = self._first_meeting(caps[k], need[k], lout[k] * slow[k], p_sum - pre_at[k],
                                          stall, dec[k], pre[k], ev[k], b[k])
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
        # capacity: what each LLM could take at its KV cap with the others fixed
        capacity = [self._best_up_to(caps[k], lout[k] * slow[k], p_sum - pre_at[k], stall, dec[k], pre[k], ev[k])
                    for k in range(n)]
        return b, tpt, capacity

    def _best_up_to(self, c: int, ldec: float, p_other: float, stall: float,
                    dec: _Curve, pre: _Curve, ev: _Curve) -> float:
        """Highest throughput ``1000 b / (ldec dec(b) + p_other + pre(b) + stall ev(b))``
        over batches ``b <= c``. Where the bound of :meth:`_first_meeting` shows every
        smaller batch below the value at ``c``, that value is the maximum (same IEEE
        operations as the vector form); otherwise the vector decides."""
        top = 1000.0 * c / (((ldec * dec.lst[c - 1] + p_other) + pre.lst[c - 1]) + stall * ev.lst[c - 1])
        x = c - 1
        if x < 1:
            return top
        if _all_below(top, x, ldec, p_other, stall, dec, pre, ev):
            return top
        return float(np.max(1000.0 * self._b[:c] / (ldec * dec.arr[:c] + p_other + pre.arr[:c] + stall * ev.arr[:c])))

    def _first_meeting(self, c: int, need: float, ldec: float, p_other: float, stall: float,
                       dec: _Curve, pre: _Curve, ev: _Curve, start: int) -> int:
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
        if _all_below(need, x, ldec, p_other, stall, dec, pre, ev):
            return min(hi, c)
        tk = 1000.0 * self._b[:c] / (ldec * dec.arr[:c] + ((p_other + pre.arr[:c]) + stall * ev.arr[:c]))
        ok = np.flatnonzero(tk >= need)
        return int(ok[0]) + 1 if ok.size else c

    def _first_batch(self, i: int, size: int, decode_sm: float, cap: int) -> int:
        """Smallest batch with which LLM i alone meets its rate, else its best batch."""
        _, arg, first = self._alone_stats(i, size, decode_sm)
        return first if 0 < first <= cap else arg[cap - 1]

    def _first_share(self, i: int, size: int, cap: int, grid: tuple[float, ...]) -> float:
        """The first decode share with which LLM i alone meets its rate, else the best."""
        key = (i, size, cap, grid)
        v = self._shares.get(key)
        if v is None:
            rate = self.problem.llms[i].rate
            v, best_t = grid[-1], -1.0
            for d in grid:
                t = self._alone_best(i, size, d, cap)
                if t >= rate:
                    v = d
                    break
                if t > best_t + 1e-12:
                    v, best_t = d, t
            self._shares[key] = v
        return v

    def _spread_spare(self, members: tuple[int, ...], size: int, caps: list[int],
                      dsm: list[float]) -> list[float]:
        """SMs no decode job asked for (shares summing under 1.0) go, 0.1 at a time, to the
        most loaded LLM (ties: the smaller share, then the first); an LLM alone gets 1.0:
        throughput can only rise and latency falls."""
        dsm = list(dsm)
        top = 1.0
        while sum(dsm) + SM_STEP <= 1.0 + 1e-9:
            open_ = [k for k, d in enumerate(dsm) if d < top - 1e-9]
            if not open_:
                break
            k = max(open_, key=lambda k: (self.problem.llms[members[k]].rate
                                          / max(self._alone_best(members[k], size, dsm[k], caps[k]), 1e-12),
                                          -dsm[k], -k))
            dsm[k] = round(dsm[k] + SM_STEP, 3)
        return dsm

    def _fit_shares(self, members: tuple[int, ...], size: int, caps: list[int],
                    dsm: list[float]) -> list[float] | None:
        """Lower decode shares, 0.1 at a time, where it costs the least capped throughput
        alone, until they sum to at most ``overload`` (None: impossible even at 0.3 each)."""
        grid = DECODE_SM_GRID
        if grid[0] * len(members) > self.overload + 1e-9:
            return None
        # capped throughput alone at every grid share, per member
        vals = [[min(self.problem.llms[i].rate, self._alone_best(i, size, d, c)) for d in grid]
                for i, c in zip(members, caps)]
        idx = [grid.index(d) for d in dsm]
        while sum(grid[x] for x in idx) > self.overload + 1e-9:
            best = None
            for k, x in enumerate(idx):
                if x > 0:
                    loss = vals[k][x] - vals[k][x - 1]
                    if best is None or loss < best[0] - 1e-12:
                        best = (loss, k)
            assert best is not None  # grid[0] * n <= overload: some share can still go down
            idx[best[1]] -= 1
        return [grid[x] for x in idx]

    def _temporal(self, members: tuple[int, ...], size: int, shares: list[float], caps: list[int],
                  rates: np.ndarray) -> UnitEstimate:
        cap = np.array([self._alone_best(i, size, 1.0, c) for i, c in zip(members, caps)])
        need = float((rates / cap).sum())  # fraction of mesh time the rates need
        tpt = rates if need <= 1.0 else rates / need
        spare = np.maximum(tpt, cap * (1.0 - need + rates / cap))  # all idle turns to one LLM
        batch = []
        for i, c, r in zip(members, caps, rates):
            alone = self._alone(i, size, 1.0, 1.0)[:c]
            ok = np.nonzero(alone >= r)[0]
            batch.append(int(ok[0]) + 1 if ok.size else c)
        n = len(members)
        return UnitEstimate(
            members=members, size=size, feasible=True,
            throughput=tuple(float(x) for x in tpt), capacity=tuple(float(x) for x in spare),
            decode_sm=(1.0,) * n, prefill_sm=(1.0,) * n, kv_share=tuple(shares),
            batch=tuple(batch), max_batch=tuple(caps), rates=tuple(float(r) for r in rates))


def _split_with_floors(weight: list[float], floor: list[float]) -> list[float]:
    """Shares proportional to ``weight``, raised to ``floor`` where below it, the rest
    renormalized over the others (``sum(floor) <= 1``)."""
    fixed: set[int] = set()
    while True:
        rest = 1.0 - sum(floor[k] for k in fixed)
        free_w = sum(w for k, w in enumerate(weight) if k not in fixed)
        shares = [floor[k] if k in fixed else rest * w / free_w for k, w in enumerate(weight)]
        low = {k for k, x in enumerate(shares) if k not in fixed and x < floor[k]}
        if not low:
            return shares
        fixed |= low
