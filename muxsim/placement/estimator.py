"""Throughput estimator F(unit, workload): what a unit sustains under the policy the
simulator will run, built on the shared cost and memory models.

The estimator chooses how a unit splits its mesh and asks the unit's policy for the
steady state at that split (``policy.steady_state``, :mod:`muxsim.policy.steady`): the
same policy definition the simulator runs, so the two cannot drift apart. A policy that
has no model for a unit makes the unit infeasible, with its reason. ``policies`` maps a
plan mode to its policy (``flex``: ADBS and its ablations; ``temporal``: turns;
``spatial``: continuous batching, what :meth:`Estimator.dedicated` estimates), and the
serving limits (:class:`muxsim.limits.ServingLimits`) are the simulator's.

How a unit is split (MuxServe's steps, without the defects of their code: profiled
batches rounded up, throughput not capped at the rate, meshes left idle):

- KV pool per GPU = what :class:`muxsim.memory.MemoryModel` leaves after weights and
  reserves of all colocated LLMs, split in proportion to rate x KV bytes per token, each
  LLM keeping at least one request's worth; a running request holds ``prompt_len +
  RESIDENT_OUTPUT * output_len`` tokens on average, which caps each batch (and the
  batch limit caps it too).
- Decode SM share (flex): scan 0.3 .. 0.9 and take the first with which the LLM alone
  meets its rate, else the best; the shares on a mesh may sum to at most the overload
  limit: past it, shares drop 0.1 at a time where that costs least. SMs left under 100%
  go, 0.1 at a time, to the most loaded LLM (MuxServe leaves them idle; an LLM alone
  gets them all). Prefills run at 1.0 (MuxServe's 80-100% prefill share): with prefill
  priority the decodes wait while one runs.
- Temporal and dedicated meshes run every job on the whole mesh.

Every estimate is memoized by (kind, members, mesh size); curves by (LLM, size, phase,
SM) (:mod:`muxsim.placement.curves`). The batch searches of the steady states read a
handful of candidates and certify the answer with a bound, falling back to a scan of
every candidate where the bound cannot (``muxsim.policy.steady.first_meeting``);
``tests/test_estimator_search.py`` checks they agree bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from muxsim.interference import DEFAULT_INTERFERENCE, InterferenceParams
from muxsim.limits import BLOCK_TOKENS, DEFAULT_LIMITS, ServingLimits
from muxsim.placement.curves import RESIDENT_OUTPUT, CurveBook
from muxsim.placement.problem import Problem
from muxsim.plan import MODES
from muxsim.policy.steady import NoSteadyState, SteadyState, UnitModel

DECODE_SM_GRID = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
PREFILL_SM_GRID = (0.6, 0.5, 0.4, 0.3, 0.2)  # prefill shares tried where prefills run beside decodes
SM_STEP = 0.1
_MODE = {"flex": "flex", "temporal": "temporal", "dedicated": "spatial"}  # estimate kind -> plan mode

__all__ = ["DECODE_SM_GRID", "RESIDENT_OUTPUT", "Estimator", "UnitEstimate"]


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


def _infeasible(members: tuple[int, ...], size: int, reason: str) -> UnitEstimate:
    return UnitEstimate(members=members, size=size, feasible=False, reason=reason)


class Estimator(CurveBook):
    """Memoized estimator over one :class:`Problem`, for the policies the simulator will
    run (``policies``: plan mode -> policy; by default, those of ``SimConfig()`` with
    ``limits``)."""

    def __init__(self, problem: Problem, cost: Any, memory: Any, *, limits: ServingLimits = DEFAULT_LIMITS,
                 interference: tuple[float, float] | None = None, resident_output: float = RESIDENT_OUTPUT,
                 policies: dict[str, Any] | None = None) -> None:
        super().__init__(problem, cost, limits, resident_output)
        if interference is None:
            interference = (DEFAULT_INTERFERENCE.sm_coef, DEFAULT_INTERFERENCE.hbm_coef)
        self.interference = interference  # (SM, HBM) coefficients; (0, 0): MuxServe's estimator
        self._params = InterferenceParams(*interference)
        if policies is None:
            from muxsim.sim.config import SimConfig

            config = SimConfig(limits=limits)
            policies = {mode: config.policy(mode) for mode in MODES}
        self.policies = policies
        self.memory = memory
        self.overload = limits.overload  # decode SM shares on one mesh may sum to this much
        self._rates = [float(m.rate) for m in problem.llms]
        self._units: dict[tuple[Any, ...], UnitEstimate] = {}
        self._pools: dict[tuple[Any, ...], float] = {}
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
        return Estimator(problem, self.cost, self.memory, limits=self.limits, interference=self.interference,
                         resident_output=self.resident_output, policies=self.policies)

    # ---- pieces ----------------------------------------------------------------------
    def supports(self, i: int, size: int) -> bool:
        """Tensor parallelism of ``size`` is possible for LLM i (size divides its heads)."""
        return self.problem.llms[i].spec.heads % size == 0

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

    def _estimate(self, members: tuple[int, ...], size: int, kind: str) -> UnitEstimate:
        kv = self._kv(members, size)
        if isinstance(kv, str):
            return _infeasible(members, size, kv)
        shares, caps = kv
        rates = [self._rates[i] for i in members]
        policy = self.policies[_MODE[kind]]
        n = len(members)
        if kind != "flex":  # whole-mesh turns, or one LLM alone
            options = [(1.0, [1.0] * n)]
        elif getattr(policy, "prefill_priority", True) or n == 1:
            # with prefill priority the decodes wait while a prefill runs, so it gets the
            # SMs they leave (MuxServe's 80-100% prefill share); decodes split the rest
            dsm = self._decode_shares(members, size, caps, self.overload)
            if dsm is None:
                return _infeasible(members, size, f"{n} decode jobs need more than {self.overload:.0%} of "
                                                  f"the SMs at {DECODE_SM_GRID[0]:.0%} each")
            options = [(1.0, dsm)]
        else:
            # no prefill priority: a prefill must fit beside the decodes, or it would wait
            # until every batch on the mesh drained; try each prefill share
            options = []
            for p in PREFILL_SM_GRID:
                dsm = self._decode_shares(members, size, caps, self.overload - p)
                if dsm is not None:
                    options.append((p, dsm))
            if not options:
                return _infeasible(members, size, f"{n} decode jobs at {DECODE_SM_GRID[0]:.0%} of the SMs leave "
                                                  f"no room for a prefill within {self.overload:.0%}")
        best: tuple[SteadyState, float, list[float]] | None = None
        why = ""
        for p, dsm in options:
            unit = UnitModel(members=tuple(self.member(i, size, c, d, p, mix=n > 1, beside=p < 1.0)
                                           for i, c, d in zip(members, caps, dsm)), interference=self._params)
            try:
                st = policy.steady_state(unit)
            except NoSteadyState as e:
                why = f"{policy.name}: {e}"
                continue
            if best is None or sum(st.throughput) > sum(best[0].throughput) + 1e-9:
                best = (st, p, dsm)
        if best is None:
            return _infeasible(members, size, why)
        st, p, dsm = best
        psm = [p] * n
        return UnitEstimate(
            members=members, size=size, feasible=True, throughput=st.throughput, capacity=st.capacity,
            decode_sm=tuple(dsm), prefill_sm=tuple(psm), kv_share=tuple(shares), batch=st.batch,
            max_batch=tuple(caps), rates=tuple(rates))

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

    def _decode_shares(self, members: tuple[int, ...], size: int, caps: list[int],
                       budget: float) -> list[float] | None:
        """Decode SM shares summing to at most ``budget`` (None: impossible)."""
        dsm = [self._first_share(i, size, cap, DECODE_SM_GRID) for i, cap in zip(members, caps)]
        if sum(dsm) > budget + 1e-9:
            dsm = self._fit_shares(members, size, caps, dsm, budget)
            if dsm is None:
                return None
        return self._spread_spare(members, size, caps, dsm, min(1.0, budget))

    def _spread_spare(self, members: tuple[int, ...], size: int, caps: list[int],
                      dsm: list[float], room: float = 1.0) -> list[float]:
        """SMs no decode job asked for (shares summing under ``room``, at most 1.0) go, 0.1
        at a time, to the most loaded LLM (ties: the smaller share, then the first); an
        LLM alone gets 1.0: throughput can only rise and latency falls."""
        dsm = list(dsm)
        top = 1.0
        while sum(dsm) + SM_STEP <= room + 1e-9:
            open_ = [k for k, d in enumerate(dsm) if d < top - 1e-9]
            if not open_:
                break
            k = max(open_, key=lambda k: (self.problem.llms[members[k]].rate
                                          / max(self._alone_best(members[k], size, dsm[k], caps[k]), 1e-12),
                                          -dsm[k], -k))
            dsm[k] = round(dsm[k] + SM_STEP, 3)
        return dsm

    def _fit_shares(self, members: tuple[int, ...], size: int, caps: list[int],
                    dsm: list[float], budget: float) -> list[float] | None:
        """Lower decode shares, 0.1 at a time, where it costs the least capped throughput
        alone, until they sum to at most ``budget`` (None: impossible even at 0.3 each)."""
        grid = DECODE_SM_GRID
        if grid[0] * len(members) > budget + 1e-9:
            return None
        # capped throughput alone at every grid share, per member
        vals = [[min(self.problem.llms[i].rate, self._alone_best(i, size, d, c)) for d in grid]
                for i, c in zip(members, caps)]
        idx = [grid.index(d) for d in dsm]
        while sum(grid[x] for x in idx) > budget + 1e-9:
            best = None
            for k, x in enumerate(idx):
                if x > 0:
                    loss = vals[k][x] - vals[k][x - 1]
                    if best is None or loss < best[0] - 1e-12:
                        best = (loss, k)
            assert best is not None  # grid[0] * n <= budget: some share can still go down
            idx[best[1]] -= 1
        return [grid[x] for x in idx]

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
