"""Conventions of the numbered notebooks. Their execution is checked by nbval in `make test`.

Choice: committed notebooks carry the outputs of a smoke-profile run (`make notebooks-refresh`),
so nbval can compare the cells marked NBVAL_CHECK_OUTPUT, and a reader sees what a cell produces.
"""
import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 3


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_conventions(path):
    nb = json.loads(path.read_text())
    cells = nb["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert cells[0]["cell_type"] == "markdown" and "colab-badge" in "".join(cells[0]["source"])
    assert re.search(r"needs", "".join(cells[0]["source"]), re.I), "the intro says what the notebook needs"
    first = code[0]
    assert "parameters" in first.get("metadata", {}).get("tags", []), "first code cell is tagged `parameters`"
    src = "".join(first["source"])
    assert re.search(r'^profile = "smoke"', src, re.M) and "out_dir" in src
    assert any("find_spec(\"gifkit\")" in "".join(c["source"]) for c in code[:3]), "an install cell"
    assert "paper" in "".join(cells[-2]["source"] + cells[-1]["source"]).lower(), "ends with paper vs this run"
    assert not any(c.get("metadata", {}).get("tags") == ["injected-parameters"] for c in code)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_outputs_come_from_a_clean_smoke_run(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    counts = [c.get("execution_count") for c in code]
    assert all(isinstance(n, int) for n in counts), "run `make notebooks-refresh` and commit the outputs"
    assert counts == sorted(counts), "cells were executed top to bottom"
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_declared_profiles_are_known_and_include_smoke(path):
    from gifkit.config import PROFILE_NAMES as PROFILES
    from gifkit.experiments.notebooks import supported_profiles

    profiles = supported_profiles(path)
    assert "smoke" in profiles and set(profiles) <= set(PROFILES)


def test_runner_skips_a_notebook_under_a_profile_it_does_not_support(tmp_path, capsys):
    from gifkit.experiments.notebooks import run

    nb = {"cells": [], "metadata": {"gifkit": {"profiles": ["smoke", "paper"]}}, "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "99_only_smoke_and_paper.ipynb").write_text(json.dumps(nb))
    assert run("mini", out=tmp_path / "out", folder=tmp_path) == []
    assert "skip  99_only_smoke_and_paper.ipynb" in capsys.readouterr().out
    assert not (tmp_path / "out" / "99_only_smoke_and_paper.ipynb").exists()
