"""Workloads: which models, how popular, how requests arrive, how long they are.

- :class:`Workload` (``workload.json``), :func:`load_workload`, :func:`save_workload`;
- :func:`generate_requests` -> pandas table ``arrival_s, name, prompt_len, output_len``;
- :func:`synth_workload`: the paper's power-law workloads;
- traces: :func:`read_trace`, :func:`write_trace`; foreign logs: :func:`import_logs`,
  :func:`read_request_log`, :func:`merge_logs`, :func:`split_by_popularity`;
- :func:`describe`: rates, shares, length percentiles, offered tokens per second.
"""

from __future__ import annotations

from .arrivals import GammaArrivals, PoissonArrivals, TraceArrivals
from .describe import describe, describe_text
from .files import as_workload, input_files, load_workload, save_workload
from .generate import generate_requests
from .lengths import (
    SHAREGPT,
    EmpiricalLength,
    FixedLength,
    LognormalLength,
    ShareGPTLength,
    UniformLength,
)
from .logs import import_logs, merge_logs, read_request_log, split_by_popularity
from .schema import ClusterSpec, ModelEntry, ModelSLO, RateWindow, SLOSpec, Workload
from .synth import parse_mix, synth_workload
from .trace import read_trace, write_trace

__all__ = [
    "SHAREGPT",
    "ClusterSpec",
    "EmpiricalLength",
    "FixedLength",
    "GammaArrivals",
    "LognormalLength",
    "ModelEntry",
    "ModelSLO",
    "PoissonArrivals",
    "RateWindow",
    "SLOSpec",
    "ShareGPTLength",
    "TraceArrivals",
    "UniformLength",
    "Workload",
    "as_workload",
    "describe",
    "describe_text",
    "generate_requests",
    "import_logs",
    "input_files",
    "load_workload",
    "merge_logs",
    "parse_mix",
    "read_request_log",
    "read_trace",
    "save_workload",
    "split_by_popularity",
    "synth_workload",
    "write_trace",
]
