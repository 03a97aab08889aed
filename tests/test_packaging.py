"""The package metadata matches the source tree."""

import pathlib
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_in_pyproject():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(cfg["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "muxsim").rglob("__init__.py")}
    found |= {"muxsim_kernels" + "".join("." + x for x in p.parent.relative_to(ROOT / "kernels").parts)
              for p in (ROOT / "kernels").rglob("__init__.py")}
    assert found == listed


def test_core_install_does_not_require_torch():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    deps = " ".join(cfg["project"]["dependencies"]).lower()
    assert "torch" not in deps and "triton" not in deps
    assert (ROOT / "muxsim" / "py.typed").exists()


def test_gpu_extra_keeps_an_installed_cuda_torch():
    """Only the CPU test extra pins torch; the gpu extra must accept the machine's own
    CUDA build (a pin would make pip replace it with a CPU wheel)."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    gpu_torch = [r for r in extras["gpu"] if r.lower().startswith("torch")]
    assert gpu_torch and all("==" not in r and "<" not in r for r in gpu_torch)
    assert "torch==" in " ".join(extras["test"])
