"""gifkit.experiments.setups: each study notebook's setup values per profile, written out as the values its setup
cell computed before it called the library (so the committed mini outputs, printed from them, stay valid), and the
notebooks' setup cells unpacking exactly what setup returns."""
import ast
import json
from pathlib import Path

import pytest

from gifkit.experiments.mini import MiniConfig, arm_specs, grid_settings
from gifkit.experiments.setups import DEFAULTS, PAPER_RATIO, RETURNS, TABLE1, arm_spec, parameters, setup

ROOT = Path(__file__).resolve().parent.parent
MINI_SEEDS = [0, 1, 2, 3, 4]
MINI_EXPAND = {"batch_size": 20, "device": "cpu",
               "options": {"model_id": "fashion-mnist", "flip": True, "guide_size": 112, "logit_scale": "fit"}}


def resolved(notebook, profile, grid_dir=None, **params):
    return dict(zip(RETURNS[notebook], setup(notebook, profile, grid_dir, **params)))


@pytest.fixture
def grid(tmp_path):
    return tmp_path / "results" / "mini" / "work" / "grid"


def mini_settings(tmp_path, **overrides):
    """What ``gifkit mini`` computes for the default mini grid under tmp_path/results/mini."""
    return grid_settings(MiniConfig(seeds=tuple(MINI_SEEDS), out=str(tmp_path / "results" / "mini"), progress=False,
                                    **overrides))


def test_mini_settings_are_gifkit_minis_cells_in_every_notebook(tmp_path, grid):
    assert mini_settings(tmp_path) == {"profile": "mini", "ratio": 5, "train": {}, "expand": MINI_EXPAND}
    for notebook in RETURNS:
        v = resolved(notebook, "mini", grid, out=tmp_path)
        assert v["settings"] == mini_settings(tmp_path), notebook  # nothing is trained again
        assert v["seeds"] == MINI_SEEDS, notebook
        if "n_seeds" in v:
            assert v["n_seeds"] is None, notebook  # every seed of the 200-image set
        # the parameters' batch_size is the one expansion override, everywhere
        assert resolved(notebook, "mini", grid, out=tmp_path, batch_size=3)["settings"]["expand"]["batch_size"] == 3
    steps = resolved("05_main_results", "mini", grid, mini={"steps": 60}, seeds=[1])["settings"]
    assert steps == grid_settings(MiniConfig(seeds=(1,), steps=60, out=str(tmp_path / "results" / "mini")))
    with pytest.raises(ValueError, match="work/grid"):
        setup("05_main_results", "mini", tmp_path / "grid")


def test_quickstart(tmp_path, grid):
    assert resolved("00_quickstart", "mini", grid) == {
        "dataset": "fashion-mnist", "method": "gif-vae", "ratio": 5, "n_seeds": None, "seeds": MINI_SEEDS,
        "settings": mini_settings(tmp_path)}
    assert resolved("00_quickstart", "smoke", n_seeds=0) == {
        "dataset": "smoke", "method": "gif-sd", "ratio": 2, "n_seeds": 0, "seeds": [0],
        "settings": {"profile": "smoke", "ratio": 2, "train": None, "expand": {"device": None,
                                                                              "options": {"preset": None}}}}
    colab = resolved("00_quickstart", "colab", epochs=3, batch_size=2)  # the paper's choices and GIF-SD preset
    assert colab == {"dataset": "cifar100s", "method": "gif-sd", "ratio": 5, "n_seeds": 200, "seeds": [0, 1, 2],
                     "settings": {"profile": "colab", "ratio": 5, "train": {"epochs": 3},
                                  "expand": {"device": None, "options": {"preset": "cifar100s"}, "batch_size": 2}}}


def test_preliminary_studies(tmp_path, grid):
    v = resolved("01_preliminary_studies", "mini", grid)
    assert (v["dataset"], v["ratio"], v["augments"], v["noise_method"], v["train_opts"]) == \
        ("fashion-mnist", 5, ["randaugment"], "gif-vae", {})
    assert resolved("01_preliminary_studies", "smoke") == {
        "dataset": "smoke", "ratio": 2, "augments": ["randaugment", "cutout"], "seeds": [0], "noise_method": "gif-mae",
        "n_seeds": 4, "settings": {"profile": "smoke", "ratio": 2, "train": {}, "expand": {}},
        "train_opts": {"steps_ratio": 2}}  # a selection trains the expanded set's epochs
    paper = resolved("01_preliminary_studies", "paper", data_root="/d", download=True, device="cuda")
    assert paper["settings"] == {"profile": "paper", "ratio": 5, "expand": {"device": "cuda"},
                                 "train": {"data_root": "/d", "data_kwargs": {"download": True}}}
    assert paper["train_opts"] == {"data_root": "/d", "data_kwargs": {"download": True}, "steps_ratio": 5}
    assert (paper["dataset"], paper["n_seeds"], paper["seeds"]) == ("cifar100s", None, [0, 1, 2])


