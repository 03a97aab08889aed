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

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from muxsim.errors import InputError, InputTypeError
from muxsim.limits import MAX_NAME_CHARS, MAX_PATH_CHARS, MAX_TOKENS

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
    max_context: int = 0  # tokens of prompt + answer it serves (0: not known, MAX_TOKENS)
    gated_mlp: bool = True  # SwiGLU (gate, up, down); False: two matrices (up, down)
    parallel_residual: bool = False  # one norm feeds attention and MLP side by side

    @property
    def mlp_matrices(self) -> int:
        return 3 if self.gated_mlp else 2

    @property
    def norms_per_layer(self) -> int:
        return 1 if self.parallel_residual else 2

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not 1 <= len(self.name) <= MAX_NAME_CHARS:
            raise InputError(f"model: name must be a string of 1 to {MAX_NAME_CHARS} characters, "
                             f"got {_short(self.name)}")
        where = f"model {self.name!r}"
        for f, hi in _SIZE_LIMITS.items():
            v = getattr(self, f)
            if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= hi:
                raise InputError(f"{where}: {f} must be an integer in [1, {hi}], got {_short(v)}")
        if self.head_dim == 0:
            if self.hidden % self.heads:
                raise InputError(f"{where}: hidden ({self.hidden}) is not a multiple of heads ({self.heads})")
            object.__setattr__(self, "head_dim", self.hidden // self.heads)
        if not isinstance(self.head_dim, int) or isinstance(self.head_dim, bool) or not 1 <= self.head_dim <= 1 << 16:
            raise InputError(f"{where}: head_dim must be an integer in [1, 65536], got {_short(self.head_dim)}")
        if (not isinstance(self.max_context, int) or isinstance(self.max_context, bool)
                or not 0 <= self.max_context <= MAX_TOKENS):
            raise InputError(f"{where}: max_context must be an integer in [0, {MAX_TOKENS}] (0: not known), "
                             f"got {_short(self.max_context)}")
        for f in ("tie_embeddings", "qkv_bias"):
            if not isinstance(getattr(self, f), bool):
                raise InputError(f"{where}: {f} must be true or false, got {_short(getattr(self, f))}")
        if self.heads % self.kv_heads:
            raise InputError(f"{where}: heads ({self.heads}) is not a multiple of kv_heads ({self.kv_heads})")
        if self.dtype not in DTYPE_BYTES:
            raise InputError(f"{where}: dtype must be one of {sorted(DTYPE_BYTES)}, got {self.dtype!r}")
        for f in ("gated_mlp", "parallel_residual"):
            if not isinstance(getattr(self, f), bool):
                raise InputError(f"{where}: {f} must be true or false, got {getattr(self, f)!r}")

    # ---- sizes -------------------------------------------------------------------
    @property
    def context_window(self) -> int:
        """Most tokens (prompt + answer) a request may hold: ``max_context``, or
        ``MAX_TOKENS`` when the architecture does not say."""
        return self.max_context or MAX_TOKENS

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
        d = asdict(self)
        if not self.max_context:
            del d["max_context"]
        return d

    def same_architecture(self, other: ModelSpec) -> bool:
        """Whether ``other`` is this model under any name (every field but ``name``)."""
        keys = [f.name for f in fields(self) if f.name != "name"]
        return all(getattr(self, k) == getattr(other, k) for k in keys)

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


_SIZE_LIMITS = {"layers": 4096, "hidden": 1 << 20, "heads": 1 << 16, "kv_heads": 1 << 16,
                "intermediate": 1 << 22, "vocab": 1 << 24}


def _short(v: Any) -> str:
    r = repr(v)
    return r if len(r) <= 40 else r[:37] + "..."


def check_tp(model: ModelSpec, tp: int) -> None:
    if not isinstance(tp, int | float) or tp != int(tp) or tp < 1:
        raise InputError(f"tp: must be a positive integer, got {tp!r}")
    tp = int(tp)
    if model.heads % tp:
        raise InputError(f"tp: {tp} does not divide the {model.heads} attention heads of {model.name}")


def _llama(name: str, layers: int, hidden: int, heads: int, kv: int, inter: int, vocab: int = 32000,
           dtype: str = "float16", **kw: Any) -> ModelSpec:
    return ModelSpec(name, layers, hidden, heads, kv, inter, vocab, dtype=dtype, **kw)


# name -> architecture, from each model's config.json on the Hugging Face Hub
# (max_context is its max_position_embeddings).
CATALOG: dict[str, ModelSpec] = {
    m.name: m
    for m in [
        # LLaMA-1 (huggyllama/llama-*): MHA, vocab 32000, fp16, 2048 positions
        _llama("llama-7b", 32, 4096, 32, 32, 11008, max_context=2048),
        _llama("llama-13b", 40, 5120, 40, 40, 13824, max_context=2048),
        _llama("llama-30b", 60, 6656, 52, 52, 17920, max_context=2048),
        _llama("llama-65b", 80, 8192, 64, 64, 22016, max_context=2048),
        # Llama 2 (meta-llama/Llama-2-*-hf): 70B uses GQA with 8 KV heads; 4096 positions
        _llama("llama-2-7b", 32, 4096, 32, 32, 11008, max_context=4096),
        _llama("llama-2-13b", 40, 5120, 40, 40, 13824, max_context=4096),
        _llama("llama-2-70b", 80, 8192, 64, 8, 28672, max_context=4096),
        # Llama 3 (meta-llama/Meta-Llama-3-*): GQA, vocab 128256, bf16, 8192 positions
        _llama("llama-3-8b", 32, 4096, 32, 8, 14336, 128256, "bfloat16", max_context=8192),
        _llama("llama-3-70b", 80, 8192, 64, 8, 28672, 128256, "bfloat16", max_context=8192),
        # Mistral-7B-v0.1: GQA 8 KV heads, bf16, 32768 positions
        _llama("mistral-7b", 32, 4096, 32, 8, 14336, 32000, "bfloat16", max_context=32768),
        # Qwen2.5 (Qwen/Qwen2.5-*-Instruct): GQA, vocab 152064, bias on Q/K/V, bf16, 32768
        # positions (longer only with YaRN rope scaling)
        _llama("qwen2.5-7b", 28, 3584, 28, 4, 18944, 152064, "bfloat16", qkv_bias=True, max_context=32768),
        _llama("qwen2.5-14b", 48, 5120, 40, 8, 13824, 152064, "bfloat16", qkv_bias=True, max_context=32768),
        _llama("qwen2.5-32b", 64, 5120, 40, 8, 27648, 152064, "bfloat16", qkv_bias=True, max_context=32768),
        _llama("qwen2.5-72b", 80, 8192, 64, 8, 29568, 152064, "bfloat16", qkv_bias=True, max_context=32768),
        # The other models of the public A100/H100 operator profiles (see docs/fidelity.md)
        # codellama/CodeLlama-34b-hf: GQA 8 KV heads, 16384 positions (rope theta 1e6)
        _llama("codellama-34b", 48, 8192, 64, 8, 22016, 32000, "bfloat16", max_context=16384),
        # internlm/internlm-20b: MHA, vocab 103168, 4096 positions
        _llama("internlm-20b", 60, 5120, 40, 40, 13824, 103168, "bfloat16", max_context=4096),
        # Qwen/Qwen-72B (Qwen 1): MHA, bias on Q/K/V, 32768 positions; its config's
        # intermediate_size (49152) counts both SwiGLU halves, so each MLP matrix is 24576 wide
        _llama("qwen-72b", 80, 8192, 64, 64, 24576, 152064, "bfloat16", qkv_bias=True, max_context=32768),
        # microsoft/phi-2: GELU MLP (two matrices), one LayerNorm per layer feeding attention
        # and MLP in parallel, biases everywhere (counted only on Q/K/V here), 2048 positions
        _llama("phi-2", 32, 2560, 32, 32, 10240, 51200, "float16", qkv_bias=True, gated_mlp=False,
               parallel_residual=True, max_context=2048),
    ]
}


# Hugging Face ids and common spellings of catalog models, each with the same
# architecture as its catalog entry (chat/instruct variants share their base's
# config.json shape; Llama 3.1/3.3 keep Llama 3's). Matched ignoring case.
_ALIASES: dict[str, tuple[str, ...]] = {
    "llama-7b": ("huggyllama/llama-7b", "llama1-7b", "llama-1-7b"),
    "llama-13b": ("huggyllama/llama-13b", "llama1-13b", "llama-1-13b"),
    "llama-30b": ("huggyllama/llama-30b", "llama1-30b", "llama-1-30b", "llama-33b"),
    "llama-65b": ("huggyllama/llama-65b", "llama1-65b", "llama-1-65b"),
    "llama-2-7b": ("meta-llama/Llama-2-7b-hf", "meta-llama/Llama-2-7b", "meta-llama/Llama-2-7b-chat-hf",
                   "llama2-7b", "llama-2-7b-chat", "llama-2-7b-hf"),
    "llama-2-13b": ("meta-llama/Llama-2-13b-hf", "meta-llama/Llama-2-13b", "meta-llama/Llama-2-13b-chat-hf",
                    "llama2-13b", "llama-2-13b-chat", "llama-2-13b-hf"),
    "llama-2-70b": ("meta-llama/Llama-2-70b-hf", "meta-llama/Llama-2-70b", "meta-llama/Llama-2-70b-chat-hf",
                    "llama2-70b", "llama-2-70b-chat", "llama-2-70b-hf"),
    "llama-3-8b": ("meta-llama/Meta-Llama-3-8B", "meta-llama/Meta-Llama-3-8B-Instruct", "meta-llama/Llama-3.1-8B",
                   "meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Meta-Llama-3.1-8B",
                   "meta-llama/Meta-Llama-3.1-8B-Instruct", "llama3-8b", "llama-3-8b-instruct", "llama-3.1-8b",
                   "llama3.1-8b"),
    "llama-3-70b": ("meta-llama/Meta-Llama-3-70B", "meta-llama/Meta-Llama-3-70B-Instruct",
                    "meta-llama/Llama-3.1-70B", "meta-llama/Llama-3.1-70B-Instruct", "meta-llama/Meta-Llama-3.1-70B",
                    "meta-llama/Meta-Llama-3.1-70B-Instruct", "meta-llama/Llama-3.3-70B-Instruct", "llama3-70b",
                    "llama-3-70b-instruct", "llama-3.1-70b", "llama3.1-70b", "llama-3.3-70b"),
    "mistral-7b": ("mistralai/Mistral-7B-v0.1", "mistralai/Mistral-7B-Instruct-v0.1",
                   "mistralai/Mistral-7B-Instruct-v0.2", "mistral-7b-v0.1", "mistral-7b-instruct"),
    "qwen2.5-7b": ("Qwen/Qwen2.5-7B", "Qwen/Qwen2.5-7B-Instruct", "qwen2.5-7b-instruct", "qwen-2.5-7b"),
    "qwen2.5-14b": ("Qwen/Qwen2.5-14B", "Qwen/Qwen2.5-14B-Instruct", "qwen2.5-14b-instruct", "qwen-2.5-14b"),
    "qwen2.5-32b": ("Qwen/Qwen2.5-32B", "Qwen/Qwen2.5-32B-Instruct", "qwen2.5-32b-instruct", "qwen-2.5-32b"),
    "qwen2.5-72b": ("Qwen/Qwen2.5-72B", "Qwen/Qwen2.5-72B-Instruct", "qwen2.5-72b-instruct", "qwen-2.5-72b"),
    "codellama-34b": ("codellama/CodeLlama-34b-hf", "codellama/CodeLlama-34b-Instruct-hf",
                      "codellama/CodeLlama-34b-Python-hf", "codellama-34b-instruct", "code-llama-34b"),
    "internlm-20b": ("internlm/internlm-20b", "internlm/internlm-chat-20b", "internlm-chat-20b"),
    "qwen-72b": ("Qwen/Qwen-72B", "Qwen/Qwen-72B-Chat", "qwen-72b-chat", "qwen1-72b"),
    "phi-2": ("microsoft/phi-2", "phi2"),
}
# lower-cased alias -> catalog name
ALIASES: dict[str, str] = {a.lower(): name for name, names in _ALIASES.items() for a in names}


def catalog_name(text: str) -> str | None:
    """The catalog name ``text`` stands for (a name, an alias or a Hugging Face id), or None."""
    key = text.strip().lower()
    return key if key in CATALOG else ALIASES.get(key)


def from_hf_config(path: str | Path, name: str | None = None) -> ModelSpec:
    """Read a Hugging Face ``config.json`` (LLaMA, Mistral, Qwen2 and alike)."""
    from muxsim.io import read_json

    p = Path(path)
    cfg = read_json(p, "model")
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
    positions = cfg.get("max_position_embeddings")
    if not isinstance(positions, int) or isinstance(positions, bool) or not 1 <= positions <= MAX_TOKENS:
        positions = 0  # absent or out of range: not known
    inter = cfg["intermediate_size"]
    if model_type == "qwen" and isinstance(inter, int) and not isinstance(inter, bool):
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
        max_context=positions,
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
        name = catalog_name(spec)
        if name is not None:
            return CATALOG[name]
        if len(spec) > MAX_PATH_CHARS or "\x00" in spec:
            raise InputError(f"{field}: unknown model {_short(spec)} ({_KNOWN})")
        if spec.endswith(".json") or _is_file(spec):
            try:
                return from_hf_config(spec)
            except InputError as e:
                raise InputError(f"{field}: {str(e).removeprefix('model: ')}") from None
        import difflib

        close = difflib.get_close_matches(spec.strip().lower(), [*CATALOG, *ALIASES], n=1, cutoff=0.75)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise InputError(f"{field}: unknown model {_short(spec)} ({hint}{_KNOWN})")
    raise InputTypeError(f"{field}: expected a model name, an inline architecture or a config.json path, "
                         f"got {type(spec).__name__}")


_KNOWN = (f"known: {', '.join(CATALOG)}, their Hugging Face ids such as meta-llama/Llama-2-7b-hf; "
          "or give an inline architecture or a config.json path")


def _is_file(path: str) -> bool:
    try:
        return Path(path).is_file()
    except (OSError, ValueError):
        return False


def hf_id(model: str | dict[str, Any] | ModelSpec) -> str | None:
    """The Hugging Face id of a catalog model (its first ``owner/name`` alias; a model
    given by Hugging Face id keeps it), or None (inline architectures, config paths)."""
    if isinstance(model, str):
        if model.count("/") == 1 and catalog_name(model) is not None:
            return model
        name = catalog_name(model)
        if name is not None:
            return next((a for a in _ALIASES.get(name, ()) if "/" in a), None)
    return None
