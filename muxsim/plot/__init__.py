"""Figures of results and plans: each function returns a :class:`matplotlib.figure.Figure`.

They take what a run gives (a :class:`muxsim.Results`, a results document, a run
folder from :func:`muxsim.runfolder.read_run_folder`, a :class:`muxsim.plan.Plan`) and
never touch pyplot's global state, so they work headless and in notebooks alike (a
notebook shows a returned figure inline)::

    import muxsim as mx
    res = mx.simulate(plan, wl)
    mx.plot.latency_cdf(res, "ttft_ms", order=wl.names())
    mx.plot.plan(plan)
    mx.plot.save(fig, "ttft.png")

- :func:`latency_cdf`: per model, the distribution of TTFT, TPOT or end-to-end latency;
- :func:`slo_attainment`: attainment against the SLO scale, one line per run (the paper's figure);
- :func:`utilization`: per mesh, the share of SMs busy and of the KV pool in use over time;
- :func:`throughput`: per model, served throughput of each run against the offered rate;
- :func:`plan`: nodes, GPUs, meshes, which models share them and their SM and KV shares;
- :func:`capacity`: ``muxsim capacity``'s curve, SLO attainment against GPUs per algorithm;
- :func:`compare`: ``muxsim compare``'s chart (throughput with the offered load, SLO
  attainment, P99 TTFT);
- :func:`run_figures`: every figure of a run folder, by file name (``muxsim plot``).
"""

from __future__ import annotations

from muxsim.plot.capacity import capacity
from muxsim.plot.draw import plan
from muxsim.plot.figures import (
    compare,
    latency_cdf,
    run_figures,
    save,
    slo_attainment,
    throughput,
    utilization,
)

__all__ = ["capacity", "compare", "latency_cdf", "plan", "run_figures", "save", "slo_attainment", "throughput",
           "utilization"]
