"""The profiler: measure prefill and decode step latencies of a model on this machine.

::

    from muxsim.profiler import make_config, run_profile, write_profile
    cfg = make_config("tiny-2l-64h", device="cpu")
    run = run_profile(cfg)
    write_profile("profiles/cpu-tiny.csv", run.rows, {cfg.model_name: cfg.model}, run.meta)

Importing this package does not import torch: the measuring happens in worker
processes (``muxsim.profiler.worker``) that the runner starts.
"""

from muxsim.profiler.config import ProfileConfig, catalog_gpu_name, make_config, tiny_model
from muxsim.profiler.runner import ProfileRun, WorkerError, run_interference, run_profile
from muxsim.profiler.schema import (
    INTERFERENCE_COLUMNS,
    PROFILE_COLUMNS,
    InterferenceRow,
    ProfileRow,
    write_interference,
    write_profile,
)

__all__ = [
    "INTERFERENCE_COLUMNS",
    "PROFILE_COLUMNS",
    "InterferenceRow",
    "ProfileConfig",
    "ProfileRow",
    "ProfileRun",
    "WorkerError",
    "catalog_gpu_name",
    "make_config",
    "run_interference",
    "run_profile",
    "tiny_model",
    "write_interference",
    "write_profile",
]
