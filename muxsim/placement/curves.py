"""Per-batch curves of each LLM on a mesh of a given size, from the cost model: what the
policies' steady-state models (:mod:`muxsim.policy.steady`) read.

For a batch of ``b`` requests (index ``b - 1``): a decode step at the mean context of a
request in flight (its prompt plus ``RESIDENT_OUTPUT`` of its mean answer), at a decode
SM share; the prefill time of ``b`` requests in the groups the scheduler forms; the
number of prefill jobs that takes; and a decode step's kernel fraction and HBM demand
(:func:`muxsim.interference.job_inputs`). Every curve is memoized, shared by LLMs that
agree on what it depends on (model and lengths; and the rate, for prefill groups).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from muxsim.interference import job_inputs
from muxsim.limits import ServingLimits
from muxsim.placement.problem import Problem
from muxsim.policy.steady import Curve, Member

# A running request holds its prompt plus, on average, this fraction of its mean answer.
# With answers of one length it would be 1/2; with lengths as variable as ShareGPT's
# (CV about 1) long answers stay longer in the batch, and the length-biased mean of what
# has been generated is E[o^2] / (2 E[o]) = E[o]: 1.0. It sets both the KV a request
# occupies (the batch cap) and the context a decode step reads.
RESIDENT_OUTPUT = 1.0


class CurveBook:
    """Memoized curves of one problem's LLMs under one cost model."""

    def __init__(self, problem: Problem, cost: Any, limits: ServingLimits, resident_output: float) -> None:
        self.problem = problem
        self.cost = cost
        self.limits = limits
        self.resident_output = resident_output
        self.max_batch = limits.max_batch
        self._b = np.arange(1, self.max_batch + 1, dtype=float)
        self._curves: dict[tuple[Any, ...], Any] = {}
        self._best: dict[tuple[Any, ...], Any] = {}
        # curves are shared by LLMs that agree on what a curve depends on: the same model
        # and lengths for decode curves; and the same rate for the prefill ones
        shape: dict[tuple[Any, ...], int] = {}
        rated: dict[tuple[Any, ...], int] = {}
        self._shape_id = [shape.setdefault((m.spec, m.prompt_len, m.output_len), len(shape))
                          for m in problem.llms]
        self._rated_id = [rated.setdefault((m.spec, m.prompt_len, m.output_len, m.rate), len(rated))
                          for m in problem.llms]

    def member(self, i: int, size: int, cap: int, decode_sm: float, prefill_sm: float = 1.0,
               mix: bool = True, beside: bool = False) -> Member:
        """LLM i on a ``size``-GPU mesh at these shares, as a steady-state model reads it
        (``mix``: with the interference inputs of its decode steps; ``beside``: with the
        curves of prefills that run beside decodes)."""
        m = self.problem.llms[i]
        extra = {}
        if beside:
            extra = {"prompts": self._curve(i, size, "prompts", prefill_sm),
                     "prompts_mix": self._prompts_mix(i, size, prefill_sm),
                     "max_group": max(1, int(self.limits.max_prefill_tokens // max(m.prompt_len, 1.0)))}
        return Member(
            rate=m.rate, output_len=m.output_len, cap=cap, decode_sm=decode_sm, prefill_sm=prefill_sm,
            decode=self._curve(i, size, "decode", decode_sm), prefill=self._curve(i, size, "prefill", prefill_sm),
            prefills=self._curve(i, size, "prefills", 1.0), mix=self._decode_mix(i, size, decode_sm) if mix else None,
            alone=self._alone_stats(i, size, decode_sm), **extra)

    def _curve(self, i: int, size: int, phase: str, sm: float) -> Curve:
        """Per-batch curve of LLM i on ``size`` GPUs: ``prefill`` (ms to prefill a batch,
        in the groups the schedulers form), ``prefills`` (prefill jobs per batch),
        ``prompts`` (ms to prefill that many prompts at once) or ``decode`` (ms per step),
        at share ``sm``."""
        key = (self._shape_id[i] if phase in ("decode", "prompts") else self._rated_id[i], size, phase, sm)
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
                elif phase == "prompts":
                    v = self.cost.prefill_ms(m.spec, self._b, m.prompt_len, tp=size, sm=sm)
                else:  # a decode step at the mean context of a request in flight
                    v = self.cost.decode_ms(m.spec, self._b, self._resident(m), tp=size, sm=sm)
                c = self._curves[rounded] = Curve(np.broadcast_to(np.asarray(v, dtype=float), self._b.shape), self._b)
            self._curves[key] = c
        return c

    def _prefill_in_groups(self, i: int, size: int, sm: float) -> np.ndarray:
        """Prefill time of ``b`` requests, per batch size ``b``, as the schedulers run it:
        a prefill starts at the first step boundary after a request is admissible, so it
        takes that request and those arriving during about one decode step (at most ``b``
        and what ``max_prefill_tokens`` allows), not the whole batch at once. Under overload a
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
        most = max(1, int(self.limits.max_prefill_tokens // max(m.prompt_len, 1.0)))
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
                _, kernel, hbm = job_inputs(terms(m.spec, self._b, self._b, kv, kv, tp=size, sm=sm))
                c = (np.broadcast_to(kernel, self._b.shape).tolist(), np.broadcast_to(hbm, self._b.shape).tolist())
            self._curves[key] = c
        return c

    def _prompts_mix(self, i: int, size: int, sm: float) -> tuple[list[float], list[float]] | None:
        """(kernel fraction, HBM demand) of a prefill of that many prompts, per count."""
        m = self.problem.llms[i]
        key = (self._shape_id[i], size, "prompts-mix", round(sm, 3))
        if key not in self._curves:
            terms = getattr(self.cost, "forward_terms", None)
            c = None
            if terms is not None:
                s = m.prompt_len
                t = self._b * s
                _, kernel, hbm = job_inputs(terms(m.spec, t, self._b, self._b * s * (s + 1) / 2, t, tp=size, sm=sm))
                c = (np.broadcast_to(kernel, self._b.shape).tolist(), np.broadcast_to(hbm, self._b.shape).tolist())
            self._curves[key] = c
        return self._curves[key]

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
