"""Plain PyTorch references of every kernel: the CPU path and the tests' ground truth.

Shapes (``T`` new tokens, ``n`` sequences, ``H`` query heads, ``Hk`` KV heads,
``D`` head_dim, ``G = H // Hk`` query heads per KV head):

- ``q`` ``[T, H, D]``, ``k``/``v`` ``[T, Hk, D]``; sequences are packed back to back and
  ``cu_seqlens`` ``[n+1]`` holds their start offsets (``cu_seqlens[-1] == T``).
- ``k_cache``/``v_cache`` ``[num_blocks, 32, D]``: the head-wise block pool (cache.py).
- ``block_tables`` ``[n, Hk, max_blocks]`` int: one layer's block tables.

Every function here has a Triton twin of the same name and signature in
``triton_attention`` / ``triton_layers``. Arithmetic runs in float32 and results are
cast back to the input dtype, as the kernels do.
"""

from __future__ import annotations

import torch
from muxsim_kernels.cache import BLOCK_TOKENS


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6,
             residual: torch.Tensor | None = None):
    """``x * rsqrt(mean(x^2) + eps) * weight`` over the last dimension.

    With ``residual``, first forms ``s = x + residual`` and returns ``(norm(s), s)``
    (the fused add-and-norm of a pre-norm decoder layer)."""
    xf = x.float()
    if residual is not None:
        xf = xf + residual.float()
    var = xf.pow(2).mean(dim=-1, keepdim=True)
    y = (xf * torch.rsqrt(var + eps) * weight.float()).to(x.dtype)
    if residual is None:
        return y
    return y, xf.to(x.dtype)


def rotary_inv_freq(head_dim: int, base: float = 10000.0, device=None) -> torch.Tensor:
    """LLaMA's rotary frequencies, ``base^(-2i/D)`` for ``i < D/2`` (float32)."""
    return 1.0 / (base ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim))


def apply_rotary(q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor,
                 inv_freq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate each head's halves (GPT-NeoX / Hugging Face LLaMA layout) by
    ``positions[t] * inv_freq``; returns new ``(q, k)``."""
    ang = positions.float()[:, None] * inv_freq[None, :]  # [T, D/2]
    cos, sin = ang.cos()[:, None, :], ang.sin()[:, None, :]

    def rot(x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        half = xf.shape[-1] // 2
        x1, x2 = xf[..., :half], xf[..., half:]
        return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).to(x.dtype)

    return rot(q), rot(k)


def silu_and_mul(x: torch.Tensor) -> torch.Tensor:
    """``silu(gate) * up`` where ``x = [gate | up]`` along the last dimension."""
    gate, up = x.float().chunk(2, dim=-1)
    return (torch.nn.functional.silu(gate) * up).to(x.dtype)


def write_kv_cache(k: torch.Tensor, v: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                   block_tables: torch.Tensor, seq_index: torch.Tensor, positions: torch.Tensor) -> None:
    """Store token ``i``'s K and V (every KV head) at position ``positions[i]`` of
    sequence ``seq_index[i]`` (its row of ``block_tables``)."""
    hk = k.shape[1]
    pos = positions.long()
    rows = block_tables.long()[seq_index.long()]  # [T, Hk, max_blocks]
    blocks = torch.gather(rows, 2, (pos // BLOCK_TOKENS)[:, None, None].expand(-1, hk, 1)).squeeze(2)
    slots = (pos % BLOCK_TOKENS)[:, None].expand(-1, hk)
    k_cache[blocks, slots] = k.to(k_cache.dtype)
    v_cache[blocks, slots] = v.to(v_cache.dtype)


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float,
            causal: bool) -> torch.Tensor:
    """Softmax attention of ``q`` ``[Tq, H, D]`` over ``k, v`` ``[Tk, Hk, D]`` (GQA by
    repeating KV heads); causal aligns the last query with the last key."""
    group = q.shape[1] // k.shape[1]
    kf = k.float().repeat_interleave(group, dim=1)
    vf = v.float().repeat_interleave(group, dim=1)
    s = torch.einsum("qhd,khd->hqk", q.float(), kf) * scale
    if causal:
        tq, tk = q.shape[0], k.shape[0]
        mask = torch.ones(tq, tk, dtype=torch.bool, device=q.device).tril(diagonal=tk - tq)
        s = s.masked_fill(~mask, float("-inf"))
    return torch.einsum("hqk,khd->qhd", s.softmax(dim=-1), vf)


def prefill_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu_seqlens: torch.Tensor,
                      scale: float, k_cache: torch.Tensor | None = None,
                      v_cache: torch.Tensor | None = None,
                      block_tables: torch.Tensor | None = None) -> torch.Tensor:
    """Causal attention within each packed sequence; when a cache is given, also
    writes every token's K and V into it (sequence ``i`` uses ``block_tables[i]``)."""
    out = torch.empty_like(q)
    bounds = cu_seqlens.tolist()
    for i in range(len(bounds) - 1):
        a, b = bounds[i], bounds[i + 1]
        if b > a:
            out[a:b] = _attend(q[a:b], k[a:b], v[a:b], scale, causal=True).to(q.dtype)
    if k_cache is not None:
        assert v_cache is not None and block_tables is not None
        lens = cu_seqlens[1:] - cu_seqlens[:-1]
        seq_index = torch.repeat_interleave(torch.arange(len(lens), device=q.device), lens.long())
        positions = torch.arange(q.shape[0], device=q.device) - cu_seqlens.long()[seq_index]
        write_kv_cache(k, v, k_cache, v_cache, block_tables, seq_index, positions)
    return out


def gather_kv(k_cache: torch.Tensor, v_cache: torch.Tensor, table: torch.Tensor,
              length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``length`` tokens of one sequence as dense ``[length, Hk, D]`` K and V,
    read through its block table ``[Hk, max_blocks]``."""
    nb = -(-length // BLOCK_TOKENS)
    ids = table[:, :nb].long()  # [Hk, nb]
    k = k_cache[ids].reshape(ids.shape[0], nb * BLOCK_TOKENS, -1)[:, :length]
    v = v_cache[ids].reshape(ids.shape[0], nb * BLOCK_TOKENS, -1)[:, :length]
    return k.transpose(0, 1), v.transpose(0, 1)


def paged_decode_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                           block_tables: torch.Tensor, context_lens: torch.Tensor,
                           scale: float, *, max_context: int | None = None,
                           partition_blocks: int | None = None) -> torch.Tensor:
    """One query token per sequence (``q`` ``[n, H, D]``) attending to the first
    ``context_lens[i]`` tokens of its paged cache; returns ``[n, H, D]``. The keyword
    arguments only steer the Triton kernel's work split and are ignored here."""
    out = torch.empty_like(q)
    for i, length in enumerate(context_lens.tolist()):
        k, v = gather_kv(k_cache, v_cache, block_tables[i], int(length))
        out[i] = _attend(q[i : i + 1], k, v, scale, causal=False)[0].to(q.dtype)
    return out
