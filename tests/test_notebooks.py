"""Every notebook executes top to bottom; the quickstart shows its figures inline and saves them."""

import pathlib

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted((pathlib.Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def execute(path, out, monkeypatch):
    monkeypatch.setenv("MUXSIM_NOTEBOOK_OUT", str(out))
    monkeypatch.setenv("MUXSIM_QUICK", "1")  # every notebook runs its small grid in CI
    monkeypatch.delenv("MPLBACKEND", raising=False)
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    return nb


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    nb = execute(path, tmp_path, monkeypatch)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    shown = {c.source.strip(): [o for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
             for c in nb.cells if c.cell_type == "code"}
    images = [s for s, outs in shown.items() if outs]
    assert len(images) >= 2  # figures inline
    saved = {p.name for p in tmp_path.iterdir()}
    if path.name == "02-placement-explorer.ipynb":
        assert sum("mx.plot.plan" in s for s in images) == 2 and "placement-vs-alpha.png" in saved
    if path.name == "03-cost-model.ipynb":
        assert {"roofline-sm.png", "tensor-parallel.png", "calibration.png"} <= saved
    if path.name != "01-quickstart.ipynb":
        return
    # inline figures, each shown once: the SM shape, SLO attainment, the plan, the TTFT CDF, utilization
    assert any("mx.plot.latency_cdf" in s and "ttft_ms" in s for s in images)
    assert any("mx.plot.plan" in s for s in images)
    assert len(images) >= 5 and all(len(outs) == 1 for outs in shown.values() if outs)
    figures = {p.name for p in (tmp_path / "quickstart-run" / "figures").iterdir()}
    assert {"ttft_cdf.png", "plan-muxserve.png", "slo_attainment.png"} <= figures
    assert (tmp_path / "sm-shape.png").read_bytes()[:4] == b"\x89PNG"


def test_there_is_a_notebook():
    assert NOTEBOOKS
