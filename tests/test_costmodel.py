"""The cost model: MuxServe's SM shape, monotonicity, tensor parallelism, table, calibration."""

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import muxsim as mx
from muxsim.costmodel import (
    AnalyticCostModel,
    AnalyticParams,
    ProfileRangeWarning,
    TableCostModel,
    predict_rows,
)
from muxsim.costmodel.profile import load_profile
from muxsim.errors import InputError
from muxsim.models import CATALOG

CM = AnalyticCostModel("a100-80gb")


@pytest.mark.parametrize("batch", [1, 8, 32])
def test_decode_barely_slows_at_30pct_sms(batch):
    # MuxServe (LLaMA-7B, A100, 128 tokens): 1.4-1.5x slower at 30% of the SMs for batch 1-32
    r = CM.decode_ms("llama-7b", batch, 128, sm=0.3) / CM.decode_ms("llama-7b", batch, 128)
    assert 1.35 <= r <= 1.55


def test_decode_at_batch_128_and_prefill_slowdowns():
    r = CM.decode_ms("llama-7b", 128, 128, sm=0.3) / CM.decode_ms("llama-7b", 128, 128)
    assert 1.65 <= r <= 1.95  # paper: 1.8x
    p1 = CM.prefill_ms("llama-7b", 1, 128, sm=0.3) / CM.prefill_ms("llama-7b", 1, 128)
    p128 = CM.prefill_ms("llama-7b", 128, 128, sm=0.3) / CM.prefill_ms("llama-7b", 128, 128)
    assert 1.8 <= p1 <= 2.1  # paper: 1.9x
    assert 2.4 <= p128 <= 2.75  # paper: 2.65x
    assert p128 > p1 > r / 1.3


models = st.sampled_from(sorted(CATALOG))


@settings(max_examples=60, deadline=None)
@given(model=models, b=st.integers(1, 256), s=st.integers(1, 4096), db=st.integers(1, 64),
       ds=st.integers(1, 512), sm=st.floats(0.05, 1.0), dsm=st.floats(0.0, 0.5),
       phase=st.sampled_from(["prefill", "decode"]))
def test_monotone_in_batch_seq_len_and_sms(model, b, s, db, ds, sm, dsm, phase):
    f = CM.phase_ms
    base = f(phase, model, b, s, 1, sm)
    assert f(phase, model, b + db, s, 1, sm) >= base
    assert f(phase, model, b, s + ds, 1, sm) >= base
    assert f(phase, model, b, s, 1, min(1.0, sm + dsm)) <= base
    assert np.isfinite(base) and base > 0


def test_tensor_parallelism_splits_compute_and_adds_communication():
    t1 = CM.forward_terms("llama-65b", 4096, 8, 8 * 512 * 513 / 2, 4096, tp=1)
    t4 = CM.forward_terms("llama-65b", 4096, 8, 8 * 512 * 513 / 2, 4096, tp=4)
    # a quarter, give or take the wave quantization of the smaller GEMMs
    assert float(t1.compute_ms) / 4 <= float(t4.compute_ms) <= float(t1.compute_ms) / 4 * 1.05
    assert float(t1.comm_ms) == 0.0 and float(t4.comm_ms) > 0.0
    assert CM.prefill_ms("llama-65b", 8, 512, tp=4) < CM.prefill_ms("llama-65b", 8, 512, tp=1)
    # a GPU without NVLink pays more for the same all-reduce
    pcie = AnalyticCostModel("l40s").forward_terms("llama-13b", 2048, 4, 1e6, 2048, tp=2).comm_ms
    nvl = AnalyticCostModel("a100-80gb").forward_terms("llama-13b", 2048, 4, 1e6, 2048, tp=2).comm_ms
    assert float(pcie) > 5 * float(nvl)


def test_vectorized_equals_scalar_calls():
    b = np.array([1, 3, 17, 64])
    s = np.array([10, 200, 1000, 2048])
    vec = CM.decode_ms("llama-13b", b, s, tp=2, sm=0.4)
    assert vec.shape == (4,)
    for i in range(4):
        assert vec[i] == CM.decode_ms("llama-13b", int(b[i]), int(s[i]), tp=2, sm=0.4)
    assert isinstance(CM.prefill_ms("llama-7b", 2, 100), float)


