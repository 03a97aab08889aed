"""The policies as an executor would use them: on a view filled by hand (plain data,
:class:`muxsim.policy.view.MeshState`), and the same decisions on the simulator's live
view and on a copy of it as plain data, at every wake-up of random simulations; a policy
never changes what it reads."""

from __future__ import annotations

import copy
from collections import deque

from hypothesis import HealthCheck, given, settings

from muxsim.limits import blocks_for
from muxsim.policy import FLEX_POLICIES, TEMPORAL_POLICIES
from muxsim.policy.common import rotations
from muxsim.policy.decisions import Cut, Decode, Preempt, Prefill, SetQuotas
from muxsim.policy.view import (
    DECODE_JOB,
    PREFILL_JOB,
    JobState,
    KVState,
    MeshState,
    RequestState,
    UnitState,
)
from muxsim.sim.run import Simulation
from tests.test_sim_properties import cases


# ---- an executor of decisions on plain data (one step at a time) ----------------------
def mesh_state(waiting, running=(), decode_sm=(0.5, 0.5), prefill_sm=1.0, blocks=100, prompt=40):
    """Units 0..n-1; ``waiting[i]``: request ids waiting at unit i (arrival = id);
    ``running[i]``: (id, context) running at unit i."""
    n = len(waiting)
    ids = sorted({r for q in waiting for r in q} | {r for q in running for r, _ in q})
    top = max(ids, default=0) + 1
    units = [UnitState(i, f"u{i}", 16, prefill_sm, decode_sm[i], 1, waiting=deque(waiting[i])) for i in range(n)]
    for i, q in enumerate(running):
        for r, ctx in q:
            units[i].run[r] = None
            units[i].contexts[r] = ctx
            units[i].arrival[r] = float(r)
    used = [sum(blocks_for(c) for _, c in q) for q in running] + [0] * (n - len(running))
    kv = KVState(blocks, used, [blocks // n] * n)
    req = RequestState([float(r) for r in range(top)], [prompt] * top, [0] * top)
    return MeshState(units, kv, req)


def execute(mesh, decisions):
    """Carry decisions out on plain data (a step-level executor); returns them."""
    out = []
    for d in decisions:
        out.append(d)
        if isinstance(d, Prefill):
            u = mesh.units[d.unit]
            for r in d.rids:
                u.waiting.remove(r)
                mesh.kv.used[d.unit] += blocks_for(mesh.requests.prompt[r]) * u.cost_blocks
            u.prefill = JobState(PREFILL_JOB, d.sm, u, list(d.rids))
            mesh.jobs.append(u.prefill)
        elif isinstance(d, Decode):
            u = mesh.units[d.unit]
            if u.next_step_blocks() * u.cost_blocks <= mesh.kv.limit(d.unit):  # else nothing starts
                u.decode = JobState(DECODE_JOB, d.sm, u)
                mesh.jobs.append(u.decode)
        elif isinstance(d, Preempt):
            u = mesh.units[d.unit]
            r = next(reversed(u.run))
            del u.run[r]
            mesh.kv.used[d.unit] -= blocks_for(u.contexts.pop(r)) * u.cost_blocks
            u.waiting.appendleft(r)
            u.preempted = True
        elif isinstance(d, SetQuotas):
            mesh.kv.quota, mesh.kv.quotas = list(d.quotas), d.enforce
    return out


def test_adbs_prefills_first_in_turn_and_holds_decodes_back_while_a_prefill_waits():
    mesh = mesh_state([[0, 1], [2]], [[], [(9, 50)]])
    sched = FLEX_POLICIES["adbs"].scheduler(mesh)
    execute(mesh, sched.start())
    # unit 0 prefills (its two requests); unit 1's prefill would pass 120% of the SMs:
    # every decode run ends at its step, and with prefill priority no decode starts
    assert execute(mesh, sched.schedule()) == [Prefill(0, [0, 1], 1.0), Cut()]
    assert mesh.sm_used == 1.0


def test_round_robin_without_priority_decodes_beside_a_prefill_that_fits():
    mesh = mesh_state([[0], []], [[], [(9, 50)]], decode_sm=(0.3, 0.3), prefill_sm=0.6)
    sched = FLEX_POLICIES["round-robin"].scheduler(mesh)
    execute(mesh, sched.start())
    assert execute(mesh, sched.schedule()) == [Prefill(0, [0], 0.6), Decode(1, 512, 0.3)]
    assert abs(mesh.sm_used - 0.9) < 1e-12


def test_fcfs_takes_the_unit_with_the_oldest_request():
    mesh = mesh_state([[5], [3]])
    sched = FLEX_POLICIES["fcfs"].scheduler(mesh)
    execute(mesh, sched.start())
    assert execute(mesh, sched.schedule())[0] == Prefill(1, [3], 1.0)
    turns = TEMPORAL_POLICIES["fcfs"].scheduler(mesh_state([[5], [3]]))
    assert list(turns.schedule()) == [Prefill(1, [3], 1.0)]


def test_the_newest_requests_are_preempted_until_the_next_step_fits():
    # two running requests whose last blocks are full (contexts 64 and 32): the next step
    # needs 2 blocks; the pool has 3 of which 3 are in use
    mesh = mesh_state([[]], [[(0, 64), (1, 32)]], decode_sm=(1.0,), blocks=3)
    sched = TEMPORAL_POLICIES["fcfs"].scheduler(mesh)
    got = execute(mesh, sched.schedule())
    assert got == [Preempt(0), Decode(0, 512, 1.0)]
    assert list(mesh.units[0].run) == [0] and list(mesh.units[0].waiting) == [1]


# ---- the live view and a plain copy of it decide alike; nothing is written -------------
def snapshot(mesh):
    """The runtime's view of ``mesh`` copied into plain data."""
    req = mesh.requests
    units = []
    for u in mesh.units:
        units.append(UnitState(u.idx, u.name, u.max_batch, u.prefill_sm, u.decode_sm, u.cost_blocks, u.kv_share,
                               u.rate, deque(u.waiting), dict(u.run), list(u.pending), preempted=u.preempted,
                               contexts={r: req.base[r] + u.steps for r in u.run},
                               arrival={r: req.arrival[r] for r in u.run}, spare=u.spare_lookahead()))
    jobs = []
    for j in mesh.jobs:
        s = JobState(j.kind, j.sm, units[j.unit.idx], list(j.rids))
        jobs.append(s)
        if j.kind == PREFILL_JOB:
            units[j.unit.idx].prefill = s
        else:
            units[j.unit.idx].decode = s
    kv = KVState(mesh.kv.total, list(mesh.kv.used), list(mesh.kv.quota), mesh.kv.quotas)
    return MeshState(units, kv, RequestState(list(req.arrival), list(req.prompt), list(req.gen)), jobs, mesh.now)


def fingerprint(mesh):
    req = mesh.requests
    return (mesh.sm_used, tuple(mesh.kv.used), tuple(mesh.kv.quota), mesh.kv.quotas, len(mesh.jobs),
            tuple((tuple(u.waiting), tuple(u.run), tuple(u.pending), u.preempted, u.prefill is None,
                   u.decode is None) for u in mesh.units),
            tuple(req.gen), tuple(req.state))


def watch(mesh, seen):
    """Wrap ``mesh``'s scheduler: at every scheduling round, a copy of the scheduler on a
    plain copy of the view must decide the same first thing, and nothing the policy reads
    may change while it decides."""
    sched = mesh.scheduler
    live = type(sched).schedule

    def schedule(*_, **kw):
        if kw:  # a turn passed on within a round: nothing new to compare
            yield from live(sched, **kw)
            return
        clone = copy.copy(sched)
        clone.mesh = snap = snapshot(mesh)
        clone.units = snap.units
        clone._rotations = rotations(snap.units)
        expect = next(iter(live(clone)), None)
        gen = iter(live(sched))
        while True:
            before = fingerprint(mesh)
            try:
                d = next(gen)
            except StopIteration:
                assert fingerprint(mesh) == before
                return
            assert fingerprint(mesh) == before  # the policy only reads
            if expect is not None:
                assert d == expect, (d, expect)
                seen.append(d)
                expect = None
            yield d

    sched.schedule = schedule
    sched.on_prefill_end = schedule
    if getattr(type(sched), "on_decode_end", None) is live or not getattr(sched, "adapt", False):
        sched.on_decode_end = schedule


def run_watched(plan, wl, reqs, cfg, cost, memory):
    sim = Simulation(plan, wl, reqs, 0, cost=cost, memory=memory, config=cfg)
    seen: list = []
    for mesh in sim.meshes:
        watch(mesh, seen)
    sim.run()
    res = sim.results()
    assert res.aggregate["completed"] + res.run["unfinished"] == len(reqs)
    return seen, res.run["preemptions"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_policies_decide_alike_on_the_live_view_and_on_plain_data(case):
    run_watched(*case)


def test_the_watch_sees_every_kind_of_decision():
    from muxsim.sim import SimConfig
    from tests.test_sim_toys import Entry, StandIn, ToyCost, ToyMemory, make_plan, requests

    units = [{"name": "x", "decode_sm": 0.6, "kv_share": 0.5}, {"name": "y", "decode_sm": 0.6, "kv_share": 0.5}]
    rows = [(0.001 * i, "xy"[i % 2], 30 + (7 * i) % 40, 20 + (11 * i) % 60) for i in range(60)]
    seen, preemptions = run_watched(make_plan([units], "flex"), StandIn([Entry("x"), Entry("y")], duration_s=0.1),
                       requests(rows), SimConfig(adapt_period_s=0.01), ToyCost(), ToyMemory(blocks=12))
    # the first decision of each round (a preemption never comes first: it follows a
    # decode that did not start), and preemptions made under the watch
    assert {"Prefill", "Decode", "Cut", "ReleaseLookahead"} <= {type(d).__name__ for d in seen}
    assert preemptions > 0
