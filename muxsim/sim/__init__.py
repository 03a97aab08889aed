"""The discrete-event simulator: how muxsim scores a plan and says what users will see.

``simulate(plan, workload, seed=0, *, cost=None, memory=None, config=None, requests=None)``
returns :class:`Results` (DESIGN.md's results shape). Modules: ``engine`` (event heap
and tie order), ``kvcache`` (unified head-wise KV pool), ``interference`` (co-running
jobs), ``mesh`` (jobs and schedulers per mode), ``run`` (the simulation), ``results``.
"""

from muxsim.sim.config import FLEX_POLICIES, TEMPORAL_POLICIES, InterferenceParams, SimConfig
from muxsim.sim.results import Results
from muxsim.sim.run import Simulation, simulate

__all__ = ["FLEX_POLICIES", "TEMPORAL_POLICIES", "InterferenceParams", "Results", "SimConfig", "Simulation",
           "simulate"]
