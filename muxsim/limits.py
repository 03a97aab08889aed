"""Serving limits: what a serving engine allows, defined once for all of muxsim.

The memory model (what a mesh's GPUs reserve), the simulator's runtime and schedulers,
the placement estimator, the plan checker and the kernels' KV cache read these numbers
from here, so that none of them keeps a private copy that could drift. A plan records
the limits placement assumed (``plan.json``'s ``limits``), and the simulator runs with
``SimConfig.limits``.

- ``BLOCK_TOKENS = 32``: tokens per head-wise KV block (MuxServe's block; the kernels'
  paged cache and the memory model's pool use the same block). Fixed, not a setting.
- :class:`ServingLimits`:
  ``overload = 1.2``: on a flex mesh the SM shares of co-running jobs may sum to this
  (MuxServe's MPS oversubscription limit); ``max_prefill_tokens = 2048``: prompt tokens
  one prefill job takes at most (MuxServe's and vLLM's default batched tokens; also the
  activation reserve's size); ``max_batch = 256``: requests one unit holds at most
  (vLLM's default ``max_num_seqs``; also the logits reserve's size);
  ``memory``: the memory reserves (:class:`MemoryParams`).
- :class:`MemoryParams`, per GPU of a mesh: ``usable_fraction = 0.90`` of the memory
  (vLLM's default ``gpu_memory_utilization``; the rest is left to the driver and the
  allocator), an activation reserve per model for a maximal prefill (from the
  architecture, or ``activation_gib`` fixed), ``workspace_gib = 1.0`` per model
  (cuBLAS workspace, CUDA graphs, fragmentation) and ``process_overhead_gib = 0.8`` for
  each of ``processes_per_model = 2`` processes (a prefill and a decode job; MuxServe
  measured ~0.8 GB per process). ``MemoryParams.muxserve()`` gives the constants of
  MuxServe's own estimator (98% usable, 6 GB per model, no process overhead).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from muxsim.errors import InputError, check_fields

BLOCK_TOKENS = 32


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def blocks_for(tokens: int) -> int:
    """Token blocks (of ``BLOCK_TOKENS``) that ``tokens`` tokens occupy."""
    return -(-tokens // BLOCK_TOKENS)


@dataclass(frozen=True)
class MemoryParams:
    """Memory reserves per GPU (see the module doc)."""

    usable_fraction: float = 0.90
    activation_gib: float | None = None  # fixed reserve per model; None: from the architecture
    workspace_gib: float = 1.0
    process_overhead_gib: float = 0.8
    processes_per_model: int = 2

    def __post_init__(self) -> None:
        if not (_number(self.usable_fraction) and 0 < self.usable_fraction <= 1):
            raise InputError(f"limits.memory.usable_fraction: must be in (0, 1], got {self.usable_fraction!r}")
        for f in ("activation_gib", "workspace_gib", "process_overhead_gib"):
            v = getattr(self, f)
            if not (v is None and f == "activation_gib") and not (_number(v) and v >= 0):
                raise InputError(f"limits.memory.{f}: must be a number >= 0, got {v!r}")
        if not (isinstance(self.processes_per_model, int) and not isinstance(self.processes_per_model, bool)
                and self.processes_per_model >= 0):
            raise InputError(f"limits.memory.processes_per_model: must be an integer >= 0, "
                             f"got {self.processes_per_model!r}")

    @classmethod
    def muxserve(cls) -> MemoryParams:
        """The constants of MuxServe's placement estimator."""
        return cls(usable_fraction=0.98, activation_gib=6.0, workspace_gib=0.0,
                   process_overhead_gib=0.0, processes_per_model=1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any) -> MemoryParams:
        return cls(**check_fields(d, cls, "limits.memory"))


@dataclass(frozen=True)
class ServingLimits:
    """The limits a mesh is served under (see the module doc for each default)."""

    overload: float = 1.2
    max_prefill_tokens: int = 2048
    max_batch: int = 256
    memory: MemoryParams = MemoryParams()

    def __post_init__(self) -> None:
        if not (_number(self.overload) and 1 <= self.overload <= 4):
            raise InputError(f"limits.overload: must be a number in [1, 4], got {self.overload!r}")
        for f in ("max_prefill_tokens", "max_batch"):
            v = getattr(self, f)
            if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 1_000_000:
                raise InputError(f"limits.{f}: must be an integer in [1, 1000000], got {v!r}")
        if not isinstance(self.memory, MemoryParams):
            raise InputError("limits.memory: expected memory reserves")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: (getattr(self, f.name).to_dict() if f.name == "memory" else getattr(self, f.name))
                for f in fields(self)}

    @classmethod
    def from_dict(cls, d: Any) -> ServingLimits:
        args = dict(check_fields(d, cls, "limits"))
        if "overload" in args and isinstance(args["overload"], int) and not isinstance(args["overload"], bool):
            args["overload"] = float(args["overload"])
        if "memory" in args:
            args["memory"] = MemoryParams.from_dict(args["memory"])
        return cls(**args)


DEFAULT_LIMITS = ServingLimits()
