"""Routing among replicas: which copy of an LLM an arriving request goes to.

An LLM placed on several meshes (replicas) receives each request on the replica with
the fewest requests outstanding (routed there and not finished); ties are taken in
turn, starting after the replica chosen last for that LLM. A replica's share of the
LLM's rate (what ADBS's initial KV quotas read) is the rate over its number of
replicas. The simulator and the executor both route with :class:`Router`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


class Router:
    """Fewest outstanding, ties in turn; remembers each LLM's turn."""

    __slots__ = ("_turn",)

    def __init__(self) -> None:
        self._turn: dict[str, int] = {}  # per replicated name: where the next tie-break starts

    def pick(self, name: str, outstanding: Sequence[int]) -> int:
        """The index of the replica (among ``outstanding``, one count per replica) that
        the next request of ``name`` goes to."""
        n = len(outstanding)
        if n == 1:
            return 0
        start = self._turn.get(name, 0)
        best = min(range(n), key=lambda k: (outstanding[(start + k) % n], k))
        pick = (start + best) % n
        self._turn[name] = (pick + 1) % n
        return pick


def replica_counts(names: Iterable[str]) -> dict[str, int]:
    """How many replicas each LLM has, from the names of a plan's units."""
    out: dict[str, int] = {}
    for n in names:
        out[n] = out.get(n, 0) + 1
    return out


def replica_rate(rate: float, replicas: int) -> float:
    """A replica's share of its LLM's rate."""
    return rate / replicas