def test_main_results(tmp_path, grid):
    v = resolved("05_main_results", "mini", grid)
    assert v["methods"] == ["original", "cutout", "gridmask", "randaugment", "cutmix", "vae", "vae-random", "gif-vae"]
    assert v["specs"] == [("original", "original", {}), "cutout", "gridmask", ("randaugment", "randaugment", {}),
                          "cutmix", ("vae", "vae", {}), ("vae-random", "gif-vae", {"opt_steps": 0}),
                          ("gif-vae", "gif-vae", {})]  # gifkit mini's arm labels
    assert (v["datasets"], v["ratio"]) == (["fashion-mnist"], 5)
    smoke = resolved("05_main_results", "smoke")
    assert smoke["specs"] == smoke["methods"] == ["original", "randaugment", "cutout", "mixup", "mae", "gif-mae",
                                                  "sd", "gif-sd"]
    assert smoke["settings"] == {"profile": "smoke", "ratio": 2, "train": None, "expand": {}}
    paper = resolved("05_main_results", "paper", epochs=7)
    assert paper["datasets"] == list(PAPER_RATIO) and len(paper["datasets"]) == 9 and paper["methods"] == TABLE1
    assert paper["ratio"] == PAPER_RATIO and PAPER_RATIO["pets"] == 30  # the paper's ratio per dataset
    assert paper["settings"] == {"profile": "paper", "ratio": PAPER_RATIO, "train": {"epochs": 7}, "expand": {}}


def test_ablations(tmp_path, grid):
    v = resolved("06_ablations", "mini", grid, studies=["criteria", "prompts", "eps"])
    assert v["studies"] == ["criteria", "eps"] and v["skipped"] == ["prompts"]  # SD-only studies: skipped on mini
    assert (v["eps_values"], v["eps_ratios"], v["temperatures"], v["strengths"]) == \
        ([0.4, 0.8, 2.0], [5], [1.0, 0.1, 0.03, 0.01], [])
    assert v["cfg"] == MiniConfig(seeds=tuple(MINI_SEEDS), out=str(tmp_path / "results" / "mini"), progress=False)
    assert v["grid"] == {"out": grid, "seeds": MINI_SEEDS, "limit": None, "profile": "mini", "train": {},
                         "expand": MINI_EXPAND}
    assert (v["P"]["main"], v["P"]["probe"], v["P"]["families"]) == ("fashion-mnist", "gif-vae",
                                                                     [("vae", "gif-vae", False)])
    assert resolved("06_ablations", "mini", grid)["studies"] == ["criteria", "noise", "eps", "diversity", "guidance",
                                                                "guide"]
    smoke = resolved("06_ablations", "smoke", "g")
    assert (smoke["eps_values"], smoke["temperatures"], smoke["guidance_scales"], smoke["cfg"]) == \
        ([2, 8], [1.0, 0.03], [5], None)
    assert smoke["grid"] == {"out": "g", "seeds": [0], "limit": 4, "profile": "smoke", "train": None, "expand": {}}
    paper = resolved("06_ablations", "paper", strengths=[0.9])
    assert (paper["P"]["eps_data"], paper["eps_ratios"], paper["strengths"], paper["studies"][-1]) == \
        ("caltech101", [5, 10], [0.9], "scale")


def test_ood_writes_the_smoke_stand_in_and_tests_mini_on_fashion_mnist_c(tmp_path, grid):
    v = resolved("07_ood", "mini", grid)
    assert (v["methods"], v["c_data"], v["c_root"], v["c_kwargs"], len(v["corruptions"])) == \
        (["original", "randaugment", "gif-vae"], "fashion-mnist-c", None, {"test_per_class": 50}, 7)
    assert resolved("07_ood", "mini", grid, c_per_class=9)["c_kwargs"] == {"test_per_class": 9}
    smoke = resolved("07_ood", "smoke", out=tmp_path, corruptions=["contrast"])
    assert (smoke["c_data"], smoke["c_root"], smoke["c_kwargs"]) == ("cifar100c", tmp_path / "cifar100c_standin", {})
    assert sorted(p.name for p in smoke["c_root"].rglob("*.npy")) == ["contrast.npy", "labels.npy"]
    with pytest.raises(ValueError, match="out="):
        setup("07_ood", "smoke", None)
    paper = resolved("07_ood", "paper", data_root="/d")
    assert (paper["c_root"], len(paper["corruptions"]), paper["settings"]["train"]) == ("/d", 15, {"data_root": "/d"})


