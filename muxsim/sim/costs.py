"""Step times for the simulator, from the cost model, without per-token work.

Decode. A run of ``k`` steps over ``n`` sequences whose contexts sum to ``C0`` has
step ``t`` (1-based) at summed context ``C0 + n t``, i.e. at mean context
``m0 + t`` with ``m0 = C0 / n``. For each (LLM, SM share, n) the cost model is asked
once for the step time at every integer mean context up to the longest request
(``forward_terms`` over an array) and the prefix sums ``P`` are kept; the time of the
first ``s`` steps is then ``(1 - f)(P[i0+s+1] - P[i0+1]) + f(P[i0+s+2] - P[i0+2])``
with ``m0 = i0 + f``: exact at integer mean contexts and linear between them. With
``SimConfig.cost_grid = False`` every run asks the cost model for its own steps instead
(exact; slower).

Prefill. A batch of one prompt of length ``L`` comes from a per-(LLM, SM share) table
over ``L``; larger batches ask the cost model (memoized on the exact arguments).

Fast paths (same doubles as the generic ones; ``tests/test_sim_fastpaths.py``): with
the analytic model exactly, a one-off step goes through
:meth:`~muxsim.costmodel.AnalyticCostModel.forward_terms_scalar` (Python floats, no
numpy call) and decode rows come ``DECODE_ROW_BLOCK`` batch sizes per call; rows are
kept as memoryviews, whose items are Python floats (cheap arithmetic in ``Job.cum``).

Interference inputs (:func:`muxsim.interference.job_inputs`): the kernel fraction (time on SMs over total) and HBM demand
(memory time over total) of the job, from ``forward_terms`` (without it, kernel 1 and
demand 0: no bandwidth contention).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from muxsim.costmodel.analytic import AnalyticCostModel
from muxsim.interference import job_inputs, job_inputs_float
from muxsim.sim.batch import LLM
from muxsim.sim.jobs import Job

DECODE_ROW_BLOCK = 8  # decode rows the analytic model computes in one call
GRID_MAX_CONTEXT = 32768  # longer requests: each decode run asks for its own steps (rows would be too large)


class StepCosts:
    def __init__(self, cost: Any, max_context: int, grid: bool) -> None:
        self.cost = cost
        self.max_context = max(1, int(max_context))
        self.grid = grid
        self._terms = hasattr(cost, "forward_terms")
        # the analytic model's float path (bit-identical) for one-off steps
        self._scalar = getattr(type(cost), "forward_terms", None) is AnalyticCostModel.forward_terms
        self._decode_rows: dict[tuple[int, float, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._prefill_rows: dict[tuple[int, float], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._prefill_memo: dict[tuple[int, int, int, int, float], tuple[float, float, float]] = {}
        self.cost_calls = 0

    def terms(self, llm: LLM, tokens: Any, seqs: Any, pairs: Any, kv: Any, sm: float,
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(total ms, kernel fraction, HBM demand) of forward steps alone at ``sm``."""
        self.cost_calls += 1
        if self._terms:
            return job_inputs(self.cost.forward_terms(llm.spec, tokens, seqs, pairs, kv, llm.tp, sm))
        total = np.maximum(np.asarray(self.cost.forward_ms(llm.spec, tokens, seqs, pairs, kv, llm.tp, sm),
                                      dtype=float), 1e-12)
        return total, np.ones_like(total), np.zeros_like(total)

    # ---- prefill ------------------------------------------------------------------------
    def prefill(self, llm: LLM, tokens: int, seqs: int, pairs: int, sm: float) -> tuple[float, float, float]:
        if seqs == 1 and self.grid and tokens <= self.max_context + 2:
            key = (llm.gid, sm)
            row = self._prefill_rows.get(key)
            if row is None:
                length = np.arange(self.max_context + 3, dtype=float)
                t, k, h = self.terms(llm, length, 1.0, length * (length + 1) / 2, length, sm)
                row = (np.broadcast_to(t, length.shape), np.broadcast_to(k, length.shape),
                       np.broadcast_to(h, length.shape))
                self._prefill_rows[key] = row
            return float(row[0][tokens]), float(row[1][tokens]), float(row[2][tokens])
        mkey = (llm.gid, tokens, seqs, pairs, sm)
        hit = self._prefill_memo.get(mkey)
        if hit is None:
            if self._scalar:
                self.cost_calls += 1
                hit = job_inputs_float(self.cost.forward_terms_scalar(llm.spec, tokens, seqs, pairs, tokens,
                                                                       llm.tp, sm))
            else:
                t, k, h = self.terms(llm, tokens, seqs, pairs, tokens, sm)
                hit = (float(t), float(k), float(h))
            self._prefill_memo[mkey] = hit
        return hit

    # ---- decode -------------------------------------------------------------------------
    def _decode_row(self, llm: LLM, sm: float, n: int) -> tuple[memoryview, memoryview, memoryview]:
        """Step-time prefix sums, kernel fractions and HBM demands by mean context, for
        ``n`` sequences. The analytic model gives the rows of a block of ``n`` at once
        (elementwise the same operations; the prefix sums run along each row)."""
        mean = np.arange(self.max_context + 3, dtype=float)
        key = (llm.gid, sm, n)
        if not self._scalar:  # any cost model: one row, 1-D arrays
            c = n * mean
            t, k, h = self.terms(llm, n, n, c, c, sm)
            prefix = np.concatenate([[0.0], np.cumsum(np.broadcast_to(t, mean.shape))])
            row = (_floats(prefix), _floats(np.broadcast_to(k, mean.shape)), _floats(np.broadcast_to(h, mean.shape)))
            self._decode_rows[key] = row
            return row
        first = n - (n - 1) % DECODE_ROW_BLOCK
        ns = list(range(first, first + DECODE_ROW_BLOCK))
        col = np.asarray(ns, dtype=float)[:, None]
        c = col * mean
        t, k, h = self.terms(llm, col, col, c, c, sm)
        t, k, h = (np.broadcast_to(x, c.shape) for x in (t, k, h))
        prefix = np.concatenate([np.zeros((len(ns), 1)), np.cumsum(t, axis=1)], axis=1)
        rows = self._decode_rows
        for i, m in enumerate(ns):
            # memoryviews: indexing gives Python floats (the same doubles, cheaper arithmetic)
            rows.setdefault((llm.gid, sm, m), (_floats(prefix[i]), _floats(k[i]), _floats(h[i])))
        return rows[key]

    def decode(self, job: Job, n: int, ctx_sum: int, steps: int) -> None:
        """Set ``job``'s step-time prefix sums for ``steps`` steps over ``n`` sequences
        whose contexts sum to ``ctx_sum``, and its interference inputs."""
        llm = job.unit
        sm = job.sm
        i0, rem = divmod(ctx_sum, n)
        if self.grid and i0 + steps + 2 <= self.max_context + 3:
            key = (llm.gid, sm, n)
            row = self._decode_rows.get(key)
            if row is None:
                row = self._decode_row(llm, sm, n)
            job.costs = row[0]
            job.i0 = i0
            job.f = rem / n
            # its interference inputs are read only while it co-runs: Job.inputs() then
            job.mix = (row, i0 + 1 + steps // 2)  # the middle step's mean context is mid + f
            job.kernel = -1.0
            return
        contexts = ctx_sum + n * np.arange(1, steps + 1, dtype=float)
        t, k, h = self.terms(llm, n, n, contexts, contexts, sm)
        t = np.broadcast_to(t, contexts.shape)
        prefix = np.concatenate([[0.0], np.cumsum(t), [0.0]])
        job.costs = _floats(prefix)
        job.i0 = -1
        job.f = 0.0
        job.kernel = float(np.broadcast_to(k, contexts.shape)[steps // 2])
        job.hbm = float(np.broadcast_to(h, contexts.shape)[steps // 2])


def _floats(a: np.ndarray) -> memoryview:
    """A read-only view of ``a`` whose items are Python floats."""
    return memoryview(np.ascontiguousarray(a, dtype=float))
