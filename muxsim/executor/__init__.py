"""The executor: a plan run on real processes with the simulator's own policies.

:func:`execute` takes the plan and workload the simulator takes and returns results in
the simulator's schema (:class:`muxsim.sim.results.Results`), measured on worker
processes running a minimal LLaMA decoder (``muxsim_kernels``). See
:mod:`muxsim.executor.run` for the run, :mod:`~muxsim.executor.driver` for the policy
driver, :mod:`~muxsim.executor.worker` for the workers and
:mod:`~muxsim.executor.machine` for what is refused before anything starts.

Importing this package imports nothing heavy (a worker process imports only its worker
module); the names below load :mod:`muxsim.executor.run` on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Execution", "execute", "prompt_tokens", "weight_seed"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from muxsim.executor import run

        return getattr(run, name)
    raise AttributeError(f"module 'muxsim.executor' has no attribute {name!r}")