def test_long_tail():
    assert resolved("08_long_tail", "smoke") == {
        "dataset": "smoke-lt", "method": "gif-mae", "ratio": 2, "seeds": [0], "epochs": None,
        "settings": {"profile": "smoke", "ratio": 2, "train": {}, "expand": {}}}
    assert resolved("08_long_tail", "paper")["settings"] == {  # 200 epochs (App. F.7), GIF-SD's CIFAR settings
        "profile": "paper", "ratio": 20, "train": {"epochs": 200}, "expand": {"preset": "cifar100s"}}


def test_architectures(tmp_path, grid):
    v = resolved("09_architectures", "mini", grid)
    assert v["archs"] == {"ResNet-50": "mini_resnet18", "ResNeXt-50": "regnetx_002", "MobileNetV2": "mobilenetv2_050"}
    assert v["preset_arch"] == "mini_resnet18" and v["specs"] == [("original", "original", {}),
                                                                  ("gif-vae", "gif-vae", {})]
    smoke = resolved("09_architectures", "smoke", epochs=1)
    assert (smoke["preset_arch"], smoke["settings"]["train"]) == ("test_resnet", {"epochs": 1})
    assert resolved("09_architectures", "paper")["preset_arch"] == "resnet50"


def test_efficiency(tmp_path, grid):
    v = resolved("10_efficiency", "mini", grid)
    assert (v["n_time_seeds"], v["expand_kw"]) == (20, MINI_EXPAND)
    assert v["specs"] == ["original", ("randaugment", "randaugment", {}), "cutout", "gridmask", ("vae", "vae", {}),
                          ("gif-vae", "gif-vae", {})]
    paper = resolved("10_efficiency", "paper")
    assert (paper["n_time_seeds"], paper["expand_kw"]) == (100, {"options": {"preset": "cifar100s"}})
    assert resolved("10_efficiency", "paper", dataset="pets")["expand_kw"] == {}  # the preset is CIFAR100-S's
    assert resolved("10_efficiency", "smoke")["specs"][0] == "original"


def test_the_table_is_never_changed_by_what_a_notebook_does_with_its_values():
    first = resolved("05_main_results", "smoke")
    first["methods"].append("mine")
    first["settings"]["expand"]["device"] = "cuda"
    assert resolved("05_main_results", "smoke")["methods"][-1] == "gif-sd"
    assert DEFAULTS["05_main_results"]["smoke"]["methods"][-1] == "gif-sd"


def test_unknown_notebook_or_parameter_is_one_clear_error():
    with pytest.raises(ValueError, match="no setup for notebook '02_gif_sd'"):
        setup("02_gif_sd", "smoke")
    with pytest.raises(TypeError, match="datasets"):
        setup("00_quickstart", "smoke", datasets=["smoke"])


def test_arm_spec_takes_gifkit_minis_arm_only_where_method_and_options_match():
    assert arm_spec("vae-random", "gif-vae", opt_steps=0) == arm_specs(["vae-random"])[0]
    assert arm_spec("vae-random", "gif-vae") == ("vae-random", "gif-vae", {})
    assert arm_spec("gif-sd:eps=2", "gif-sd", eps=2) == ("gif-sd:eps=2", "gif-sd", {"eps": 2})


def test_each_setup_cell_unpacks_what_setup_returns_and_passes_its_own_parameters():
    assert set(RETURNS) == set(DEFAULTS)
    for notebook in RETURNS:
        nb = json.loads((ROOT / "notebooks" / f"{notebook}.ipynb").read_text(encoding="utf-8"))
        code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
        params = {t.id for node in ast.parse(code[0]).body if isinstance(node, ast.Assign) for t in node.targets}
        calls = [node for node in ast.parse(code[2]).body if isinstance(node, ast.Assign) and
                 isinstance(node.value, ast.Call) and getattr(node.value.func, "id", None) == "setup"]
        assert len(calls) == 1, f"{notebook}: one setup call in the setup cell"
        call = calls[0]
        assert [e.id for e in call.targets[0].elts] == list(RETURNS[notebook]), notebook
        assert call.value.args[0].value == notebook
        for kw in call.value.keywords:
            assert isinstance(kw.value, ast.Name) and kw.value.id == kw.arg, f"{notebook}: {kw.arg}={kw.value}"
        passed = {kw.arg for kw in call.value.keywords} - {"out"}
        assert set(parameters(notebook)) <= params, f"{notebook}: setup takes what its parameters cell lacks"
        assert passed == set(parameters(notebook)), f"{notebook}: every parameter setup reads is passed, no other"
