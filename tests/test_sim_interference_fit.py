"""Fitting the simulator's interference model to a co-location CSV (the profiler's format)."""

import pandas as pd
import pytest

from muxsim.costmodel import cost_model
from muxsim.errors import InputError
from muxsim.interference import InterferenceParams, fit_interference, job_inputs, slowdowns

TRUE = InterferenceParams(sm_coef=0.7, hbm_coef=1.6)


def colocation_rows(params, noise=0.0):
    cm = cost_model("a100-80gb")
    rows = []
    for i, (psm, dsm, pb, ps, db, dc) in enumerate([(80, 50, 1, 128, 64, 512), (100, 40, 2, 256, 128, 1024),
                                                   (70, 70, 1, 64, 32, 2048), (90, 30, 4, 128, 256, 512),
                                                   (60, 60, 1, 512, 16, 256)]):
        p_alone, kp, hp = job_inputs(cm.forward_terms("llama-7b", pb * ps, pb, pb * ps * (ps + 1) / 2, pb * ps, 1,
                                                      psm / 100))
        d_alone, kd, hd = job_inputs(cm.forward_terms("llama-7b", db, db, db * dc, db * dc, 1, dsm / 100))
        sp, sd = slowdowns([(psm / 100, float(kp), float(hp)), (dsm / 100, float(kd), float(hd))], params)
        wiggle = 1 + noise * (-1) ** i
        rows.append({"gpu": "a100-80gb", "model": "llama-7b", "tp": 1, "prefill_sm_pct": psm, "decode_sm_pct": dsm,
                     "prefill_batch": pb, "prefill_seq_len": ps, "decode_batch": db, "decode_seq_len": dc,
                     "prefill_alone_ms": float(p_alone), "prefill_colocated_ms": float(p_alone) * sp * wiggle,
                     "decode_alone_ms": float(d_alone), "decode_colocated_ms": float(d_alone) * sd * wiggle,
                     "sm_enforced": True})
    return pd.DataFrame(rows)


def test_fit_recovers_the_coefficients_that_made_the_rows(tmp_path):
    path = tmp_path / "interference.csv"
    colocation_rows(TRUE).to_csv(path, index=False)
    fitted, report = fit_interference(path)
    assert fitted.sm_coef == pytest.approx(TRUE.sm_coef, rel=1e-6)
    assert fitted.hbm_coef == pytest.approx(TRUE.hbm_coef, rel=1e-6)
    assert report["identifiable"] == {"sm_coef": True, "hbm_coef": True}
    assert report["median_abs_error_fitted"] < 1e-9 < report["median_abs_error_default"]


def test_noisy_rows_fit_close_and_unidentifiable_terms_keep_defaults(tmp_path):
    path = tmp_path / "noisy.csv"
    colocation_rows(TRUE, noise=0.02).to_csv(path, index=False)
    fitted, _ = fit_interference(path)
    assert fitted.sm_coef == pytest.approx(TRUE.sm_coef, rel=0.3)
    assert fitted.hbm_coef == pytest.approx(TRUE.hbm_coef, rel=0.3)
    # shares that never oversubscribe the SMs say nothing about sm_coef
    under = colocation_rows(TRUE).assign(prefill_sm_pct=50, decode_sm_pct=50)
    under.to_csv(path, index=False)
    fitted, report = fit_interference(path)
    assert not report["identifiable"]["sm_coef"] and fitted.sm_coef == InterferenceParams().sm_coef


def test_bad_files_name_the_problem(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        fit_interference(tmp_path / "nope.csv")
    (tmp_path / "bad.csv").write_text("gpu,model\ncpu,x\n")
    with pytest.raises(InputError, match="missing column"):
        fit_interference(tmp_path / "bad.csv")
