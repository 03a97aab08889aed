"""The shipped fits against the public measurements they came from (skipped without them).

The measurements are read from ``$MUXSIM_VIDUR_DIR`` or, when it exists, the Vidur
``data/profiling`` mirror beside the repository (``../shared/profiles/vidur``); they are
never copied into the repository.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from muxsim.costmodel import AnalyticCostModel, AnalyticParams
from muxsim.costmodel.fidelity import evaluate, summarize
from muxsim.costmodel.params import ENGINE_FIELDS, FITTED, fitted_document
from muxsim.costmodel.vidur_fit import calibrate_vidur, fit_compute, load_vidur, params_document


def _vidur_dir() -> Path | None:
    env = os.environ.get("MUXSIM_VIDUR_DIR")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent.parent.parent / "shared" / "profiles" / "vidur"
    return here if here.is_dir() else None


VIDUR = _vidur_dir()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(VIDUR is None, reason="no Vidur profiles (MUXSIM_VIDUR_DIR)")]


@pytest.fixture(scope="module", params=FITTED)
def refit(request):
    data = load_vidur(VIDUR, request.param)
    return data, calibrate_vidur(data, request.param)


def test_shipped_parameters_are_what_the_data_gives(refit):
    data, cm = refit
    shipped = fitted_document(data.gpu)
    doc = params_document(cm)
    for k, v in shipped["params"].items():
        if k == "allreduce":
            rows = {(r["topology"], r["tp"]): r for r in v}
            assert set(rows) == {(r["topology"], r["tp"]) for r in doc["params"][k]}
            for r in doc["params"][k]:
                want = rows[(r["topology"], r["tp"])]
                assert r["latency_us"] == pytest.approx(want["latency_us"], rel=1e-3)
                assert r["busbw_gbps"] == pytest.approx(want["busbw_gbps"], rel=1e-3)
        else:
            assert doc["params"][k] == pytest.approx(v, rel=1e-3), k
    for name, preset in (shipped.get("engines") or {}).items():
        assert set(preset) == set(ENGINE_FIELDS)
        assert doc["engines"][name] == pytest.approx(preset, rel=1e-3), name
    assert doc["provenance"]["files"] == shipped["provenance"]["files"]
    layer = shipped["provenance"]["error_in_sample"]["layer"]
    assert cm.calibration.in_sample["layer"]["ape_pct"]["p50"] == pytest.approx(layer["ape_pct"]["p50"], abs=0.05)


def test_a_held_out_model_meets_the_targets_and_the_datasheet_did_not(refit):
    data, cm = refit
    held = "meta-llama/Llama-2-70b-hf"
    fitted = fit_compute(data.without(held), cm.params)
    got = summarize(evaluate(AnalyticCostModel(data.gpu, fitted), data.only(held)))
    assert got["layer"]["ape_pct"]["p50"] <= 5.0 and got["layer"]["ape_pct"]["p90"] <= 12.0, got["layer"]
    before = summarize(evaluate(AnalyticCostModel(data.gpu, AnalyticParams()), data.only(held)))
    assert before["layer"]["ape_pct"]["p50"] > 2 * got["layer"]["ape_pct"]["p50"]
