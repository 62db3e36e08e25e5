"""gifkit.experiments.study: one dispatch for every expansion method, the dataset x method x seed grid, and its summary."""
import json
import math

import pandas as pd
import pytest

import gifkit.train.loop
from gifkit.data import load_dataset
from gifkit.io.store import read_metadata
from gifkit.experiments.study import MethodCache, method_spec, run_grid, summarize
from gifkit.methods import create_method, expand


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models train in milliseconds on one thread; two threads on a busy 2-core CPU take seconds."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_create_method_and_expand_run_augmentations_and_priors(tmp_path):
    ds, classes = load_dataset("smoke", "train")
    res = expand(create_method("cutout", classes), ds, tmp_path / "cut", ratio=2, limit=3)
    meta = read_metadata(tmp_path / "cut")
    assert res.written == 6 and len(meta) == 6 and set(meta["method"]) == {"cutout"}
    gif = create_method("gif-sd", classes, device="cpu", w_div=0.0, eps=0.5, strength=0.5, steps=2)
    res = expand(gif, ds, tmp_path / "gif", ratio=2, limit=2)
    run = json.loads((tmp_path / "gif" / "run.json").read_text())
    assert res.written == 4 and run["method"] == "gif-sd" and run["batch_size"] == 4
    assert run["guidance"]["w_div"] == 0.0 and run["guidance"]["eps"] == 0.5 and run["params"]["strength"] == 0.5
    again = expand(create_method("gif-sd", classes, device="cpu", w_div=0.0, eps=0.5, strength=0.5, steps=2), ds,
                   tmp_path / "gif", ratio=2, limit=2)
    assert again.written == 0 and again.existing == 4  # resumes


def test_the_cache_shares_a_methods_models_across_step_options(tmp_path):
    classes = load_dataset("smoke", "train")[1]
    cache = MethodCache()
    a = cache.get("gif-mae", classes, profile="smoke", device="cpu", options={"noise": "pixel"})
    b = cache.get("gif-mae", classes, profile="smoke", device="cpu", options={"opt_steps": 0})
    assert a.prior is b.prior and a.guide is b.guide  # an ablation of the step shares the models
    assert a.guidance.noise == "pixel" and a.guidance.eps == 5.0  # GIF-MAE's eps kept
    assert b.guidance.opt_steps == 0 and b.guidance.noise == "channel"
    c = cache.get("gif-mae", classes, profile="smoke", device="cpu", options={"model_id": None, "dtype": "fp32"})
    assert c.prior is not a.prior  # a model option builds the models again
    assert cache.get("mae", classes, profile="smoke", device="cpu").guidance.opt_steps == 0  # still unguided


def test_methods_reject_what_they_cannot_run(tmp_path):
    ds, classes = load_dataset("smoke", "train")
    with pytest.raises(ValueError, match="unknown method"):
        create_method("nope", classes)
    with pytest.raises(ValueError, match="no expansion"):
        create_method("original", classes)
    with pytest.raises(ValueError, match="unknown option.*eps"):
        create_method("mixup", classes, eps=1.0)
    with pytest.raises(ValueError, match="ratio"):
        expand(create_method("cutout", classes), ds, tmp_path, ratio=0)
    assert not tmp_path.joinpath("run.json").exists()  # refused before any work


def test_method_spec():
    assert method_spec("gif-sd") == ("gif-sd", "gif-sd", {})
    assert method_spec(("inf", "gif-sd", {"w_div": 0})) == ("inf", "gif-sd", {"w_div": 0})
    with pytest.raises(ValueError, match="no option"):
        method_spec(("x", "sd", {"w_div": 0}))  # the unguided baseline has no step
    with pytest.raises(ValueError):
        method_spec(3)


def test_run_grid_rows_ablation_equal_steps_and_resume(tmp_path, monkeypatch):
    methods = ["original", "cutout", ("gif-sd-inf", "gif-sd", {"w_div": 0.0})]
    expand = {"device": "cpu", "options": {"steps": 2}}  # shared: only the methods that take `steps` get it
    df = run_grid("smoke", methods, out=tmp_path, seeds=(0, 1), limit=4, ratio=2, expand=expand,
                  original_steps="equal")
    for col in ["dataset", "method", "seed", "accuracy", "accuracy_macro", "n_train", "expand_seconds",
                "train_seconds", "run_dir", "expanded_dir"]:
        assert col in df.columns
    assert len(df) == 6 and df["method"].tolist() == ["original"] * 2 + ["cutout"] * 2 + ["gif-sd-inf"] * 2
    assert df["seed"].tolist() == [0, 1] * 3 and set(df["dataset"]) == {"smoke"}
    assert df.set_index("method")["n_train"].to_dict() == {"original": 16, "cutout": 24, "gif-sd-inf": 24}
    assert df["total_steps"].nunique() == 1  # original_steps="equal": every cell trains the same number of steps
    assert df["accuracy"].between(0, 100).all() and df["expanded_dir"].isna().sum() == 2
    abl = df[df["method"] == "gif-sd-inf"].iloc[0]
    run = json.loads((tmp_path / "smoke" / "gif-sd-inf" / "seed_0" / "expanded" / "run.json").read_text())
    assert abl["base_method"] == "gif-sd" and run["guidance"]["w_div"] == 0.0 and run["seed"] == 0
    assert len(read_metadata(abl["expanded_dir"])) == 8 and run["params"]["steps"] == 2
    assert df["run_dir"][0] == str(tmp_path / "smoke" / "original_as0.5x" / "seed_0" / "run")  # 4 x 2 / 16 seeds

    def boom(cfg):
        raise AssertionError("a finished cell was trained again")

    monkeypatch.setattr(gifkit.train.loop, "train", boom)
    again = run_grid("smoke", methods, out=tmp_path, seeds=(0, 1), limit=4, ratio=2, expand=expand,
                     original_steps="equal")
    pd.testing.assert_frame_equal(again, df)
    with pytest.raises(AssertionError, match="trained again"):  # other training settings: the cell reruns
        run_grid("smoke", ["original"], out=tmp_path, seeds=(0,), ratio=2, limit=4, train={"lr": 0.01})