def test_ragged_forward_matches_uniform_phase_calls():
    # a ragged prefill whose prompts happen to be equal is the uniform prefill
    p = np.array([300, 300, 300])
    ragged = CM.forward_ms("llama-7b", p.sum(), 3, (p * (p + 1) / 2).sum(), p.sum())
    assert ragged == pytest.approx(CM.prefill_ms("llama-7b", 3, 300))
    c = np.array([100, 500])
    dec = CM.forward_ms("llama-7b", 2, 2, c.sum(), c.sum())
    assert dec == pytest.approx(CM.decode_ms("llama-7b", 2, 300))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"sm": 0.0}, r"sm: must be in \[0.01, 1\], got 0.0"), ({"sm": 1.5}, "sm: must be in"),
     ({"batch": 0}, "batch: must be >= 1"), ({"seq_len": 0}, "seq_len: must be >= 1"),
     ({"tp": 0}, "tp: must be a positive integer"), ({"tp": 3}, "tp: 3 does not divide")],
)
def test_bad_arguments_name_the_field(kwargs, message):
    args = {"batch": 4, "seq_len": 128, "tp": 1, "sm": 1.0} | kwargs
    with pytest.raises(InputError, match=message):
        CM.prefill_ms("llama-7b", args["batch"], args["seq_len"], tp=args["tp"], sm=args["sm"])


# ---- profiles, table, calibration -------------------------------------------------

STREAMING = ("bw_eff", "attn_bw_eff", "norm_eff", "rope_eff", "act_eff", "add_eff", "embed_eff")
TRUE = AnalyticParams(gemm_eff=0.6, gemm_big_eff=0.6, attn_eff=0.4, **dict.fromkeys(STREAMING, 0.7),
                      sm_compute_exp=0.9, bw_sat_tau=0.22, layer_overhead_us=40.0, step_overhead_ms=2.0, comm_eff=0.6,
                      comm_latency_us=20.0)


def synthetic_profile(params, models=("llama-7b", "llama-13b"), tps=(1,), sms=(30, 50, 70, 100),
                      noise=0.02, seed=0):
    cm = AnalyticCostModel("a100-80gb", params)
    rng = np.random.default_rng(seed)
    rows = []
    for m in models:
        for tp in tps:
            for ph in ("prefill", "decode"):
                for b in (1, 2, 4, 8, 16, 32, 64, 128):
                    for s in (64, 128, 256, 512, 1024, 2048):
                        if ph == "prefill" and b * s > 16384:
                            continue
                        for sm in sms:
                            lat = cm.phase_ms(ph, m, b, s, tp, sm / 100) * float(np.exp(rng.normal(0, noise)))
                            rows.append({"model": m, "gpu": "a100-80gb", "tp": tp, "sm_pct": sm, "phase": ph,
                                         "batch": b, "seq_len": s, "latency_ms": lat, "source": "synthetic"})
    return pd.DataFrame(rows)


def test_calibration_recovers_known_parameters(tmp_path):
    path = tmp_path / "p.csv"
    synthetic_profile(TRUE).to_csv(path, index=False)
    fit = mx.calibrate(path)
    p = fit.params
    for name in ("gemm_eff", "attn_eff", "bw_eff", "sm_compute_exp", "bw_sat_tau", "step_overhead_ms"):
        assert getattr(p, name) == pytest.approx(getattr(TRUE, name), rel=0.08), name
    rep = fit.calibration
    assert rep.n_eval > 0 and rep.eval_on.startswith("held-out")
    assert rep.median_ape < 3.0  # 2% noise
    assert rep.p90_ape < 6.0


