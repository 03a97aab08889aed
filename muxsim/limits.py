"""Limits: one definition of every bound muxsim enforces and every serving limit it models.

Two kinds of limit live here, so that no module keeps a private copy that could drift.

**Bounds on inputs and on work.** Inputs are untrusted, so every number a user can give
has a physically meaningful range, and work whose size follows from the input
(requests to simulate, utilization samples, mesh groups to search) is estimated before
it starts and refused above a limit. The limits a user may need to raise have a
command-line flag (named below); the others are ranges no real deployment reaches.

**Serving limits**: what a serving engine allows. The memory model (what a mesh's GPUs
reserve), the simulator's runtime and policies, the placement estimator, the plan
checker and the kernels' KV cache read them from here. A plan records the limits
placement assumed (``plan.json``'s ``limits``), and the simulator runs with
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

from muxsim.errors import InputError, InputTypeError, check_fields

# ---- work (raise with a flag) ------------------------------------------------------------
MAX_REQUESTS = 1_000_000  # requests one run generates or replays (--max-requests; about 1.2 KB each in a run)
MAX_SEARCH = 100_000  # LLMs x meshes a placement group search may fill without a --time-limit
MAX_TRIALS = 10_000  # trials one sweep expands to (--max-trials)
MAX_CAPACITY_GPUS = 4096  # GPUs a capacity search may consider (capacity --max-gpus)
MAX_CAPACITY_REQUESTS = 50_000_000  # requests a capacity search simulates in all (lower --max-gpus or the duration)

# ---- sizes of things ---------------------------------------------------------------------
MAX_LLMS = 1024  # LLMs in one workload (and COUNT in `synth --mix`)
MAX_NODES = 1024  # nodes of a cluster
MAX_GPUS_PER_NODE = 128  # GPUs in one node (an NVLink domain)
MAX_TOKENS = 1 << 20  # tokens of one prompt or answer, and of a context window
MAX_BATCH = 1 << 16  # sequences in one batch (a plan's max_batch, `cost --batch`, a limits' max_batch)
MAX_RATE = 1e6  # requests per second of one LLM
MAX_TIME_S = 1e9  # seconds: workload durations, arrival times, finite drains (~32 years)
MAX_SLO_SCALE = 1e6  # an SLO scale, in multiples of a request's latency alone
MAX_SEED = 2**63 - 1
MAX_TIME_LIMIT_S = 1e6  # a search's --time-limit
MAX_SCORE_BUDGET = 64  # candidate plans flex-slo simulates (--budget)
MIN_SM_SHARE = 0.01  # the smallest share of a GPU's SMs a job may run at (1%)
MAX_OVERLOAD = 4.0  # a flex mesh's overload limit (sum of co-running SM shares)
MAX_PARAM = 1e9  # any cost-model parameter (efficiencies, fixed times, tile sizes, bus bandwidths)
MAX_GIB = 1e6  # a memory reserve, in GiB
MAX_PROCESSES = 64  # processes per model in the memory model
MAX_WORKER_PROCESSES = 256  # an executor's worker processes on one machine (2 x tp per unit)
MAX_STEP_MS = 1e9  # a measured step latency, in milliseconds (profiles, co-location runs)
MAX_MESSAGE_BYTES = 1 << 40  # one measured all-reduce's message (1 TiB; larger rows of a Vidur tree are dropped)
MAX_LENGTH_CV = 1e3  # coefficient of variation of a lognormal length
MIN_LENGTH_CV = 1e-3
MAX_ARRIVAL_CV = 1e2  # coefficient of variation of Gamma inter-arrival gaps
MIN_ARRIVAL_CV = 1e-2
MAX_SAMPLES = 10_000  # utilization samples per mesh in one run (longer runs sample less often)
MAX_WINDOWS = 100_000  # rate_schedule windows of all LLMs of a workload together
MAX_PROFILE_ROWS = 1_000_000  # rows of a profile (and of one GPU's files in a Vidur tree)
MAX_VIDUR_MODELS = 256  # model folders of one GPU in a Vidur tree
MAX_VIDUR_ENTRIES = 4096  # entries of one folder of a Vidur tree looked at
MAX_NAME_CHARS = 200  # an LLM, model or column name
MAX_PATH_CHARS = 4096  # a path, or any other string field of a plan
MAX_WORKERS = 1024  # concurrent trials of a sweep (--workers)

# ---- files ------------------------------------------------------------------------------
MAX_JSON_BYTES = 16 << 20  # a workload, plan, parameter or config JSON document
MAX_TABLE_BYTES = 256 << 20  # a trace, request log or profile (CSV or JSON Lines; after decompression)

# ---- serving limits -----------------------------------------------------------------------
BLOCK_TOKENS = 32


def blocks_for(tokens: int) -> int:
    """Token blocks (of ``BLOCK_TOKENS``) that ``tokens`` tokens occupy."""
    return -(-tokens // BLOCK_TOKENS)


def _in_range(v: Any, lo: float, hi: float, *, integer: bool = False) -> bool:
    kind = int if integer else int | float
    return isinstance(v, kind) and not isinstance(v, bool) and math.isfinite(v) and lo <= v <= hi


@dataclass(frozen=True)
class MemoryParams:
    """Memory reserves per GPU (see the module doc)."""

    usable_fraction: float = 0.90
    activation_gib: float | None = None  # fixed reserve per model; None: from the architecture
    workspace_gib: float = 1.0
    process_overhead_gib: float = 0.8
    processes_per_model: int = 2

    def __post_init__(self) -> None:
        if not (_in_range(self.usable_fraction, 0.0, 1.0) and self.usable_fraction > 0):
            raise InputError(f"limits.memory.usable_fraction: must be a number in (0, 1], "
                             f"got {self.usable_fraction!r}")
        for f in ("activation_gib", "workspace_gib", "process_overhead_gib"):
            v = getattr(self, f)
            if not (v is None and f == "activation_gib") and not _in_range(v, 0.0, MAX_GIB):
                none = "None or " if f == "activation_gib" else ""
                raise InputError(f"limits.memory.{f}: must be {none}a number in [0, {MAX_GIB:g}], got {v!r}")
        if not _in_range(self.processes_per_model, 0, MAX_PROCESSES, integer=True):
            raise InputError(f"limits.memory.processes_per_model: must be an integer in [0, {MAX_PROCESSES}], "
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
        if not _in_range(self.overload, 1.0, MAX_OVERLOAD):
            raise InputError(f"limits.overload: must be a number in [1, {MAX_OVERLOAD:g}], got {self.overload!r}")
        for f, hi in (("max_prefill_tokens", MAX_TOKENS), ("max_batch", MAX_BATCH)):
            v = getattr(self, f)
            if not _in_range(v, 1, hi, integer=True):
                raise InputError(f"limits.{f}: must be an integer in [1, {hi}], got {v!r}")
        if not isinstance(self.memory, MemoryParams):
            raise InputTypeError(f"limits.memory: expected MemoryParams, got {type(self.memory).__name__}")

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
