"""Head-wise paged KV cache bookkeeping: blocks, a block allocator, block tables.

A *block* holds the K and V of one KV head of one layer for ``BLOCK_TOKENS`` (32)
consecutive tokens of one sequence (MuxServe's head-wise cache: any model's heads can
take any free block of the shared pool). The block size is the one every part of muxsim
shares (:mod:`muxsim.limits`). The pool is two tensors
``k_cache, v_cache`` of shape ``[num_blocks, BLOCK_TOKENS, head_dim]``.

A sequence's *block table* is an int array ``[layers, kv_heads, max_blocks]``: entry
``[l, h, j]`` is the block holding tokens ``32*j .. 32*j+31`` of head ``h`` in layer
``l``. Holding ``t`` tokens therefore costs ``layers * kv_heads * ceil(t / 32)`` blocks,
the figure ``muxsim.memory.MemoryModel.blocks_per_token_block`` uses.

This module is plain Python and numpy (no torch), so the executor and the tests can
use the allocator without a GPU stack.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from muxsim.limits import BLOCK_TOKENS
from muxsim.limits import blocks_for as blocks_for_tokens


class CacheFullError(RuntimeError):
    """The pool has fewer free blocks than a request needs (nothing was allocated)."""


class BlockAllocator:
    """A free list of block ids ``0 .. num_blocks-1``; lowest ids are handed out first."""

    def __init__(self, num_blocks: int) -> None:
        if num_blocks < 1:
            raise ValueError(f"num_blocks: must be >= 1, got {num_blocks}")
        self.num_blocks = num_blocks
        self._free = list(range(num_blocks - 1, -1, -1))  # pop() from the end: lowest id first
        self._used: set[int] = set()

    @property
    def free_blocks(self) -> int:
        return len(self._free)

    @property
    def used_blocks(self) -> int:
        return len(self._used)

    def allocate(self, n: int) -> list[int]:
        """``n`` distinct free blocks, or :class:`CacheFullError` and no change."""
        if n < 0:
            raise ValueError(f"n: must be >= 0, got {n}")
        if n > len(self._free):
            raise CacheFullError(f"KV cache full: need {n} blocks, {len(self._free)} free")
        ids = [self._free.pop() for _ in range(n)]
        self._used.update(ids)
        return ids

    def free(self, ids: list[int] | np.ndarray) -> None:
        for b in (int(i) for i in ids):
            if b not in self._used:
                raise ValueError(f"block {b} is not allocated")
            self._used.remove(b)
            self._free.append(b)


@dataclass
class SequenceBlocks:
    """The block table of one sequence and how many tokens it holds."""

    layers: int
    kv_heads: int
    table: np.ndarray = field(default=None)  # type: ignore[assignment]  # [layers, kv_heads, n]
    tokens: int = 0

    def __post_init__(self) -> None:
        if self.table is None:
            self.table = np.zeros((self.layers, self.kv_heads, 0), dtype=np.int32)

    @property
    def capacity(self) -> int:
        return self.table.shape[2] * BLOCK_TOKENS

    def reserve(self, allocator: BlockAllocator, tokens: int) -> None:
        """Grow the table so it can hold ``tokens`` tokens (all or nothing)."""
        need = blocks_for_tokens(tokens) - self.table.shape[2]
        if need <= 0:
            return
        ids = allocator.allocate(need * self.layers * self.kv_heads)
        extra = np.asarray(ids, dtype=np.int32).reshape(self.layers, self.kv_heads, need)
        self.table = np.concatenate([self.table, extra], axis=2)

    def release(self, allocator: BlockAllocator) -> None:
        allocator.free(self.table.reshape(-1))
        self.table = np.zeros((self.layers, self.kv_heads, 0), dtype=np.int32)
        self.tokens = 0


def stack_tables(seqs: list[SequenceBlocks], min_blocks: int = 1) -> np.ndarray:
    """Block tables of ``seqs`` as one ``[n, layers, kv_heads, max_blocks]`` int32 array
    (unused entries are 0; the kernels never read past a sequence's length)."""
    width = max([min_blocks, *(s.table.shape[2] for s in seqs)])
    out = np.zeros((len(seqs), seqs[0].layers, seqs[0].kv_heads, width), dtype=np.int32)
    for i, s in enumerate(seqs):
        out[i, :, :, : s.table.shape[2]] = s.table
    return out
