"""The moves of the flex search (:mod:`~muxsim.placement.flex`), as a mixin of its
:class:`~muxsim.placement.flex.Search`: each generates candidate changes as
``(changed meshes, added meshes, replica counts)``, which the search scores.

A move helps a few LLMs at a time (:meth:`Moves.focus`: the least met, else the most
loaded) and puts LLMs only on the least loaded meshes (:meth:`Moves._targets`), which
bounds a round on large clusters.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from muxsim.placement.flex import Replicas, Scored

FOCUS = 3  # moves help one of this many LLMs: the least met, else the most loaded
FOCUS_GROUPS = 3  # groups of FOCUS unmet LLMs tried in turn before the search stops
EVACUATE = 8  # meshes an evacuation may free, per move
TARGETS = 24  # meshes a move may put an LLM on (the least loaded), besides new ones



class Moves:
    """Move generators; the class using it provides ``rx``, ``est``, ``rates``, ``gpn``,
    ``most``, ``headroom``, ``attempt``, ``apply`` and ``score``."""

    rx: Replicas
    est: Any
    rates: list[float]
    gpn: int
    most: int
    headroom: float

    def _new_sizes(self, x: int) -> list[int]:
        return [s for s in self.rx.sizes if s >= self.rx.min_size[x] and self.est.supports(x, s)]

    def focus(self, cur: Scored, top: int = FOCUS) -> list[list[int]]:
        """The LLMs a move must help, ``top`` at a time: those whose rate is not met, least
        met first (by the requests/s missing); with every rate met, the ``top`` most loaded
        (a move elsewhere cannot raise the throughput, nor lower the peak load)."""
        rates, n = self.rates, self.rx.n
        short = [(rates[i] - cur.t[i], i) for i in range(n) if cur.t[i] < rates[i] * (1 - 1e-9) - 1e-9]
        if not short and self.headroom != 1.0:
            short = [(self.headroom * rates[i] - cur.c[i], i) for i in range(n)
                     if cur.c[i] < self.headroom * rates[i] * (1 - 1e-9) - 1e-9]
        if not short:
            return [[i for _, i in cur.loads[:top]]]
        order = [i for _, i in sorted(short, key=lambda x: (-x[0], x[1]))][:top * FOCUS_GROUPS]
        return [order[k:k + top] for k in range(0, len(order), top)]

    def _targets(self, cur: Scored) -> list[int]:
        """The meshes a move may put an LLM on: the ``TARGETS`` whose LLMs are least loaded."""
        if len(cur.a.meshes) <= TARGETS:
            return list(range(len(cur.a.meshes)))
        loads = {i: ld for ld, i in cur.loads}
        return sorted(range(len(cur.a.meshes)), key=lambda k: (max(loads[i] for i in cur.a.meshes[k][1]), k))[:TARGETS]

    def _to_evacuate(self, cur: Scored, focus: list[int]) -> list[int]:
        """The meshes an evacuation may free: the ``EVACUATE`` whose LLMs are least loaded
        (the most room to spare elsewhere), none hosting an LLM of ``focus``."""
        loads = {i: ld for ld, i in cur.loads}
        cands = [(max(loads[i] for i in m), -s, k) for k, (s, m) in enumerate(cur.a.meshes)
                 if not any(x in m for x in focus)]
        return [k for _, _, k in sorted(cands)[:EVACUATE]]

    def moves(self, cur: Scored, focus: list[int]) -> Iterator[tuple[dict[int, tuple[int, ...]], list, dict[int, int]]]:
        """Single moves that touch an LLM of ``focus`` or a mesh it runs on:
        (changed meshes, added meshes, replica counts)."""
        a = cur.a
        rx = self.rx
        full = [len(m) >= self.most for _, m in a.meshes]
        near = self._targets(cur)
        for x in focus:  # more of x: a replica, or a replica moved (or resized)
            hosts = cur.hosts[x]
            if a.reps[x] < rx.top[x]:
                for k in near:
                    if k not in hosts and not full[k]:
                        yield {k: (*a.meshes[k][1], x)}, [], {x: a.reps[x] + 1}
                for s in self._new_sizes(x):
                    yield {}, [(s, (x,))], {x: a.reps[x] + 1}
            for h in hosts:
                yield from self._relocations(cur, x, h, full, near)
        seen: set[tuple[int, int]] = set()
        for x in focus:  # less beside x: a co-tenant moved, dropped or swapped away
            for h in cur.hosts[x]:
                for y in a.meshes[h][1]:
                    if y == x or (y, h) in seen:
                        continue
                    seen.add((y, h))
                    yield from self._relocations(cur, y, h, full, near)
                    if a.reps[y] >= 2:
                        yield {h: tuple(i for i in a.meshes[h][1] if i != y)}, [], {y: a.reps[y] - 1}
                    mh = a.meshes[h][1]
                    for q in near:
                        mq = a.meshes[q][1]
                        if q == h or y in mq:
                            continue
                        for z in mq:
                            if z not in mh and z not in focus:
                                yield ({h: (*(i for i in mh if i != y), z), q: (*(i for i in mq if i != z), y)},
                                       [], {})
        yield from self._reshapes(cur, focus)

    def _reshapes(self, cur: Scored, focus: list[int]) -> Iterator[tuple[dict, list, dict]]:
        """A mesh of an LLM of ``focus`` merged with another of its size into one twice as
        large (their LLMs together; an LLM on both keeps one replica fewer), or split in
        two halves with its LLMs divided between them."""
        a = cur.a
        mine = sorted({h for x in focus for h in cur.hosts[x]})
        for h in mine:
            size, mh = a.meshes[h]
            if 2 * size <= self.gpn:
                for q, (sq, mq) in enumerate(a.meshes):
                    if q == h or sq != size or (q in mine and q < h):
                        continue
                    both = set(mh) & set(mq)
                    union = tuple(sorted(set(mh) | set(mq)))
                    if len(union) <= self.most:
                        yield {h: (), q: ()}, [(2 * size, union)], {x: a.reps[x] - 1 for x in both}
            if size >= 2 and len(mh) >= 2:
                first, rest = mh[0], mh[1:]
                for mask in range(1 << len(rest)):  # the half holding the first LLM, and the other
                    one = (first, *(x for k, x in enumerate(rest) if mask >> k & 1))
                    two = tuple(x for k, x in enumerate(rest) if not mask >> k & 1)
                    if two:
                        yield {h: ()}, [(size // 2, one), (size // 2, two)], {}

    def _relocations(self, cur: Scored, x: int, h: int, full: list[bool],
                     near: list[int]) -> Iterator[tuple[dict, list, dict]]:
        """LLM x (a replica of it) moved from mesh h to another mesh of ``near`` or a new one."""
        a = cur.a
        rest = tuple(i for i in a.meshes[h][1] if i != x)
        for k in near:
            if k != h and k not in cur.hosts[x] and not full[k]:
                yield {h: rest, k: (*a.meshes[k][1], x)}, [], {}
        for s in self._new_sizes(x):
            if s != a.meshes[h][0] or rest:
                yield {h: rest}, [(s, (x,))], {}

    def _evacuate(self, cur: Scored, k: int) -> Scored | None:
        """Mesh k emptied: each LLM on it dropped (a replica) or moved where the score
        suffers least; None if one fits nowhere. Mesh indices stay put until the last
        LLM leaves mesh k."""
        state = cur
        near = self._targets(cur)
        for x in cur.a.meshes[k][1]:
            a = state.a
            rest = tuple(i for i in a.meshes[k][1] if i != x)
            options: list[tuple[dict[int, tuple[int, ...]], list, dict[int, int]]] = []
            if a.reps[x] >= 2:
                options.append(({k: rest}, [], {x: a.reps[x] - 1}))
            for j in near:
                m = a.meshes[j][1]
                if j != k and x not in m and len(m) < self.most:
                    options.append(({k: rest, j: (*m, x)}, [], {}))
            best = None
            for ch, ad, rd in options:
                key = self.attempt(state, ch, ad, rd, cut=False)
                if key is not None and (best is None or key > best[0]):
                    best = (key, ch, ad, rd)
            if best is None:
                return None
            nxt = self.score(self.apply(a, *best[1:]))
            if nxt is None:
                return None
            state = nxt
        return state

    def _gifts(self, ev: Scored, freed: tuple[int, tuple[int, ...]],
               focus: list[int]) -> Iterator[tuple[dict, list, dict]]:
        """After an evacuation: a new replica of an LLM of ``focus`` on the freed GPUs, or
        one alone on its mesh moved to a larger one that the freed GPUs make room for."""
        a = ev.a
        for x in focus:
            sizes = self._new_sizes(x)
            if a.reps[x] < self.rx.top[x]:
                for s in sizes:
                    if s <= freed[0]:
                        yield {}, [(s, (x,))], {x: a.reps[x] + 1}
            for h in ev.hosts[x]:
                size, m = a.meshes[h]
                for s in sizes:
                    if s > size and s <= size + freed[0]:
                        yield {h: tuple(i for i in m if i != x)}, [(s, (x,))], {}
