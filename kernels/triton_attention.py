"""Triton attention kernels over the head-wise paged KV cache (see cache.py).

- :func:`paged_decode_attention`: one program per (sequence, KV head) walks that head's
  block table, 32 tokens a step, with an online softmax; the ``G`` query heads sharing
  the KV head (GQA) are one matrix, so each K/V block is read once per group.
- :func:`prefill_attention`: causal flash attention over variable-length sequences
  packed back to back (``cu_seqlens``); the first query head of each group also stores
  its tile's K and V into the paged cache.
- :func:`write_kv_cache`: scatter new tokens' K and V into their blocks (decode).

Signatures and semantics match ``reference.py``. Written against the Triton language
subset common to Triton 3.6 and 3.9; ``TRITON_INTERPRET=1`` runs them on CPU tensors.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from muxsim_kernels.cache import BLOCK_TOKENS


def _pow2(n: int, floor: int = 16) -> int:
    return max(floor, triton.next_power_of_2(n))


@triton.jit
def _decode_kernel(q_ptr, kc_ptr, vc_ptr, bt_ptr, lens_ptr, out_ptr, part_m_ptr, part_l_ptr, part_acc_ptr,
                   stride_qs, stride_qh, stride_bs, stride_bh, stride_os, stride_oh, scale, heads, num_parts,
                   GROUP: tl.constexpr, GROUP_PAD: tl.constexpr, HEAD_DIM: tl.constexpr,
                   D_PAD: tl.constexpr, BLOCK_T: tl.constexpr, SPLIT: tl.constexpr,
                   PART_BLOCKS: tl.constexpr):
    seq = tl.program_id(0)
    kvh = tl.program_id(1)
    part = tl.program_id(2)
    ctx = tl.load(lens_ptr + seq)
    g = tl.arange(0, GROUP_PAD)
    d = tl.arange(0, D_PAD)
    t = tl.arange(0, BLOCK_T)
    qmask = (g < GROUP)[:, None] & (d < HEAD_DIM)[None, :]
    q = tl.load(q_ptr + seq * stride_qs + (kvh * GROUP + g)[:, None] * stride_qh + d[None, :],
                mask=qmask, other=0.0)
    m_i = tl.full([GROUP_PAD], float("-inf"), tl.float32)
    l_i = tl.zeros([GROUP_PAD], tl.float32)
    acc = tl.zeros([GROUP_PAD, D_PAD], tl.float32)
    table = bt_ptr + seq * stride_bs + kvh * stride_bh
    n_blocks = tl.cdiv(ctx, BLOCK_T)
    if SPLIT:  # this program's slice of the context: PART_BLOCKS blocks
        j0 = part * PART_BLOCKS
        j1 = tl.minimum(n_blocks, j0 + PART_BLOCKS)
    else:
        j0 = 0
        j1 = n_blocks
    for j in range(j0, j1):
        block = tl.load(table + j).to(tl.int64)
        tmask = (j * BLOCK_T + t) < ctx
        offs = block * (BLOCK_T * HEAD_DIM) + t[:, None] * HEAD_DIM + d[None, :]
        kvmask = tmask[:, None] & (d < HEAD_DIM)[None, :]
        k = tl.load(kc_ptr + offs, mask=kvmask, other=0.0)
        v = tl.load(vc_ptr + offs, mask=kvmask, other=0.0)
        s = tl.dot(q, tl.trans(k)).to(tl.float32) * scale
        s = tl.where(tmask[None, :], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        alpha = tl.exp(m_i - m_new)
        p = tl.exp(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v).to(tl.float32)
        m_i = m_new
    if SPLIT:  # unnormalized partial results; an empty slice leaves m=-inf, l=0, acc=0
        row = (seq * heads + kvh * GROUP + g) * num_parts + part
        tl.store(part_m_ptr + row, m_i, mask=g < GROUP)
        tl.store(part_l_ptr + row, l_i, mask=g < GROUP)
        tl.store(part_acc_ptr + row.to(tl.int64)[:, None] * HEAD_DIM + d[None, :], acc, mask=qmask)
    else:
        out = acc / l_i[:, None]
        tl.store(out_ptr + seq * stride_os + (kvh * GROUP + g)[:, None] * stride_oh + d[None, :],
                 out.to(out_ptr.dtype.element_ty), mask=qmask)


@triton.jit
def _decode_reduce_kernel(part_m_ptr, part_l_ptr, part_acc_ptr, out_ptr, heads, num_parts,
                          stride_os, stride_oh, HEAD_DIM: tl.constexpr, D_PAD: tl.constexpr,
                          P_PAD: tl.constexpr):
    seq = tl.program_id(0)
    head = tl.program_id(1)
    p = tl.arange(0, P_PAD)
    d = tl.arange(0, D_PAD)
    pmask = p < num_parts
    row = (seq * heads + head) * num_parts + p
    m = tl.load(part_m_ptr + row, mask=pmask, other=float("-inf"))
    l_part = tl.load(part_l_ptr + row, mask=pmask, other=0.0)
    acc = tl.load(part_acc_ptr + row.to(tl.int64)[:, None] * HEAD_DIM + d[None, :],
                  mask=pmask[:, None] & (d < HEAD_DIM)[None, :], other=0.0)
    w = tl.exp(m - tl.max(m, 0))  # partition 0 is never empty, so the max is finite
    out = tl.sum(acc * w[:, None], 0) / tl.sum(l_part * w, 0)
    tl.store(out_ptr + seq * stride_os + head * stride_oh + d, out.to(out_ptr.dtype.element_ty),
             mask=d < HEAD_DIM)


def _partition_blocks(q: torch.Tensor, programs: int, max_context: int | None) -> int | None:
    """Blocks per context slice for split-KV decoding, or None for one pass: split only
    on a GPU, when (sequences x KV heads) cannot fill twice its SMs and contexts span more
    than 8 blocks; slices are a power of two of at least 8 blocks (256 tokens)."""
    if max_context is None or not q.is_cuda:
        return None
    blocks = triton.cdiv(max_context, BLOCK_TOKENS)
    target = 2 * torch.cuda.get_device_properties(q.device).multi_processor_count
    if programs >= target or blocks <= 8:
        return None
    parts = min(triton.cdiv(blocks, 8), triton.cdiv(target, programs))
    return max(8, triton.next_power_of_2(triton.cdiv(blocks, parts)))


def paged_decode_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                           block_tables: torch.Tensor, context_lens: torch.Tensor,
                           scale: float, *, max_context: int | None = None,
                           partition_blocks: int | None = None) -> torch.Tensor:
    """``max_context`` (an upper bound of ``context_lens``, known on the host) lets a GPU
    split long contexts across programs (flash-decoding) when the batch is small;
    ``partition_blocks`` forces a split with that many 32-token blocks per slice."""
    n, heads, head_dim = q.shape
    kv_heads = block_tables.shape[1]
    group = heads // kv_heads
    assert k_cache.is_contiguous() and v_cache.is_contiguous() and q.stride(2) == 1
    assert k_cache.shape[1] == BLOCK_TOKENS and block_tables.stride(2) == 1
    out = torch.empty_like(q)
    if n == 0:
        return out
    part = partition_blocks or _partition_blocks(q, n * kv_heads, max_context)
    split = part is not None
    if split:
        assert max_context is not None, "a split needs max_context"
        parts = triton.cdiv(triton.cdiv(max_context, BLOCK_TOKENS), part)
        part_m = torch.empty(n, heads, parts, dtype=torch.float32, device=q.device)
        part_l = torch.empty_like(part_m)
        part_acc = torch.empty(n, heads, parts, head_dim, dtype=torch.float32, device=q.device)
    else:
        parts, part = 1, 1
        part_m = part_l = part_acc = out  # unused placeholders
    _decode_kernel[(n, kv_heads, parts)](
        q, k_cache, v_cache, block_tables, context_lens, out, part_m, part_l, part_acc,
        q.stride(0), q.stride(1), block_tables.stride(0), block_tables.stride(1),
        out.stride(0), out.stride(1), float(scale), heads, parts,
        GROUP=group, GROUP_PAD=_pow2(group), HEAD_DIM=head_dim, D_PAD=_pow2(head_dim),
        BLOCK_T=BLOCK_TOKENS, SPLIT=split, PART_BLOCKS=part,
    )
    if split:
        _decode_reduce_kernel[(n, heads)](
            part_m, part_l, part_acc, out, heads, parts, out.stride(0), out.stride(1),
            HEAD_DIM=head_dim, D_PAD=_pow2(head_dim), P_PAD=_pow2(parts, 2),
        )
    return out


@triton.jit
def _prefill_kernel(q_ptr, k_ptr, v_ptr, cu_ptr, out_ptr, kc_ptr, vc_ptr, bt_ptr,
                    stride_qt, stride_qh, stride_kt, stride_kh, stride_vt, stride_vh,
                    stride_ot, stride_oh, stride_bs, stride_bh, scale,
                    GROUP: tl.constexpr, HEAD_DIM: tl.constexpr, D_PAD: tl.constexpr,
                    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_T: tl.constexpr,
                    WRITE_CACHE: tl.constexpr):
    tile = tl.program_id(0)
    head = tl.program_id(1)
    seq = tl.program_id(2)
    start = tl.load(cu_ptr + seq)
    length = tl.load(cu_ptr + seq + 1) - start
    if tile * BLOCK_M < length:
        kvh = head // GROUP
        d = tl.arange(0, D_PAD)
        dmask = d < HEAD_DIM
        offs_m = tile * BLOCK_M + tl.arange(0, BLOCK_M)
        mmask = offs_m < length
        rows = (start + offs_m).to(tl.int64)
        q = tl.load(q_ptr + rows[:, None] * stride_qt + head * stride_qh + d[None, :],
                    mask=mmask[:, None] & dmask[None, :], other=0.0)
        m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
        l_i = tl.zeros([BLOCK_M], tl.float32)
        acc = tl.zeros([BLOCK_M, D_PAD], tl.float32)
        end = tl.minimum(length, (tile + 1) * BLOCK_M)
        for n0 in range(0, end, BLOCK_N):
            offs_n = n0 + tl.arange(0, BLOCK_N)
            nmask = offs_n < length
            cols = (start + offs_n).to(tl.int64)
            kvmask = nmask[:, None] & dmask[None, :]
            k = tl.load(k_ptr + cols[:, None] * stride_kt + kvh * stride_kh + d[None, :],
                        mask=kvmask, other=0.0)
            v = tl.load(v_ptr + cols[:, None] * stride_vt + kvh * stride_vh + d[None, :],
                        mask=kvmask, other=0.0)
            s = tl.dot(q, tl.trans(k)).to(tl.float32) * scale
            keep = (offs_m[:, None] >= offs_n[None, :]) & nmask[None, :]
            s = tl.where(keep, s, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(s, 1))
            alpha = tl.exp(m_i - m_new)
            p = tl.exp(s - m_new[:, None])
            l_i = l_i * alpha + tl.sum(p, 1)
            acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v).to(tl.float32)
            m_i = m_new
        out = acc / l_i[:, None]
        omask = mmask[:, None] & dmask[None, :]
        tl.store(out_ptr + rows[:, None] * stride_ot + head * stride_oh + d[None, :],
                 out.to(out_ptr.dtype.element_ty), mask=omask)
        if WRITE_CACHE:
            if head % GROUP == 0:
                block = tl.load(bt_ptr + seq * stride_bs + kvh * stride_bh + offs_m // BLOCK_T,
                                mask=mmask, other=0).to(tl.int64)
                dst = block[:, None] * (BLOCK_T * HEAD_DIM) + (offs_m % BLOCK_T)[:, None] * HEAD_DIM \
                    + d[None, :]
                kt = tl.load(k_ptr + rows[:, None] * stride_kt + kvh * stride_kh + d[None, :],
                             mask=omask, other=0.0)
                vt = tl.load(v_ptr + rows[:, None] * stride_vt + kvh * stride_vh + d[None, :],
                             mask=omask, other=0.0)
                tl.store(kc_ptr + dst, kt.to(kc_ptr.dtype.element_ty), mask=omask)
                tl.store(vc_ptr + dst, vt.to(vc_ptr.dtype.element_ty), mask=omask)


def prefill_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu_seqlens: torch.Tensor,
                      scale: float, k_cache: torch.Tensor | None = None,
                      v_cache: torch.Tensor | None = None,
                      block_tables: torch.Tensor | None = None, *,
                      max_seqlen: int | None = None, block_m: int = 64,
                      block_n: int = 32) -> torch.Tensor:
    _, heads, head_dim = q.shape
    kv_heads = k.shape[1]
    n = cu_seqlens.numel() - 1
    assert q.stride(2) == 1 and k.stride(2) == 1 and v.stride(2) == 1
    if max_seqlen is None:
        max_seqlen = int((cu_seqlens[1:] - cu_seqlens[:-1]).max()) if n else 0
    out = torch.empty_like(q)
    if n == 0 or max_seqlen == 0:
        return out
    write = k_cache is not None
    if write:
        assert v_cache is not None and block_tables is not None
        assert k_cache.is_contiguous() and v_cache.is_contiguous() and block_tables.stride(2) == 1
        kc, vc, bt = k_cache, v_cache, block_tables
        sb0, sb1 = bt.stride(0), bt.stride(1)
    else:
        kc, vc, bt, sb0, sb1 = q, q, cu_seqlens, 0, 0  # unused placeholders
    grid = (triton.cdiv(max_seqlen, block_m), heads, n)
    _prefill_kernel[grid](
        q, k, v, cu_seqlens, out, kc, vc, bt,
        q.stride(0), q.stride(1), k.stride(0), k.stride(1), v.stride(0), v.stride(1),
        out.stride(0), out.stride(1), sb0, sb1, float(scale),
        GROUP=heads // kv_heads, HEAD_DIM=head_dim, D_PAD=_pow2(head_dim),
        BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_T=BLOCK_TOKENS, WRITE_CACHE=write,
        num_warps=8,  # 4 spill registers at head_dim 128 (python -m muxsim_kernels.aot)
    )
    return out


@triton.jit
def _write_kv_kernel(k_ptr, v_ptr, kc_ptr, vc_ptr, bt_ptr, seq_ptr, pos_ptr,
                     stride_kt, stride_kh, stride_vt, stride_vh, stride_bs, stride_bh,
                     HEAD_DIM: tl.constexpr, D_PAD: tl.constexpr, BLOCK_T: tl.constexpr):
    tok = tl.program_id(0)
    kvh = tl.program_id(1)
    seq = tl.load(seq_ptr + tok)
    pos = tl.load(pos_ptr + tok)
    block = tl.load(bt_ptr + seq * stride_bs + kvh * stride_bh + pos // BLOCK_T).to(tl.int64)
    d = tl.arange(0, D_PAD)
    mask = d < HEAD_DIM
    dst = block * (BLOCK_T * HEAD_DIM) + (pos % BLOCK_T) * HEAD_DIM + d
    k = tl.load(k_ptr + tok * stride_kt + kvh * stride_kh + d, mask=mask)
    v = tl.load(v_ptr + tok * stride_vt + kvh * stride_vh + d, mask=mask)
    tl.store(kc_ptr + dst, k.to(kc_ptr.dtype.element_ty), mask=mask)
    tl.store(vc_ptr + dst, v.to(vc_ptr.dtype.element_ty), mask=mask)


def write_kv_cache(k: torch.Tensor, v: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                   block_tables: torch.Tensor, seq_index: torch.Tensor, positions: torch.Tensor) -> None:
    tokens, kv_heads, head_dim = k.shape
    assert k_cache.is_contiguous() and v_cache.is_contiguous() and block_tables.stride(2) == 1
    if tokens == 0:
        return
    _write_kv_kernel[(tokens, kv_heads)](
        k, v, k_cache, v_cache, block_tables, seq_index, positions,
        k.stride(0), k.stride(1), v.stride(0), v.stride(1),
        block_tables.stride(0), block_tables.stride(1),
        HEAD_DIM=head_dim, D_PAD=_pow2(head_dim, 1), BLOCK_T=BLOCK_TOKENS,
    )
