"""Every public function of ``muxsim`` checks its arguments: None, wrong types, values out
of range and arrays that do not broadcast raise ``muxsim.errors`` types naming the
argument (never a raw TypeError or AttributeError from deep inside); paths and loaded
objects are both taken where that is natural."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import muxsim as mx
from muxsim.errors import InputError, InputTypeError
from tests.hardening import PROFILE, SMALL


@pytest.fixture(scope="module")
def wl():
    return mx.load_workload(SMALL)


@pytest.fixture(scope="module")
def plan(wl):
    return mx.place(wl, algorithm="spatial")


def _calls(wl, plan):
    """(name, call, the argument the message must name) for every public function."""
    cm = mx.cost_model("a100-80gb")
    return [
        ("load_workload(None)", lambda: mx.load_workload(None), "workload"),
        ("load_workload(3)", lambda: mx.load_workload(3), "workload"),
        ("load_plan(None)", lambda: mx.load_plan(None), "plan"),
        ("place(None)", lambda: mx.place(None), "workload"),
        ("place(wl, algorithm=None)", lambda: mx.place(wl, algorithm=None), "algorithm"),
        ("place(wl, foo=1)", lambda: mx.place(wl, foo=1), "foo"),
        ("place(wl, time_limit_s=nan)", lambda: mx.place(wl, time_limit_s=float("nan")), "time_limit_s"),
        ("place(wl, cost='x')", lambda: mx.place(wl, cost="x"), "cost"),
        ("place(wl, memory=1)", lambda: mx.place(wl, memory=1), "memory"),
        ("solve_placement(wl, 'x')", lambda: mx.solve_placement(wl, "x"), "algorithm"),
        ("simulate(plan, None)", lambda: mx.simulate(plan, None), "workload"),
        ("simulate(None, wl)", lambda: mx.simulate(None, wl), "plan"),
        ("simulate(plan, wl, seed='1')", lambda: mx.simulate(plan, wl, seed="1"), "seed"),
        ("simulate(plan, wl, seed=-1)", lambda: mx.simulate(plan, wl, seed=-1), "seed"),
        ("simulate(plan, wl, config={})", lambda: mx.simulate(plan, wl, config={}), "config"),
        ("simulate(plan, wl, requests=[])", lambda: mx.simulate(plan, wl, requests=[]), "requests"),
        ("simulate(plan, wl, truncate='yes')", lambda: mx.simulate(plan, wl, truncate="yes"), "truncate"),
        ("simulate(plan, wl, max_requests=0)", lambda: mx.simulate(plan, wl, max_requests=0), "max_requests"),
        ("cost_model(None)", lambda: mx.cost_model(None), "gpu"),
        ("cost_model('b300')", lambda: mx.cost_model("b300"), "gpu"),
        ("cost_model(params=3)", lambda: mx.cost_model("a100-80gb", params=3), "params"),
        ("cost_model(engine='turbo')", lambda: mx.cost_model("a100-80gb", engine="turbo"), "engine"),
        ("cost_model(engine=1)", lambda: mx.cost_model("a100-80gb", engine=1), "engine"),
        ("cost_model(profile, engine=1)", lambda: mx.cost_model("a100-80gb", profile=PROFILE, engine=1), "engine"),
        ("AnalyticCostModel(engine=[])", lambda: mx.AnalyticCostModel("a100-80gb", engine=[]), "engine"),
        ("calibrate_vidur(None)", lambda: mx.calibrate_vidur(None), "path"),
        ("calibrate_vidur('nowhere')", lambda: mx.calibrate_vidur("nowhere"), "vidur"),
        ("calibrate_vidur(gpu=None)", lambda: mx.calibrate_vidur(".", gpu=None), "gpu"),
        ("calibrate_vidur(gpu='b300')", lambda: mx.calibrate_vidur(".", gpu="b300"), "gpu"),
        ("calibrate_vidur(lomo='yes')", lambda: mx.calibrate_vidur(".", lomo="yes"), "lomo"),
        ("calibrate_vidur(source=3)", lambda: mx.calibrate_vidur(".", source=3), "source"),
        ("decode_ms(arrays that do not broadcast)",
         lambda: cm.decode_ms("llama-7b", batch=np.arange(1, 4), seq_len=np.arange(1, 6)), "arguments"),
        ("decode_ms(sm=1e-300)", lambda: cm.decode_ms("llama-7b", 1, 1, sm=1e-300), "sm"),
        ("decode_ms(batch='x')", lambda: cm.decode_ms("llama-7b", "x", 1), "batch"),
        ("prefill_ms(model=None)", lambda: cm.prefill_ms(None, 1, 1), "model"),
        ("phase_ms('x')", lambda: cm.phase_ms("x", "llama-7b", 1, 1), "phase"),
        ("prefill_ms(tp=0)", lambda: cm.prefill_ms("llama-7b", 1, 1, tp=0), "tp"),
        ("calibrate(holdout='0.2')", lambda: mx.calibrate(PROFILE, holdout="0.2"), "holdout"),
        ("calibrate(seed=None)", lambda: mx.calibrate(PROFILE, seed=None), "seed"),
        ("calibrate(fit='x')", lambda: mx.calibrate(PROFILE, fit="gemm_eff"), "fit"),
        ("calibrate(train=[True])", lambda: mx.calibrate(PROFILE, train=[True]), "train"),
        ("calibrate(None)", lambda: mx.calibrate(None), "profile"),
        ("load_profile(None)", lambda: mx.load_profile(None), "profile"),
        ("TableCostModel(None)", lambda: mx.TableCostModel(None), "profile"),
        ("AnalyticCostModel(params={})", lambda: mx.AnalyticCostModel("a100-80gb", params={}), "params"),
        ("AnalyticParams(gemm_eff=-1)", lambda: mx.AnalyticParams(gemm_eff=-1), "gemm_eff"),
        ("AnalyticParams(gemm_min_us=nan)", lambda: mx.AnalyticParams(gemm_min_us=float("nan")), "gemm_min_us"),
        ("AnalyticParams(overlap_p=0.5)", lambda: mx.AnalyticParams(overlap_p=0.5), "overlap_p"),
        ("AnalyticParams(allreduce=[1])", lambda: mx.AnalyticParams(allreduce=[1]), "allreduce"),
        ("MemoryModel(params=1)", lambda: mx.MemoryModel("a100-80gb", params=1), "params"),
        ("MemoryParams(usable_fraction=2)", lambda: mx.MemoryParams(usable_fraction=2.0), "usable_fraction"),
        ("get_gpu(None)", lambda: mx.get_gpu(None), "gpu"),
        ("resolve_model(None)", lambda: mx.resolve_model(None), "model"),
        ("resolve_model('x' * 10000)", lambda: mx.resolve_model("x" * 10000), "model"),
        ("ModelSpec(layers=0)", lambda: mx.ModelSpec("m", 0, 64, 4, 4, 64, 10), "layers"),
        ("Workload.from_dict(None)", lambda: mx.Workload.from_dict(None), "workload"),
        ("generate_requests(None)", lambda: mx.generate_requests(None), "wl"),
        ("generate_requests(wl, seed='a')", lambda: mx.generate_requests(wl, seed="a"), "seed"),
        ("generate_requests(wl, max_requests=1)", lambda: mx.generate_requests(wl, max_requests=1), "requests"),
        ("describe(None)", lambda: mx.describe(None), "wl"),
        ("synth_workload(None)", lambda: mx.synth_workload(None, 1, 1), "mix"),
        ("synth_workload(alpha=None)", lambda: mx.synth_workload("2xllama-7b", None, 1), "alpha"),
        ("synth_workload(max_rate=1e300)", lambda: mx.synth_workload("2xllama-7b", 1, 1e300), "max_rate"),
        ("synth_workload(arrivals=3)", lambda: mx.synth_workload("2xllama-7b", 1, 1, arrivals=3), "arrivals"),
        ("save_workload(None, p)", lambda: mx.save_workload(None, "x.json"), "wl"),
        ("write_trace(None, p)", lambda: mx.write_trace(None, "x.csv"), "requests"),
        ("Plan.from_dict(None)", lambda: mx.Plan.from_dict(None), "plan"),
        ("fit_interference(None)", lambda: mx.fit_interference(None), "interference"),
        ("fit_interference(cost=1)", lambda: mx.fit_interference(PROFILE, cost=1), "cost"),
        ("SimConfig(adapt_period_s=1e-9)", lambda: mx.SimConfig(adapt_period_s=1e-9), "adapt_period_s"),
        ("SimConfig(drain_s=nan)", lambda: mx.SimConfig(drain_s=float("nan")), "drain_s"),
        ("SimConfig(cost_grid='no')", lambda: mx.SimConfig(cost_grid="no"), "cost_grid"),
        ("SimConfig(flex_policy='lottery')", lambda: mx.SimConfig(flex_policy="lottery"), "flex_policy"),
        ("SimConfig(temporal_policy=None)", lambda: mx.SimConfig(temporal_policy=None), "temporal_policy"),
        ("SimConfig(limits={})", lambda: mx.SimConfig(limits={}), "limits"),
        ("SimConfig(interference=None)", lambda: mx.SimConfig(interference=None), "interference"),
        ("ServingLimits(overload=nan)", lambda: mx.ServingLimits(overload=float("nan")), "overload"),
        ("ServingLimits(overload=1e300)", lambda: mx.ServingLimits(overload=1e300), "overload"),
        ("ServingLimits(max_batch=2**40)", lambda: mx.ServingLimits(max_batch=2**40), "max_batch"),
        ("ServingLimits(max_prefill_tokens=0)", lambda: mx.ServingLimits(max_prefill_tokens=0), "max_prefill_tokens"),
        ("ServingLimits(memory=1)", lambda: mx.ServingLimits(memory=1), "memory"),
        ("MemoryParams(workspace_gib=1e300)", lambda: mx.MemoryParams(workspace_gib=1e300), "workspace_gib"),
        ("MemoryModel(limits=1)", lambda: mx.MemoryModel("a100-80gb", limits=1), "limits"),
        ("place(wl, sim_config={})", lambda: mx.place(wl, sim_config={}), "sim_config"),
        ("Plan.verify(limits={})", lambda: plan.verify(limits={}), "limits"),
        ("Plan.from_dict(policy='lottery')", lambda: mx.Plan.from_dict({**plan.to_dict(), "policy": "lottery"}),
         "plan.policy"),
        ("Plan.from_dict(limits=[])", lambda: mx.Plan.from_dict({**plan.to_dict(), "limits": []}), "plan.limits"),
        ("Plan.from_dict(limits.overload=9)",
         lambda: mx.Plan.from_dict({**plan.to_dict(), "limits": {"overload": 9}}), "plan.limits.overload"),
        ("save_runs(p, wl, [])", lambda: mx.save_runs("new", wl, []), "runs"),
        ("save_runs(p, wl, [None])", lambda: mx.save_runs("new", wl, [None]), "runs"),
        ("save_runs(p, None, runs)", lambda: mx.save_runs("new", None, []), "workload"),
        ("save_runs(None, wl, runs)", lambda: mx.save_runs(None, wl, []), "path"),
        ("save_runs(seed=-1)", lambda: mx.save_runs("new", wl, [mx.Run("a")], seed=-1), "seed"),
        ("save_runs(run label '../x')", lambda: mx.save_runs("new", wl, [mx.Run("../x"), mx.Run("b")]), "label"),
        ("read_run_folder(None)", lambda: mx.read_run_folder(None), "run folder"),
        ("read_run_folder('nowhere')", lambda: mx.read_run_folder("nowhere"), "run folder"),
        ("sweep(None)", lambda: mx.sweep(None), "sweep"),
        ("sweep({})", lambda: mx.sweep({}), "base.workload"),
        ("sweep(backend='x')", lambda: mx.sweep({}, backend="x"), "backend"),
        ("sweep(workers=0)", lambda: mx.sweep({"base": {"workload": {"mix": "1xllama-7b"}}}, workers=0), "workers"),
        ("sweep(out_dir=wl.json)", lambda: mx.sweep({"base": {"workload": {"mix": "1xllama-7b"}}}, out_dir=SMALL),
         "--out-dir"),
        ("solve_placement(wl, gpus=0)", lambda: mx.solve_placement(wl, "spatial", gpus=0), "gpus"),
        ("solve_placement(wl, gpus=1.5)", lambda: mx.solve_placement(wl, "spatial", gpus=1.5), "gpus"),
        ("place(wl, budget=0)", lambda: mx.place(wl, budget=0), "budget"),
        ("place(wl, score_horizon_s=inf)", lambda: mx.place(wl, score_horizon_s=float("inf")), "score_horizon_s"),
        ("place(wl, slo_scale=-1)", lambda: mx.place(wl, slo_scale=-1.0), "slo_scale"),
        ("place(wl, score_sample='x')", lambda: mx.place(wl, score_sample="x"), "score_sample"),
        ("place(wl, score_seed=wl.seed)", lambda: mx.place(wl, score_seed=wl.seed), "score_seed"),
        ("place(wl, score_seed='1')", lambda: mx.place(wl, score_seed="1"), "score_seed"),
        ("place(wl, 'ilp', replicas=1)", lambda: mx.place(wl, "ilp", replicas=1), "replicas"),
        ("place(wl, 'flex', max_moves=-1)", lambda: mx.place(wl, "flex", max_moves=-1), "max_moves"),
        ("capacity(None)", lambda: mx.capacity(None), "workload"),
        ("capacity(wl, 'x')", lambda: mx.capacity(wl, "x"), "algorithm"),
        ("capacity(target=2)", lambda: mx.capacity(wl, "spatial", target=2), "target"),
        ("capacity(target='0.9')", lambda: mx.capacity(wl, "spatial", target="0.9"), "target"),
        ("capacity(max_gpus=0)", lambda: mx.capacity(wl, "spatial", max_gpus=0), "max_gpus"),
        ("capacity(max_gpus=10**9)", lambda: mx.capacity(wl, "spatial", max_gpus=10**9), "max_gpus"),
        ("capacity(seed=-1)", lambda: mx.capacity(wl, "spatial", seed=-1), "seed"),
        ("capacity(slo_scale='8')", lambda: mx.capacity(wl, "spatial", slo_scale="8"), "slo_scale"),
        ("capacity(config={})", lambda: mx.capacity(wl, "spatial", config={}), "config"),
        ("capacity(options=[])", lambda: mx.capacity(wl, "spatial", options=[]), "options"),
        ("capacity(progress=1)", lambda: mx.capacity(wl, "spatial", progress=1), "progress"),
    ]


def test_every_public_function_has_a_case():
    """The cases below touch every callable the package exports."""
    names = {"load_workload", "load_plan", "place", "solve_placement", "simulate", "cost_model", "calibrate",
             "calibrate_vidur",
             "load_profile", "TableCostModel", "AnalyticCostModel", "AnalyticParams", "MemoryModel", "MemoryParams",
             "get_gpu", "resolve_model", "ModelSpec", "Workload", "generate_requests", "describe", "synth_workload",
             "save_workload", "write_trace", "Plan", "fit_interference", "SimConfig", "ServingLimits", "save_runs",
             "read_run_folder",
             "sweep", "capacity"}
    exported = {n for n in mx.__all__ if (callable(getattr(mx, n)) and not isinstance(getattr(mx, n), type))
                or n in names}
    skipped = {"InputError", "InputTypeError", "InputWarning", "GPUSpec", "PlacementResult", "Results"}
    assert exported - skipped <= names, exported - skipped - names


def test_bad_arguments_raise_input_errors_naming_them(wl, plan, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for label, call, named in _calls(wl, plan):
        with pytest.raises(InputError) as e:
            call()
        assert named in str(e.value), (label, str(e.value))


def test_none_and_wrong_kinds_are_type_errors_too(wl, plan):
    for call in (lambda: mx.load_workload(None), lambda: mx.simulate(plan, None), lambda: mx.cost_model(None),
                 lambda: mx.place(None), lambda: mx.describe(None), lambda: mx.get_gpu(3)):
        with pytest.raises(TypeError):  # InputTypeError is both
            call()
    assert issubclass(InputTypeError, InputError) and issubclass(InputTypeError, TypeError)


def test_paths_and_loaded_objects_alike(wl, plan, tmp_path):
    from muxsim.plan import save_plan

    p = tmp_path / "plan.json"
    save_plan(plan, p)
    a = mx.simulate(plan, wl, seed=1).aggregate
    assert mx.simulate(str(p), str(SMALL), seed=1).aggregate == a
    assert mx.simulate(plan.to_dict(), wl.to_dict(), seed=1).aggregate == a
    assert mx.place(str(SMALL), algorithm="spatial") == plan
    assert mx.load_workload(wl) is wl
    assert mx.calibrate(mx.load_profile(PROFILE)).calibration.n_train > 0
    assert isinstance(mx.cost_model(None, params={"gpu": "h100-80gb", "params": {}}), mx.AnalyticCostModel)


def test_a_plan_built_in_python_goes_through_the_file_checks(plan, wl):
    from dataclasses import replace

    bad = replace(plan, cluster=None)
    with pytest.raises(InputTypeError, match="plan"):
        mx.simulate(bad, wl)
    frame = pd.DataFrame({"arrival_s": [0.0], "name": ["llm-0"], "prompt_len": [10**9], "output_len": [1]})
    with pytest.raises(InputError, match="prompt_len"):
        mx.simulate(plan, wl, requests=frame)