def test_single_model_full_sm_fit_transfers_to_other_models_sms_and_tp(tmp_path):
    df = synthetic_profile(TRUE, models=("llama-7b", "llama-13b", "llama-30b"), tps=(1, 2), sms=(30, 60, 100),
                           noise=0.01)
    train = "model == 'llama-7b' and tp == 1 and sm_pct == 100"
    fit = mx.calibrate(df, train=train)
    prof = load_profile(df)
    held = prof[~((prof["model"] == "llama-7b") & (prof["tp"] == 1) & (prof["sm_pct"] == 100))]
    meas = held["latency_ms"].to_numpy()
    fitted_err = np.median(np.abs(predict_rows(fit, held) - meas) / meas)
    default_err = np.median(np.abs(predict_rows(AnalyticCostModel("a100-80gb"), held) - meas) / meas)
    assert fit.calibration.n_eval == len(held)
    assert fitted_err < 0.6 * default_err
    assert fitted_err < 0.10


def test_table_is_exact_at_measured_points_and_monotone():
    df = synthetic_profile(TRUE, models=("llama-7b",), sms=(50, 100), noise=0.0)
    tab = TableCostModel(df)
    sample = df.sample(25, random_state=1)
    for _, r in sample.iterrows():
        got = tab.phase_ms(r.phase, r.model, r.batch, r.seq_len, 1, r.sm_pct / 100)
        assert got == pytest.approx(r.latency_ms, rel=1e-9)
    b = np.arange(1, 129)
    lat = tab.decode_ms("llama-7b", b, 700, sm=0.75)  # between measured SM shares and sequence lengths
    assert np.all(np.diff(lat) >= -1e-12)
    s = np.arange(64, 2049, 7)
    assert np.all(np.diff(tab.prefill_ms("llama-7b", 4, s)) >= -1e-12)


def test_table_falls_back_outside_its_range_and_says_so_once():
    df = synthetic_profile(TRUE, models=("llama-7b",), sms=(100,), noise=0.0)
    tab = TableCostModel(df)
    edge = tab.decode_ms("llama-7b", 128, 2048)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        beyond = tab.decode_ms("llama-7b", 129, 2048)
        tab.decode_ms("llama-7b", 200, 2048)
        other = tab.decode_ms("llama-13b", 8, 128)
    msgs = [str(x.message) for x in w if issubclass(x.category, ProfileRangeWarning)]
    assert len(msgs) == 2 and "outside the profiled range" in msgs[0] and "llama-13b" in msgs[1]
    assert edge < beyond < edge * 1.05  # continuous at the boundary
    assert other == CM.decode_ms("llama-13b", 8, 128)


def test_profile_validation_names_row_and_column(tmp_path):
    df = synthetic_profile(TRUE, models=("llama-7b",), sms=(100,)).head(5)
    df.loc[3, "latency_ms"] = -1
    p = tmp_path / "bad.csv"
    df.to_csv(p, index=False)
    with pytest.raises(InputError, match=r"row 4: latency_ms must be in \(0, 1e\+09\], got -1"):
        load_profile(p)
    df.drop(columns=["phase"]).to_csv(p, index=False)
    with pytest.raises(InputError, match="missing column"):
        load_profile(p)


def test_a_loaded_profile_frame_can_be_calibrated_again(tmp_path):
    # tiny inline models come from the sidecar; a frame that load_profile returned keeps them
    df = synthetic_profile(TRUE, models=("llama-7b",), sms=(100,)).assign(model="tiny")
    df.to_csv(tmp_path / "p.csv", index=False)
    (tmp_path / "p.csv.models.json").write_text(
        '{"tiny": {"layers": 32, "hidden": 4096, "heads": 32, "intermediate": 11008, "vocab": 32000}}')
    loaded = load_profile(tmp_path / "p.csv")
    fit = mx.calibrate(loaded, holdout=0.0)
    assert isinstance(fit.params.step_overhead_ms, float)
    assert fit.calibration.eval_on.startswith("training rows")
    (tmp_path / "p.csv.models.json").unlink()
    with pytest.raises(InputError, match=r"unknown model 'tiny'.*p\.csv\.models\.json"):
        load_profile(tmp_path / "p.csv")
