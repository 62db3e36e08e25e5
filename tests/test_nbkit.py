"""What the notebooks share (gifkit.experiments.nbkit), the evaluations they add (gifkit.experiments.evaluation) and
the pipeline's steps per prior (the figures themselves: tests/test_plots.py)."""
import math
from pathlib import Path

import pandas as pd
import pytest

from gifkit.experiments import nbkit


def runs_table():
    # arm b is 1.0, 1.5, 0.8 points above a: an effect; arm c is +1, -1, +1 around a: no effect
    rows = []
    for s, (base, up) in enumerate([(70.0, 1.0), (72.0, 1.5), (71.0, 0.8)]):
        rows += [{"method": "a", "seed": s, "accuracy": base}, {"method": "b", "seed": s, "accuracy": base + up},
                 {"method": "c", "seed": s, "accuracy": base + (1.0 if s != 1 else -1.0)}]
    return pd.DataFrame(rows)


def test_differences_and_verdicts_call_an_effect_only_when_the_interval_excludes_zero():
    table = nbkit.differences(runs_table(), "a")
    assert list(table["method"]) == ["b", "c"] and list(table["seeds"]) == [3, 3]
    assert table.iloc[0]["difference [95 % CI]"] == "+1.10 [+0.20, +2.00]"  # 1.1 -/+ t(2) 4.303 * 0.3606 / sqrt 3
    assert table.iloc[0]["effect?"] == "yes: higher" and table.iloc[1]["effect?"] == "no (interval holds 0)"
    text = nbkit.verdicts(table).splitlines()
    assert "this is an effect (higher)" in text[0] and "no detectable difference with 3 seeds" in text[1]
    one = nbkit.differences(runs_table().query("seed == 0"), "a")
    assert set(one["effect?"]) == {"n/a (too few seeds or no spread)"} and "no claim either way" in nbkit.verdicts(one)


def test_show_never_displays_nan():
    shown = nbkit.show(pd.DataFrame({"x": [1.23456, math.nan], "y": ["a", None], "z": [0.5, "n/a"]}), 2)
    assert shown["x"].tolist() == [1.23, "—"] and shown["y"].tolist() == ["a", "—"] and shown["z"].tolist() == [0.5, "n/a"]
    assert "nan" not in shown.to_string().lower()


def test_start_run_prints_the_header_and_finish_the_wall_time(capsys):
    info = nbkit.start_run("smoke")
    header = capsys.readouterr().out
    assert header.startswith("profile: smoke (") and "date: " in header and "machine: " in header
    assert nbkit.WALL_PLACEHOLDER in header and "CPU cores" in info.machine
    assert info.finish() is None  # the last cell of a notebook displays no value (nbval compares it)
    assert info.seconds >= 0 and "wall time of this run: 0 s (profile smoke" in capsys.readouterr().out
    assert [nbkit.fmt_seconds(s) for s in (42, 210, 9000)] == ["42 s", "3.5 min", "2.5 h"]


def test_install_cell_and_badge_come_from_the_repository_and_release():
    cell = nbkit.install_cell(("mini", "fid"))
    assert f'"gifkit[mini,fid] @ git+{nbkit.REPOSITORY}@{nbkit.RELEASE}"' in cell
    assert nbkit.install_spec(()) == f"gifkit @ git+{nbkit.REPOSITORY}@{nbkit.RELEASE}"
    assert nbkit.badge("00_quickstart.ipynb").endswith(f"/blob/{nbkit.RELEASE}/notebooks/00_quickstart.ipynb)")
    compile(cell, "install", "exec")  # valid Python


def test_relative_folders_are_the_same_from_notebooks_as_from_the_root(tmp_path, monkeypatch):
    """A kernel started in notebooks/ (JupyterLab, VS Code, nbval) writes where papermill at the root does."""
    root = Path(nbkit.__file__).resolve().parents[2]
    monkeypatch.delenv(nbkit.ROOT_VARIABLE, raising=False)
    monkeypatch.setattr(nbkit.Path, "mkdir", lambda self, **k: None)  # resolve only: write nothing in the checkout
    monkeypatch.chdir(root / "notebooks")
    out, grid = nbkit.folders("mini", "results/{profile}/05", "results/{profile}/work/grid")
    # relative, from the root the kernel moved to: the paths grid cells record are those of `gifkit mini` at the root
    assert (out, grid) == (Path("results/mini/05"), Path("results/mini/work/grid")) and Path.cwd() == root
    monkeypatch.setenv(nbkit.ROOT_VARIABLE, str(tmp_path))
    assert nbkit.project_root() == tmp_path.resolve()
    assert nbkit.folders("smoke", "results/{profile}/x")[0] == Path("results/smoke/x")
    assert Path.cwd() == tmp_path.resolve()


