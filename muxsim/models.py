"""Model catalog: decoder-only transformer architectures and what follows from them.

Every figure in ``CATALOG`` is copied from the model's Hugging Face ``config.json``
(``num_hidden_layers``, ``hidden_size``, ``num_attention_heads``,
``num_key_value_heads``, ``intermediate_size``, ``vocab_size``, ``torch_dtype``,
``tie_word_embeddings``; Qwen2 adds biases to the Q/K/V projections). A model can also
be given inline as a dict of the same fields (tiny ones are how the tests run the
executor on a CPU) or as a path to a ``config.json``.

Two flags describe the decoders that are not LLaMA-shaped: ``gated_mlp = False`` for a
two-matrix MLP (GELU; phi-2) instead of SwiGLU's three, and ``parallel_residual = True``
for a layer whose attention and MLP read one shared norm and are added to the residual
together (phi-2, GPT-J). The cost model reads both; the executor's decoder is LLaMA-shaped
only.

Derived quantities (parameter count, weight bytes per GPU under tensor parallelism,
KV bytes per token, FLOPs per token) are plain methods so the optimizer and the
simulator share one definition.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from muxsim.errors import InputError

DTYPE_BYTES = {"float16": 2, "bfloat16": 2, "float32": 4, "fp16": 2, "bf16": 2, "fp32": 4}


@dataclass(frozen=True)
class ModelSpec:
    """A LLaMA-style decoder: RMSNorm, rotary attention (MHA or GQA), SwiGLU MLP."""

    name: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    head_dim: int = 0  # 0: hidden // heads
    dtype: str = "float16"
    tie_embeddings: bool = False
    qkv_bias: bool = False
    gated_mlp: bool = True  # SwiGLU (gate, up, down); False: two matrices (up, down)
    parallel_residual: bool = False  # one norm feeds attention and MLP side by side

    @property
    def mlp_matrices(self) -> int:
        return 3 if self.gated_mlp else 2

    @property
    def norms_per_layer(self) -> int:
        return 1 if self.parallel_residual else 2

    def __post_init__(self) -> None:
        where = f"model {self.name!r}"
        for f in ("layers", "hidden", "heads", "kv_heads", "intermediate", "vocab"):
            v = getattr(self, f)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise InputError(f"{where}: {f} must be a positive integer, got {v!r}")
        if self.head_dim == 0:
            if self.hidden % self.heads:
                raise InputError(f"{where}: hidden ({self.hidden}) is not a multiple of heads ({self.heads})")
            object.__setattr__(self, "head_dim", self.hidden // self.heads)
        if not isinstance(self.head_dim, int) or self.head_dim < 1:
            raise InputError(f"{where}: head_dim must be a positive integer, got {self.head_dim!r}")
        if self.heads % self.kv_heads:
            raise InputError(f"{where}: heads ({self.heads}) is not a multiple of kv_heads ({self.kv_heads})")
        if self.dtype not in DTYPE_BYTES:
            raise InputError(f"{where}: dtype must be one of {sorted(DTYPE_BYTES)}, got {self.dtype!r}")
        for f in ("gated_mlp", "parallel_residual"):
            if not isinstance(getattr(self, f), bool):
                raise InputError(f"{where}: {f} must be true or false, got {getattr(self, f)!r}")

    # ---- sizes -------------------------------------------------------------------
    @property
    def dtype_bytes(self) -> int:
        return DTYPE_BYTES[self.dtype]

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    def layer_params(self) -> int:
        """Parameters of one decoder layer (attention, MLP, two RMSNorm weights)."""
        h = self.hidden
        attn = h * self.q_dim + 2 * h * self.kv_dim + self.q_dim * h
        if self.qkv_bias:
            attn += self.q_dim + 2 * self.kv_dim
        mlp = self.mlp_matrices * h * self.intermediate
        return attn + mlp + self.norms_per_layer * h

    def embedding_params(self) -> int:
        """Input embedding plus LM head (one matrix when tied)."""
        n = self.vocab * self.hidden
        return n if self.tie_embeddings else 2 * n

    def param_count(self) -> int:
        return self.layers * self.layer_params() + self.embedding_params() + self.hidden

    def weight_bytes(self) -> int:
        return self.param_count() * self.dtype_bytes

    def kv_heads_per_gpu(self, tp: int = 1) -> int:
        """KV heads each GPU holds; heads are replicated when tp exceeds kv_heads."""
        check_tp(self, tp)
        return max(1, self.kv_heads // tp)

    def weight_bytes_per_gpu(self, tp: int = 1) -> int:
        """Bytes of weights each GPU of a tensor-parallel group holds (Megatron sharding:
        Q/O, MLP and vocabulary split ``tp`` ways; K/V split by KV head, replicated when
        ``tp`` > ``kv_heads``; norms replicated)."""
        check_tp(self, tp)
        h = self.hidden
        kv_cols = self.kv_heads_per_gpu(tp) * self.head_dim
        attn = (h * self.q_dim + self.q_dim * h) // tp + 2 * h * kv_cols
        if self.qkv_bias:
            attn += self.q_dim // tp + 2 * kv_cols
        mlp = self.mlp_matrices * h * self.intermediate // tp
        emb = math.ceil(self.embedding_params() / tp)
        params = self.layers * (attn + mlp + self.norms_per_layer * h) + emb + h
        return params * self.dtype_bytes

    def kv_bytes_per_token(self, tp: int = 1) -> int:
        """K and V bytes one token adds to the cache, summed over the ``tp`` GPUs."""
        return 2 * self.layers * self.kv_heads_per_gpu(tp) * tp * self.head_dim * self.dtype_bytes

    def kv_bytes_per_token_per_gpu(self, tp: int = 1) -> int:
        return 2 * self.layers * self.kv_heads_per_gpu(tp) * self.head_dim * self.dtype_bytes

    def flops_per_token(self, context: float = 0.0) -> float:
        """Forward FLOPs for one token attending to ``context`` earlier tokens
        (2 per multiply-add: GEMMs over all non-embedding weights plus the LM head,
        and QK^T and PV over the context)."""
        gemm = 2.0 * (self.layers * (self.layer_params() - self.norms_per_layer * self.hidden)
                      + self.vocab * self.hidden)
        attn = 4.0 * self.layers * self.q_dim * context
        return gemm + attn

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], name: str | None = None) -> ModelSpec:
        if not isinstance(d, dict):
            raise InputError(f"model: expected an object with layers, hidden, heads..., got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InputError(f"model: unknown field(s) {', '.join(unknown)} in inline architecture")
        args = dict(d)
        args.setdefault("name", name or "inline")
        args.setdefault("kv_heads", args.get("heads", 0))
        missing = [f for f in ("layers", "hidden", "heads", "intermediate", "vocab") if f not in args]
        if missing:
            raise InputError(f"model: inline architecture is missing {', '.join(missing)}")
        return cls(**args)


def check_tp(model: ModelSpec, tp: int) -> None:
    if not isinstance(tp, int | float) or tp != int(tp) or tp < 1:
        raise InputError(f"tp: must be a positive integer, got {tp!r}")
    tp = int(tp)
    if model.heads % tp:
        raise InputError(f"tp: {tp} does not divide the {model.heads} attention heads of {model.name}")


def _llama(name: str, layers: int, hidden: int, heads: int, kv: int, inter: int, vocab: int = 32000,
           dtype: str = "float16", **kw: Any) -> ModelSpec:
    return ModelSpec(name, layers, hidden, heads, kv, inter, vocab, dtype=dtype, **kw)


# name -> architecture, from each model's config.json on the Hugging Face Hub.
CATALOG: dict[str, ModelSpec] = {
    m.name: m
    for m in [
        # LLaMA-1 (huggyllama/llama-*): MHA, vocab 32000, fp16
        _llama("llama-7b", 32, 4096, 32, 32, 11008),
        _llama("llama-13b", 40, 5120, 40, 40, 13824),
        _llama("llama-30b", 60, 6656, 52, 52, 17920),
        _llama("llama-65b", 80, 8192, 64, 64, 22016),
        # Llama 2 (meta-llama/Llama-2-*-hf): 70B uses GQA with 8 KV heads
        _llama("llama-2-7b", 32, 4096, 32, 32, 11008),
        _llama("llama-2-13b", 40, 5120, 40, 40, 13824),
        _llama("llama-2-70b", 80, 8192, 64, 8, 28672),
        # Llama 3 (meta-llama/Meta-Llama-3-*): GQA, vocab 128256, bf16
        _llama("llama-3-8b", 32, 4096, 32, 8, 14336, 128256, "bfloat16"),
        _llama("llama-3-70b", 80, 8192, 64, 8, 28672, 128256, "bfloat16"),
        # Mistral-7B-v0.1: GQA 8 KV heads, bf16
        _llama("mistral-7b", 32, 4096, 32, 8, 14336, 32000, "bfloat16"),
        # Qwen2.5 (Qwen/Qwen2.5-*): GQA, vocab 152064, bias on Q/K/V, bf16
        _llama("qwen2.5-7b", 28, 3584, 28, 4, 18944, 152064, "bfloat16", qkv_bias=True),
        _llama("qwen2.5-14b", 48, 5120, 40, 8, 13824, 152064, "bfloat16", qkv_bias=True),
        _llama("qwen2.5-32b", 64, 5120, 40, 8, 27648, 152064, "bfloat16", qkv_bias=True),
        _llama("qwen2.5-72b", 80, 8192, 64, 8, 29568, 152064, "bfloat16", qkv_bias=True),
        # The other models of the public A100/H100 operator profiles (see docs/fidelity.md)
        _llama("codellama-34b", 48, 8192, 64, 8, 22016, 32000, "bfloat16"),  # codellama/CodeLlama-34b-hf
        _llama("internlm-20b", 60, 5120, 40, 40, 13824, 103168, "bfloat16"),  # internlm/internlm-20b
        # Qwen/Qwen-72B (Qwen 1): MHA, bias on Q/K/V; its config's intermediate_size (49152)
        # counts both SwiGLU halves, so each MLP matrix is 24576 wide
        _llama("qwen-72b", 80, 8192, 64, 64, 24576, 152064, "bfloat16", qkv_bias=True),
        # microsoft/phi-2: GELU MLP (two matrices), one LayerNorm per layer feeding attention
        # and MLP in parallel, biases everywhere (counted only on Q/K/V here)
        _llama("phi-2", 32, 2560, 32, 32, 10240, 51200, "float16", qkv_bias=True, gated_mlp=False,
               parallel_residual=True),
    ]
}


def from_hf_config(path: str | Path, name: str | None = None) -> ModelSpec:
    """Read a Hugging Face ``config.json`` (LLaMA, Mistral, Qwen2 and alike)."""
    p = Path(path)
    try:
        cfg = json.loads(p.read_text())
    except FileNotFoundError:
        raise InputError(f"model: config file {str(p)!r} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"model: {str(p)!r} is not valid JSON ({e})") from None
    if not isinstance(cfg, dict):
        raise InputError(f"model: {str(p)!r} does not hold a JSON object")
    need = {
        "num_hidden_layers": "layers",
        "hidden_size": "hidden",
        "num_attention_heads": "heads",
        "intermediate_size": "intermediate",
        "vocab_size": "vocab",
    }
    missing = [k for k in need if k not in cfg]
    if missing:
        raise InputError(f"model: {str(p)!r} lacks {', '.join(missing)}")
    dtype = str(cfg.get("torch_dtype") or cfg.get("dtype") or "float16")
    model_type = str(cfg.get("model_type", ""))
    inter = cfg["intermediate_size"]
    if model_type == "qwen" and isinstance(inter, int):
        inter //= 2  # Qwen 1 counts both SwiGLU halves in intermediate_size
    phi = model_type in ("phi", "gptj")
    return ModelSpec(
        name=name or p.parent.name or p.stem,
        layers=cfg["num_hidden_layers"],
        hidden=cfg["hidden_size"],
        heads=cfg["num_attention_heads"],
        kv_heads=cfg.get("num_key_value_heads") or cfg["num_attention_heads"],
        intermediate=inter,
        vocab=cfg["vocab_size"],
        head_dim=cfg.get("head_dim") or 0,
        dtype=dtype if dtype in DTYPE_BYTES else "float16",
        tie_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        qkv_bias=bool(cfg.get("attention_bias", model_type.startswith("qwen") or phi)),
        gated_mlp=not phi,
        parallel_residual=phi,
    )


def resolve_model(spec: str | dict[str, Any] | ModelSpec, field: str = "model") -> ModelSpec:
    """A catalog name, an inline architecture dict, a ``config.json`` path, or a spec."""
    if isinstance(spec, ModelSpec):
        return spec
    if isinstance(spec, dict):
        try:
            return ModelSpec.from_dict(spec)
        except InputError as e:
            raise InputError(f"{field}: {str(e).removeprefix('model: ')}") from None
    if isinstance(spec, str):
        key = spec.strip().lower()
        if key in CATALOG:
            return CATALOG[key]
        if spec.endswith(".json") or Path(spec).is_file():
            try:
                return from_hf_config(spec)
            except InputError as e:
                raise InputError(f"{field}: {str(e).removeprefix('model: ')}") from None
        raise InputError(f"{field}: unknown model {spec!r} (known: {', '.join(CATALOG)}; "
                         "or give an inline architecture or a config.json path)")
    raise InputError(f"{field}: expected a model name, an inline architecture or a config.json path, got {spec!r}")
