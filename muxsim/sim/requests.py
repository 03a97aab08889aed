"""The request table: every request of a run and its state, in one object.

One row per request (sorted by arrival; a request's id is its row), kept as columns of
plain Python lists (cheap to index in the hot loop): the inputs ``names``, ``arrival``,
``prompt``, ``output``; and the state the runtime changes, only through the methods
below: ``state`` (waiting, in prefill, pending, running, done), ``gen`` (tokens
generated so far), ``first`` and ``finish`` (times, NaN until then), ``preempt``
(times preempted), and while it runs, ``base`` (its context minus its unit's decode
step count) and ``fin_step`` (the unit's step count at which it finishes). A request
waiting for a (re)prefill has its prompt and its ``gen`` tokens so far to process.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from muxsim.errors import InputError
from muxsim.limits import MAX_REQUESTS, MAX_TIME_S, MAX_TOKENS, blocks_for

REQUEST_COLUMNS = ("arrival_s", "name", "prompt_len", "output_len")

# request states
WAITING, PREFILL, PENDING, RUNNING, DONE = range(5)


class RequestTable:
    def __init__(self, requests: pd.DataFrame, windows: dict[str, tuple[int, str]], *, truncate: bool = False,
                 max_requests: int = MAX_REQUESTS) -> None:
        """``requests``: a DataFrame with ``REQUEST_COLUMNS`` (checked by
        :func:`check_requests`); ``windows``: per LLM the plan serves, its model's context
        window and name (any other LLM is refused; a longer request is refused, or cut
        to fit with ``truncate``)."""
        from muxsim.workload.generate import fit_to_context

        df = check_requests(requests, max_requests)
        names = df["name"].astype(str).tolist()
        unknown = sorted(set(names) - set(windows))
        if unknown:
            raise InputError(f"requests.name: LLM(s) {', '.join(unknown)} are not in the plan")
        arrival = df["arrival_s"].to_numpy(dtype=float)
        df = fit_to_context(df, windows, truncate)
        prompt = df["prompt_len"].to_numpy(dtype=np.int64)
        output = df["output_len"].to_numpy(dtype=np.int64)
        n = len(df)
        self.names = names
        self.arrival: list[float] = arrival.tolist()
        self.prompt = [int(x) for x in prompt]
        self.output = [int(x) for x in output]
        self.gen = [0] * n
        self.first = [math.nan] * n
        self.finish = [math.nan] * n
        self.preempt = [0] * n
        self.state = [WAITING] * n
        self.fin_step = [-1] * n
        self.base = [0] * n
        self.done = 0  # requests finished

    def __len__(self) -> int:
        return len(self.arrival)

    def longest(self) -> int:
        """The most tokens any request holds (prompt + output; 1 without requests)."""
        return max((p + o for p, o in zip(self.prompt, self.output)), default=1)

    # ---- transitions (the runtime's only way to change a request) -------------------
    def start_prefill(self, rids: list[int]) -> tuple[int, int, int]:
        """Requests enter a prefill job; returns (tokens, attention pairs, token blocks)
        of the job: each processes its prompt and its tokens so far."""
        prompt = self.prompt
        gen = self.gen
        state = self.state
        tokens = pairs = blocks = 0
        for r in rids:
            length = prompt[r] + gen[r]
            tokens += length
            pairs += length * (length + 1) // 2
            blocks += blocks_for(length)
            state[r] = PREFILL
        return tokens, pairs, blocks

    def end_prefill(self, rids: list[int], now: float, pending: list[int]) -> list[int]:
        """A prefill job ended: each request produced a token (its first, unless it was
        recomputed after a preemption). Those with more to generate are appended to
        ``pending``; returns those done."""
        gen = self.gen
        first = self.first
        output = self.output
        state = self.state
        done = []
        for rid in rids:
            gen[rid] += 1
            if first[rid] != first[rid]:  # NaN: this is the first token
                first[rid] = now
            if gen[rid] >= output[rid]:
                self.complete(rid, now)
                done.append(rid)
            else:
                state[rid] = PENDING
                pending.append(rid)
        return done

    def join(self, rid: int, steps: int) -> int:
        """A pending request joins its unit's batch when the unit has decoded ``steps``
        steps (``fin_step`` says when it finishes). Returns its context."""
        gen = self.gen[rid]
        ctx = self.prompt[rid] + gen - 1
        self.base[rid] = ctx - steps
        self.state[rid] = RUNNING
        self.fin_step[rid] = steps + self.output[rid] - gen
        return ctx

    def finished_at(self, rid: int, step: int) -> bool:
        """Whether ``rid`` is running and finishes at its unit's step ``step`` (a stale
        entry of a preempted or finished request is not)."""
        return self.state[rid] == RUNNING and self.fin_step[rid] == step

    def decoded(self, rid: int, now: float) -> None:
        """A running request generated its last token."""
        self.gen[rid] = self.output[rid]
        self.complete(rid, now)

    def preempted(self, rid: int, ctx: int) -> None:
        """A running request holding ``ctx`` tokens is preempted: it waits for a prefill
        of its prompt and the tokens it generated."""
        self.gen[rid] = ctx - self.prompt[rid] + 1
        self.state[rid] = WAITING
        self.preempt[rid] += 1

    def migrating(self, rid: int, ctx: int) -> None:
        """A running request holding ``ctx`` tokens moves to another unit with its KV:
        it joins that unit's batch as it stands."""
        self.gen[rid] = ctx - self.prompt[rid] + 1
        self.state[rid] = PENDING

    def complete(self, rid: int, now: float) -> None:
        self.state[rid] = DONE
        self.finish[rid] = now
        self.done += 1


def check_requests(requests: Any, max_requests: int = MAX_REQUESTS) -> pd.DataFrame:
    """A request table (``arrival_s, name, prompt_len, output_len``) sorted by arrival,
    each field checked; at most ``max_requests`` rows."""
    if not isinstance(requests, pd.DataFrame):
        raise InputError("requests: expected a DataFrame with columns " + ", ".join(REQUEST_COLUMNS))
    missing = [c for c in REQUEST_COLUMNS if c not in requests.columns]
    if missing:
        raise InputError(f"requests: missing column(s) {', '.join(missing)}")
    if len(requests) > max_requests:
        raise InputError(f"requests: {len(requests)} requests, more than the limit of {max_requests} "
                         "(raise it with --max-requests)")
    df = requests.sort_values("arrival_s", kind="stable").reset_index(drop=True)
    try:
        arrival = df["arrival_s"].to_numpy(dtype=float)
        prompt = df["prompt_len"].to_numpy(dtype=float)
        output = df["output_len"].to_numpy(dtype=float)
    except (TypeError, ValueError):
        raise InputError("requests: arrival_s, prompt_len and output_len must be numbers") from None
    if len(df) and not (np.all(np.isfinite(arrival)) and arrival.min() >= 0 and arrival.max() <= MAX_TIME_S):
        raise InputError(f"requests.arrival_s: must be finite, >= 0 and <= {MAX_TIME_S:g}")
    for col, x in (("prompt_len", prompt), ("output_len", output)):
        if len(df) and not (np.all(x == np.rint(x)) and x.min() >= 1 and x.max() <= MAX_TOKENS):
            raise InputError(f"requests.{col}: must be whole numbers in [1, {MAX_TOKENS}]")
    return df