def test_folders_fill_the_profile_and_refuse_drive_outside_colab(tmp_path, monkeypatch):
    out, grid = nbkit.folders("mini", str(tmp_path / "{profile}" / "nb"), str(tmp_path / "{profile}" / "work/grid"))
    assert out == tmp_path / "mini" / "nb" and out.is_dir() and grid == tmp_path / "mini" / "work" / "grid"
    assert nbkit.folders("smoke", str(tmp_path / "x"))[1] is None
    monkeypatch.setattr(nbkit, "DRIVE", tmp_path / "no-drive")
    monkeypatch.setattr(nbkit, "in_colab", lambda: False)
    from gifkit.errors import UserError

    with pytest.raises(UserError, match="Google Drive"):
        nbkit.folders("mini", "results/{profile}/x", drive=True)
    drive = tmp_path / "drive"
    drive.mkdir()
    monkeypatch.setattr(nbkit, "DRIVE", drive)
    out, grid = nbkit.folders("mini", "results/{profile}/x", "results/{profile}/work/grid", drive=True)
    assert out == drive / "gifkit" / "results" / "mini" / "x" and grid == drive / "gifkit" / "results/mini/work/grid"


def test_mini_config_puts_the_grid_where_gifkit_mini_writes_it(tmp_path):
    from gifkit.experiments.mini import MiniConfig, grid_settings

    cfg = nbkit.mini_config(tmp_path / "results" / "mini" / "work" / "grid", [0, 1], steps=60)
    assert cfg.out == str(tmp_path / "results" / "mini") and cfg.seeds == (0, 1) and cfg.steps == 60
    assert grid_settings(cfg) == grid_settings(MiniConfig(steps=60))
    with pytest.raises(ValueError, match="work/grid"):
        nbkit.mini_config(tmp_path / "grid", [0])


def test_pipeline_steps_say_what_each_prior_differentiates():
    """The steps per prior (what the figures draw of them: tests/test_plots.py)."""
    from gifkit.experiments.plots import PIPELINE_STEPS, pipeline_steps

    assert [t for t, _ in pipeline_steps("sd")] == [t for t, _ in PIPELINE_STEPS]
    dalle = pipeline_steps("gif-dalle")
    assert dalle[3][0] == "no decode" and "normalize" in dalle[3][1]
    assert "Lite0" in pipeline_steps("vae")[4][1] and "tokens" in pipeline_steps("mae")[1][1]
    with pytest.raises(ValueError, match="prior"):
        pipeline_steps("gan")


def test_corruption_table_tests_a_run_on_every_corrupted_split(tmp_path):
    """A tiny smoke run on the smoke-profile stand-in of CIFAR-100-C (official layout): one row per
    corruption x severity, accuracies in [0, 100]."""
    from gifkit.data import load_dataset
    from gifkit.experiments.evaluation import corruption_table
    from gifkit.experiments.prelim import write_fake_cifar100c
    from gifkit.train.config import make_config
    from gifkit.train.loop import train

    test, _ = load_dataset("smoke", "test", n_per_class=2)
    write_fake_cifar100c(tmp_path / "c", test, ["contrast", "gaussian_noise"])
    train(make_config("smoke", data="smoke", epochs=1, out=str(tmp_path / "run"), progress=False))
    t = corruption_table(tmp_path / "run", "cifar100c", ["contrast", "gaussian_noise"], (1, 5), root=tmp_path / "c",
                         profile="smoke", device="cpu")
    assert list(zip(t["corruption"], t["severity"])) == [("contrast", 1), ("contrast", 5), ("gaussian_noise", 1),
                                                         ("gaussian_noise", 5)]
    assert set(t["images"]) == {8} and t["accuracy"].between(0, 100).all()
    assert all(a * 8 / 100 == round(a * 8 / 100) for a in t["accuracy"])  # a whole number of the 8 images


def test_lite0_fid_features_map_uint8_images_to_pooled_features():
    import torch

    from gifkit.experiments.evaluation import lite0_fid_features
    from gifkit.models.protoguide import tiny_lite0

    f = lite0_fid_features(size=32, backbone=tiny_lite0())
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    y = f(x)
    assert f.num_features == 1280 and y.shape == (2, 1280) and y.dtype == torch.float64
    assert torch.allclose(f(x[:1]), y[:1], atol=1e-5)  # per image, whatever the batch


def test_paper_vs_run_subtracts_only_numbers_measured_on_the_same_data():
    from gifkit.experiments.paper import paper_vs_run

    paper = pd.DataFrame({"method": ["Original", "GIF-SD"], "accuracy": [35.0, 54.5]})
    run = pd.DataFrame({"method": ["Original", "GIF-SD"], "accuracy": [36.0, 52.0]})
    same = paper_vs_run(paper, run, on="method").set_index("method")
    assert same["run_minus_paper"].to_dict() == {"Original": 1.0, "GIF-SD": -2.5}
    other = paper_vs_run(paper, run, on="method", same_data=False)  # e.g. smoke shapes beside PathMNIST
    assert "run_minus_paper" not in other
    assert other.set_index("method")["run_accuracy"].to_dict() == {"Original": 36.0, "GIF-SD": 52.0}
