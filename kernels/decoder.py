"""A minimal LLaMA-style decoder over the head-wise paged KV cache.

Built from a catalog architecture (``muxsim.models``) with random weights or weights
from a local safetensors directory. On a GPU it runs the Triton kernels; on a CPU the
PyTorch references (``backend="auto"``); either can be forced. It is what the profiler
times: ``prefill_step`` (whole prompts, K/V written to the cache) and ``decode_step``
(one token per sequence against its cached context).

Tensor parallelism: construct one decoder per rank with that rank's weight shards
(``weights.shard_weights`` / ``random_weights(tp=, rank=)``) and a
``torch.distributed`` process group; O and down projections are all-reduced and the
LM head's vocabulary slices all-gathered.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from muxsim_kernels import weights as wts
from muxsim_kernels.cache import (
    BLOCK_TOKENS,
    BlockAllocator,
    SequenceBlocks,
    blocks_for_tokens,
    stack_tables,
)
from muxsim_kernels.ops import get_ops
from muxsim_kernels.reference import rotary_inv_freq

from muxsim.models import ModelSpec, resolve_model


class Decoder:
    """One model (or one tensor-parallel shard of it) plus its KV block pool."""

    def __init__(self, spec: ModelSpec | str | dict, weights: wts.Weights, *, num_blocks: int,
                 device: str = "cpu", backend: str = "auto", tp: int = 1, rank: int = 0,
                 group=None, rope_base: float = 10000.0, eps: float = 1e-5) -> None:
        self.spec = resolve_model(spec)
        s = self.spec
        wts.check_shardable(s, tp)
        self.tp, self.rank, self.group = tp, rank, group
        self.device = torch.device(device)
        self.ops = get_ops(backend, str(device))
        self.eps = eps
        self.heads = s.heads // tp
        self.kv_heads = max(1, s.kv_heads // tp)
        self.head_dim = s.head_dim
        self.scale = s.head_dim ** -0.5
        self.inv_freq = rotary_inv_freq(s.head_dim, rope_base, device=self.device)
        w = {k: v.to(self.device) for k, v in weights.items()}
        self.dtype = w["model.embed_tokens.weight"].dtype
        self.embed = w["model.embed_tokens.weight"]
        self.norm = w["model.norm.weight"]
        self.lm_head = w.get("lm_head.weight", self.embed)
        self.gather_logits = self.lm_head.shape[0] != s.vocab
        self.layers = []
        for i in range(s.layers):
            p = f"model.layers.{i}."
            qkv = torch.cat([w[p + f"self_attn.{x}_proj.weight"] for x in "qkv"])
            bias = torch.cat([w[p + f"self_attn.{x}_proj.bias"] for x in "qkv"]) if s.qkv_bias else None
            self.layers.append({
                "attn_norm": w[p + "input_layernorm.weight"],
                "qkv": qkv, "qkv_bias": bias,
                "o": w[p + "self_attn.o_proj.weight"],
                "mlp_norm": w[p + "post_attention_layernorm.weight"],
                "gate_up": torch.cat([w[p + "mlp.gate_proj.weight"], w[p + "mlp.up_proj.weight"]]),
                "down": w[p + "mlp.down_proj.weight"],
            })
        shape = (num_blocks, BLOCK_TOKENS, s.head_dim)
        self.k_cache = torch.empty(shape, dtype=self.dtype, device=self.device)
        self.v_cache = torch.empty(shape, dtype=self.dtype, device=self.device)
        self.allocator = BlockAllocator(num_blocks)
        self.seqs: dict[int, SequenceBlocks] = {}
        self._next_id = 0

    @classmethod
    def random(cls, spec, *, seed: int = 0, dtype: torch.dtype = torch.float32, device: str = "cpu",
               tp: int = 1, rank: int = 0, **kw) -> Decoder:
        spec = resolve_model(spec)
        return cls(spec, wts.random_weights(spec, seed=seed, dtype=dtype, device=device, tp=tp, rank=rank),
                   device=device, tp=tp, rank=rank, **kw)

    @classmethod
    def from_safetensors(cls, spec, path, *, dtype: torch.dtype = torch.float16, device: str = "cpu",
                         tp: int = 1, rank: int = 0, **kw) -> Decoder:
        spec = resolve_model(spec)
        w = wts.load_weights_dir(path, spec, dtype=dtype, device=device, tp=tp, rank=rank)
        return cls(spec, w, device=device, tp=tp, rank=rank, **kw)

    # ---- cache bookkeeping -----------------------------------------------------------
    def blocks_per_sequence(self, tokens: int) -> int:
        return self.spec.layers * self.kv_heads * blocks_for_tokens(tokens)

    def new_sequence(self, capacity_tokens: int = 0) -> int:
        seq = SequenceBlocks(self.spec.layers, self.kv_heads)
        seq.reserve(self.allocator, capacity_tokens)
        sid, self._next_id = self._next_id, self._next_id + 1
        self.seqs[sid] = seq
        return sid

    def release(self, seq_id: int) -> None:
        self.seqs.pop(seq_id).release(self.allocator)

    def block_tables(self, seq_ids: Sequence[int]) -> torch.Tensor:
        """``[n, layers, kv_heads, max_blocks]`` int32 on the device."""
        table = stack_tables([self.seqs[i] for i in seq_ids])
        return torch.from_numpy(table).to(self.device)

    # ---- the forward pass --------------------------------------------------------------
    def _all_reduce(self, x: torch.Tensor) -> torch.Tensor:
        if self.tp > 1:
            torch.distributed.all_reduce(x, group=self.group)
        return x

    def _logits(self, h: torch.Tensor) -> torch.Tensor:
        logits = h @ self.lm_head.T
        if self.tp > 1 and self.gather_logits:
            parts = [torch.empty_like(logits) for _ in range(self.tp)]
            torch.distributed.all_gather(parts, logits.contiguous(), group=self.group)
            logits = torch.cat(parts, dim=-1)
        return logits.float()

    def _forward(self, tokens: torch.Tensor, positions: torch.Tensor, attend) -> torch.Tensor:
        ops, qd, kd = self.ops, self.heads * self.head_dim, self.kv_heads * self.head_dim
        t = tokens.shape[0]
        h = self.embed[tokens]
        residual = None
        for i, w in enumerate(self.layers):
            if residual is None:
                x, residual = ops.rms_norm(h, w["attn_norm"], self.eps), h
            else:
                x, residual = ops.rms_norm(h, w["attn_norm"], self.eps, residual)
            qkv = x @ w["qkv"].T
            if w["qkv_bias"] is not None:
                qkv = qkv + w["qkv_bias"]
            q = qkv[:, :qd].view(t, self.heads, self.head_dim)
            k = qkv[:, qd : qd + kd].view(t, self.kv_heads, self.head_dim)
            v = qkv[:, qd + kd :].view(t, self.kv_heads, self.head_dim)
            q, k = ops.apply_rotary(q, k, positions, self.inv_freq)
            o = attend(i, q, k, v)
            h = self._all_reduce(o.reshape(t, qd) @ w["o"].T)
            x, residual = ops.rms_norm(h, w["mlp_norm"], self.eps, residual)
            h = self._all_reduce(ops.silu_and_mul(x @ w["gate_up"].T) @ w["down"].T)
        h, _ = ops.rms_norm(h, self.norm, self.eps, residual)
        return h

    @torch.inference_mode()
    def prefill_step(self, seq_ids: Sequence[int], tokens: torch.Tensor, lengths: Sequence[int],
                     block_tables: torch.Tensor | None = None) -> torch.Tensor:
        """Whole prompts packed back to back (``tokens`` ``[sum(lengths)]``) from
        position 0; writes their K/V into the sequences' blocks (which must already hold
        ``lengths[i]`` tokens of capacity). Returns each prompt's last-token logits."""
        bt = self.block_tables(seq_ids) if block_tables is None else block_tables
        cu_list = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        cu = torch.from_numpy(cu_list).to(self.device)
        positions = torch.from_numpy(np.concatenate([np.arange(n) for n in lengths]).astype(np.int32))
        positions = positions.to(self.device)
        max_len = int(max(lengths))
        extra = {"max_seqlen": max_len} if self.ops.name == "triton" else {}

        def attend(i, q, k, v):
            return self.ops.prefill_attention(q, k, v, cu, self.scale, self.k_cache, self.v_cache,
                                              bt[:, i], **extra)

        h = self._forward(tokens.to(self.device), positions, attend)
        last = torch.from_numpy(cu_list[1:] - 1).long().to(self.device)
        return self._logits(h[last])

    @torch.inference_mode()
    def decode_step(self, seq_ids: Sequence[int], tokens: torch.Tensor, positions: torch.Tensor,
                    block_tables: torch.Tensor | None = None,
                    max_context: int | None = None) -> torch.Tensor:
        """One new token per sequence at ``positions[i]`` (its K/V is written there),
        attending to positions ``0..positions[i]``. Returns logits ``[n, vocab]``.
        ``max_context`` (>= every ``positions[i] + 1``, known on the host) lets the GPU
        kernel split long contexts when the batch is small."""
        bt = self.block_tables(seq_ids) if block_tables is None else block_tables
        positions = positions.to(self.device, torch.int32)
        seq_index = torch.arange(len(seq_ids), dtype=torch.int32, device=self.device)
        context = positions + 1

        def attend(i, q, k, v):
            self.ops.write_kv_cache(k, v, self.k_cache, self.v_cache, bt[:, i], seq_index, positions)
            return self.ops.paged_decode_attention(q, self.k_cache, self.v_cache, bt[:, i], context,
                                                   self.scale, max_context=max_context)

        return self._logits(self._forward(tokens.to(self.device), positions, attend))

    # ---- a tiny engine: prompts in, next-token logits out --------------------------------
    def prefill(self, prompts: Sequence[Sequence[int]]) -> tuple[list[int], torch.Tensor]:
        """Admit new sequences; returns their ids and last-token logits ``[n, vocab]``."""
        ids = [self.new_sequence(len(p)) for p in prompts]
        flat = torch.tensor([t for p in prompts for t in p], dtype=torch.long)
        logits = self.prefill_step(ids, flat, [len(p) for p in prompts])
        for i, p in zip(ids, prompts):
            self.seqs[i].tokens = len(p)
        return ids, logits

    def decode(self, seq_ids: Sequence[int], tokens: Sequence[int]) -> torch.Tensor:
        """Append one token to each sequence; returns next-token logits ``[n, vocab]``."""
        for i in seq_ids:
            self.seqs[i].reserve(self.allocator, self.seqs[i].tokens + 1)
        held = [self.seqs[i].tokens for i in seq_ids]
        positions = torch.tensor(held, dtype=torch.int32)
        logits = self.decode_step(seq_ids, torch.tensor(list(tokens), dtype=torch.long), positions,
                                  max_context=max(held) + 1)
        for i in seq_ids:
            self.seqs[i].tokens += 1
        return logits
