"""Mesh groups: ways to cut the cluster into meshes (GPU sets inside one node).

A node of ``g`` GPUs splits into meshes whose sizes are powers of two summing to ``g``
(for 8: [8], [4,4], [4,2,2], ... [1x8], ten in all). A mesh group combines one split
per node. The estimator does not care which node a mesh sits on, so groups are kept as
multisets of mesh sizes (sorted tuples): [4,4]+[2,2,2,2] and [4,2,2]+[4,2,2] are one
group. Groups with more meshes than LLMs (than nodes, when LLMs are fewer) are pruned (a
mesh would stay idle), and so are groups whose largest mesh is smaller than the largest
model needs.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from muxsim.errors import InputError


def powers_of_two(limit: int) -> tuple[int, ...]:
    out, p = [], 1
    while p <= limit:
        out.append(p)
        p *= 2
    return tuple(out)


@lru_cache(maxsize=64)
def node_splits(gpus_per_node: int) -> tuple[tuple[int, ...], ...]:
    """Partitions of ``gpus_per_node`` into powers of two, each descending, largest first."""
    sizes = powers_of_two(gpus_per_node)[::-1]

    def parts(rest: int, largest: int) -> Iterator[tuple[int, ...]]:
        if rest == 0:
            yield ()
            return
        for s in sizes:
            if s <= largest and s <= rest:
                for tail in parts(rest - s, s):
                    yield (s, *tail)

    return tuple(parts(gpus_per_node, gpus_per_node))


def _is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def mesh_groups(nodes: int, gpus_per_node: int, *, max_meshes: int | None = None,
                min_largest: int = 1, limit: int | None = None, deadline: Any = None,
                capacities: tuple[int, ...] | None = None) -> list[tuple[int, ...]] | None:
    """Every distinct multiset of mesh sizes the cluster can be cut into (each a tuple,
    descending), with at most ``max_meshes`` meshes and a largest mesh of at least
    ``min_largest``; with ``capacities``, node n offers only that many GPUs. Returns
    None when there are more than ``limit`` of them. With a ``deadline``
    (:class:`~muxsim.placement.result.Deadline`) the enumeration raises SearchTimeout
    once it passes."""
    if nodes < 1 or gpus_per_node < 1:
        raise InputError("cluster: nodes and gpus_per_node must be >= 1")
    caps = tuple(capacities) if capacities is not None else (gpus_per_node,) * nodes
    cap = max_meshes if max_meshes is not None else sum(caps)
    if _is_power_of_two(gpus_per_node) and all(x == gpus_per_node for x in caps):
        found = _count_vectors(nodes * gpus_per_node, powers_of_two(gpus_per_node)[::-1], cap, limit, deadline)
    else:
        found = _node_dp(caps, cap, limit, deadline)
    if found is None:
        return None
    return sorted((g for g in found if g and g[0] >= min_largest), key=lambda g: (len(g), g))


def _count_vectors(total: int, sizes: tuple[int, ...], cap: int, limit: int | None,
                   deadline: Any = None) -> list[tuple[int, ...]] | None:
    # sizes are powers of two dividing gpus_per_node: any multiset summing to the cluster
    # packs into whole nodes (first-fit decreasing fills each node exactly)
    out: list[tuple[int, ...]] = []

    def rec(k: int, rest: int, acc: tuple[int, ...]) -> bool:
        # the rest needs at least ceil(rest / largest size left) more meshes
        if len(acc) > cap or (rest and len(acc) + -(-rest // sizes[k]) > cap):
            return True
        if deadline is not None:
            deadline.check()
        if rest == 0:
            out.append(acc)
            return limit is None or len(out) <= limit
        if k == len(sizes) - 1:
            if len(acc) + rest // sizes[k] <= cap:
                out.append(acc + (sizes[k],) * (rest // sizes[k]))
            return limit is None or len(out) <= limit
        s = sizes[k]
        for n in range(rest // s, -1, -1):
            if not rec(k + 1, rest - n * s, acc + (s,) * n):
                return False
        return True

    return out if rec(0, total, ()) else None


def _node_dp(caps: tuple[int, ...], cap: int, limit: int | None,
             deadline: Any = None) -> list[tuple[int, ...]] | None:
    states: set[tuple[int, ...]] = {()}
    for g in caps:
        nxt = set()
        for st in states:
            if deadline is not None:
                deadline.check()
            for split in node_splits(g) if g > 0 else ((),):
                t = tuple(sorted(st + split, reverse=True))
                if len(t) <= cap:
                    nxt.add(t)
        states = nxt
        if limit is not None and len(states) > limit * 4:
            return None
    out = sorted(states)
    return None if limit is not None and len(out) > limit else out


def layout(sizes: tuple[int, ...] | list[int], nodes: int, gpus_per_node: int,
           capacities: tuple[int, ...] | None = None) -> list[tuple[int, tuple[int, ...]]]:
    """Place meshes of ``sizes`` (in the given order) on nodes (node n offering
    ``capacities[n]`` GPUs, default all): returns (node, gpus) per mesh. First fit, largest first, which is optimal for sizes that divide one another
    (powers of two), with an exact search behind it for a few meshes of other sizes;
    raises InputError when they do not fit."""
    order = sorted(range(len(sizes)), key=lambda k: -sizes[k])
    caps = list(capacities) if capacities is not None else [gpus_per_node] * nodes
    where_ = f"nodes offering {caps} GPUs" if capacities is not None else f"{nodes} node(s) of {gpus_per_node} GPUs"
    free = list(caps)
    where: dict[int, int] = {}
    for k in order:  # first fit decreasing: the exact search's first path, without recursion
        n = next((n for n in range(nodes) if free[n] >= sizes[k]), None)
        if n is None:
            break
        free[n] -= sizes[k]
        where[k] = n
    if len(where) < len(sizes):
        if len(sizes) > 64:
            raise InputError(f"cluster: meshes of sizes {list(sizes)[:8]}... do not fit {where_}")
        free = list(caps)
        where = {}
        if not _exact_layout(sizes, order, free, where, nodes):
            raise InputError(f"cluster: meshes of sizes {list(sizes)} do not fit {where_}")
    used = [0] * nodes
    out: list[tuple[int, tuple[int, ...]]] = [(where[k], ()) for k in range(len(sizes))]
    # contiguous GPUs, largest meshes first inside each node
    for k in order:
        n = where[k]
        out[k] = (n, tuple(range(used[n], used[n] + sizes[k])))
        used[n] += sizes[k]
    return out


def _exact_layout(sizes: tuple[int, ...] | list[int], order: list[int], free: list[int], where: dict[int, int],
                  nodes: int) -> bool:
    def rec(j: int) -> bool:
        if j == len(order):
            return True
        k = order[j]
        tried = set()
        for n in range(nodes):
            if free[n] >= sizes[k] and free[n] not in tried:
                tried.add(free[n])
                free[n] -= sizes[k]
                where[k] = n
                if rec(j + 1):
                    return True
                free[n] += sizes[k]
        return False

    return rec(0)


def packs(sizes: list[int] | tuple[int, ...], capacities: tuple[int, ...]) -> bool:
    """Whether meshes of ``sizes`` fit nodes offering ``capacities`` GPUs."""
    if sum(sizes) > sum(capacities):
        return False
    whole = _whole_node_sizes(tuple(capacities))
    if whole and set(sizes) <= whole:
        return True  # powers of two dividing the node size fill whole nodes (first fit decreasing)
    try:
        layout(list(sizes), len(capacities), max(capacities, default=0), capacities)
    except InputError:
        return False
    return True


@lru_cache(maxsize=64)
def _whole_node_sizes(capacities: tuple[int, ...]) -> frozenset[int]:
    """Mesh sizes that always pack when their sum fits: the powers of two up to the node
    size, when every node offers the same power of two (else none)."""
    g = capacities[0] if capacities else 0
    if not _is_power_of_two(g) or any(c != g for c in capacities):
        return frozenset()
    return frozenset(powers_of_two(g))