def test_run_grid_trains_other_archs_on_the_same_expansion(tmp_path):
    a = run_grid("smoke", ["cutout"], out=tmp_path, seeds=(0,), limit=2, ratio=1)
    images = sorted((tmp_path / "smoke" / "cutout" / "seed_0" / "expanded").glob("*/*.png"))
    mtimes = [f.stat().st_mtime_ns for f in images]
    b = run_grid("smoke", ["cutout"], out=tmp_path, seeds=(0,), limit=2, ratio=1, train={"arch": "test_efficientnet"})
    assert b["arch"][0] == "test_efficientnet" and a["arch"][0] == "test_resnet"
    assert b["expanded_dir"][0] == a["expanded_dir"][0] and b["expand_seconds"][0] == a["expand_seconds"][0]
    assert b["run_dir"][0].endswith("seed_0/run_arch=test_efficientnet") and a["run_dir"][0].endswith("seed_0/run")
    assert len(images) == 2 and [f.stat().st_mtime_ns for f in images] == mtimes  # not expanded again


def test_run_grid_is_deterministic(tmp_path):
    """Two runs of one grid write the same bytes: expanded images, their metadata and the trained weights (the
    final model and its checkpoint); another seed writes other bytes."""
    import hashlib
    from pathlib import Path

    def digests(root):
        wanted = [p for p in sorted(root.rglob("*")) if p.suffix == ".png" or p.name in ("metadata.csv",
                                                                                         "model.safetensors")]
        return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in wanted}

    grids = {name: run_grid("smoke", ["original", "gridmask"], out=tmp_path / name, seeds=(seed,), limit=2, ratio=1)
             for name, seed in (("a", 3), ("b", 3), ("other", 4))}
    a, b, other = (digests(tmp_path / name / "smoke") for name in ("a", "b", "other"))
    assert sorted(Path(f).name for f in a) == ["000000_000.png", "000001_000.png", "metadata.csv"] + [
        "model.safetensors"] * 4  # the gridmask images of 2 seeds; each run's final and checkpointed weights
    assert a == b and grids["a"]["accuracy"].tolist() == grids["b"]["accuracy"].tolist()
    images_and_weights = {f for f in a if not f.endswith("metadata.csv")}
    assert all(a[f] != other[f.replace("seed_3", "seed_4")] for f in images_and_weights)


def test_summarize_mean_sample_std_and_n():
    df = pd.DataFrame({"dataset": ["d"] * 4 + ["e"], "method": ["a", "a", "a", "b", "a"],
                       "accuracy": [10.0, 20.0, 30.0, 50.0, 7.0]})
    s = summarize(df)
    assert s[["dataset", "method"]].values.tolist() == [["d", "a"], ["d", "b"], ["e", "a"]]
    assert s["mean"].tolist() == [20.0, 50.0, 7.0]
    assert math.isclose(s["std"][0], 10.0)  # sqrt(((-10)^2 + 0 + 10^2) / (3 - 1))
    assert s["std"][1] == 0.0 and s["std"][2] == 0.0 and s["n"].tolist() == [3, 1, 1]
    one = summarize(df, by="method", value="accuracy")
    assert one["mean"].tolist() == [16.75, 50.0] and math.isclose(one["std"][0], (((10 - 16.75) ** 2 + (20 - 16.75) ** 2 + (30 - 16.75) ** 2 + (7 - 16.75) ** 2) / 3) ** 0.5)


def test_the_original_arm_trains_plain_epochs_by_default(tmp_path):
    """The official README's protocol: the original set trains the preset's epochs over itself (fewer steps than
    the expansions, which all train the same number); gifkit's equal-steps protocol is one argument away."""
    df = run_grid("smoke", ["original", "cutout"], out=tmp_path, seeds=(0,), ratio=2,
                  train={"data_kwargs": {"n_per_class": 8}, "batch_size": 8})
    steps = df.set_index("method")["total_steps"].to_dict()
    assert steps == {"original": 2 * (32 // 8), "cutout": 2 * (96 // 8)}  # 2 epochs of 32 vs of 32 x (1 + 2)
    assert df["run_dir"][0].startswith(str(tmp_path / "smoke" / "original" / "seed_0"))
    with pytest.raises(ValueError, match="original_steps"):
        run_grid("smoke", ["original"], out=tmp_path, original_steps="same")
