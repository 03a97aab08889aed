"""The executor's driver without processes: the simulator's policies carried out on a
mesh's live state, with a fake worker answering jobs in any order. Every request
finishes with exactly its output length, KV blocks never exceed the pool (nor the
allocator's count), preempted requests are recomputed, and the pool is empty at the end."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from muxsim.executor.driver import Ledger, MeshDriver, UnitInfo
from muxsim.limits import blocks_for
from muxsim.plan import Unit
from muxsim.sim.config import SimConfig

LAYERS, KV_HEADS = 2, 2
COST = LAYERS * KV_HEADS


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        self.t += 0.001  # time never goes backwards
        return self.t


def _run(mode: str, prompts: list[int], outputs: list[int], names: list[int], total: int, picks: list[int],
         policy: str = "adbs") -> tuple[Ledger, MeshDriver, list[int]]:
    units = [UnitInfo(Unit(n, "llama-7b", 1, 0.5 if mode == "flex" else 1.0, 0.5 if mode == "flex" else 1.0,
                           0.5, 4), LAYERS, KV_HEADS, 1.0, 2 * i, 2 * i + 1) for i, n in enumerate("ab")]
    n = len(prompts)
    ledger = Ledger(["ab"[k] for k in names], [0.0] * n, prompts, outputs, [[1] * p for p in prompts])
    config = SimConfig(flex_policy=policy) if mode == "flex" else SimConfig()
    queue: list[tuple[int, str, dict]] = []
    driver = MeshDriver("m0", units, config.policy(mode), total, total, ledger, Clock(), itertools.count(),
                        submit=lambda wid, kind, job_id, payload: queue.append((job_id, kind, payload)))
    used_seen = []
    for rid in range(n):
        driver.on_arrival(names[rid], rid)
    step = 0
    while queue:
        job_id, _, payload = queue.pop(picks[step % len(picks)] % len(queue))  # answers in any order
        step += 1
        assert step < 100_000, "the run does not end"
        driver.on_done(job_id, [7] * len(payload["tokens"]))
        kv = driver.state.kv
        assert kv.used_total <= kv.total and kv.used_total == driver.alloc.used_blocks
        assert all(u >= 0 for u in kv.used)
        used_seen.append(kv.used_total)
    return ledger, driver, used_seen


requests = st.integers(1, 12).flatmap(lambda n: st.tuples(
    st.lists(st.integers(1, 70), min_size=n, max_size=n), st.lists(st.integers(1, 40), min_size=n, max_size=n),
    st.lists(st.integers(0, 1), min_size=n, max_size=n)))


@settings(max_examples=40, deadline=None)
@given(requests, st.integers(0, 6), st.lists(st.integers(0, 5), min_size=1, max_size=8),
       st.sampled_from(["flex", "temporal"]))
def test_every_request_finishes_within_the_pool(reqs: tuple, spare: int, picks: list[int], mode: str) -> None:
    prompts, outputs, names = reqs
    biggest = max(blocks_for(p + o) for p, o in zip(prompts, outputs)) * COST
    total = 2 * biggest + spare * COST  # each unit's quota (half the pool) holds its longest request
    ledger, driver, _ = _run(mode, prompts, outputs, names, total, picks)
    assert ledger.done == len(prompts)
    assert ledger.view.gen == outputs  # exactly the answer's length, recomputes included
    assert [len(t) for t in ledger.tokens] == [p + o for p, o in zip(prompts, outputs)]
    assert driver.alloc.used_blocks == 0 and driver.state.kv.used_total == 0
    for rid in range(len(prompts)):
        assert ledger.first[rid] <= ledger.finish[rid]


def test_memory_pressure_preempts_and_recomputes() -> None:
    n = 10
    prompts, outputs = [40] * n, [30] * n  # 70 tokens: 3 token blocks, 12 head-wise blocks each
    ledger, driver, used = _run("flex", prompts, outputs, [i % 2 for i in range(n)], total=48, picks=[0])
    assert driver.preemptions > 0 and sum(ledger.preemptions) == driver.preemptions
    assert ledger.done == n and ledger.view.gen == outputs
    assert max(used) <= 48
