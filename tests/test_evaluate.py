"""`gifkit evaluate`: metrics by hand, long-tail groups, the run/CIFAR100-C/CLIP/FID evaluations and their JSON."""
import json
import time

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from gifkit.cli import main
from gifkit.data import load_dataset
from gifkit.data.longtail import longtail_counts
from gifkit.methods import create_method, expand
from gifkit.models.classifiers import create_model
from gifkit.train import evaluate as ev
from gifkit.train import metrics
from gifkit.train.config import make_config
from gifkit.train.loop import train
from gifkit.train.runs import load_run


pytestmark = pytest.mark.usefixtures("one_thread")


def test_classification_metrics_by_hand():
    labels = [0, 0, 0, 0, 1, 1, 2]
    preds = [0, 0, 0, 1, 1, 0, 2]
    m = metrics.classification_metrics(preds, labels, ["a", "b", "c", "d"])
    assert m["accuracy_micro"] == pytest.approx(100 * 5 / 7)
    assert m["per_class_accuracy"] == {"a": 75.0, "b": 50.0, "c": 100.0, "d": None}
    assert m["accuracy_macro"] == pytest.approx((75 + 50 + 100) / 3)  # "d" has no test images
    assert m["n_test"] == 7


def test_long_tail_group_boundaries():
    g = metrics.shot_groups([101, 100, 20, 19, 500, 5])
    assert g == {"many": [0, 4], "medium": [1, 2], "few": [3, 5]}
    counts = longtail_counts(500, 100, 100)  # CIFAR100-LT, ratio 100
    g = metrics.shot_groups(counts)
    assert [len(g[k]) for k in ("many", "medium", "few")] == [35, 35, 30]
    assert counts[34] == 102 and counts[35] == 98 and counts[69] == 20 and counts[70] == 19
    acc = metrics.shot_accuracy([90.0, 80.0, 70.0, None, 50.0, 10.0], [101, 100, 20, 19, 500, 5])
    assert (acc["many"], acc["medium"], acc["few"]) == (70.0, 75.0, 10.0)
    assert acc["n_classes"] == {"many": 2, "medium": 2, "few": 2}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("ev") / "run"
    train(make_config("smoke", data="smoke", data_kwargs={"n_per_class": 8}, epochs=1, batch_size=8,
                      out=str(out), progress=False))
    return out


def test_evaluate_json_of_a_trained_run(run_dir, tmp_path):
    out = tmp_path / "eval.json"
    assert main(["evaluate", "--run", str(run_dir), "--long-tail", "--out", str(out), "--no-progress",
                 "--device", "cpu"]) == 0
    r = json.loads(out.read_text())
    trained = json.loads((run_dir / "result.json").read_text())
    assert r["units"] == "percent" and r["data"] == "smoke" and r["split"] == "test" and r["n_test"] == 32
    assert r["accuracy_micro"] == pytest.approx(trained["final"]["accuracy_micro"])
    assert r["accuracy_macro"] == pytest.approx(trained["final"]["accuracy_macro"])
    assert len(r["per_class_accuracy"]) == 4
    assert r["shot_accuracy"]["n_classes"] == {"many": 0, "medium": 0, "few": 4}  # 8 train images per class
    with pytest.raises(FileNotFoundError, match="result.json"):
        load_run(tmp_path)


def fake_run(root, num_classes, image_size=32):
    """A run folder as `gifkit train` writes it, with an untrained tiny model."""
    root.mkdir(parents=True)
    model = create_model("test_resnet", num_classes)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(root / "model.safetensors"))
    result = {"model": {"arch": "test_resnet", "timm_name": "test_resnet", "num_classes": num_classes,
                        "image_size": image_size, "mean": [0.5] * 3, "std": [0.25] * 3},
              "config": {"data": "cifar100s", "data_root": None, "data_kwargs": {}},
              "dataset": {"train_class_counts_original": [1] * num_classes,
                          "classes": [str(c) for c in range(num_classes)]}}
    (root / "result.json").write_text(json.dumps(result))
    return root


def test_cifar100c_table(tmp_path):
    base = tmp_path / "data" / "CIFAR-100-C"
    base.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for c in ("fog", "snow"):
        np.save(base / f"{c}.npy", rng.integers(0, 256, (5 * 3, 32, 32, 3), dtype=np.uint8))
    np.save(base / "labels.npy", np.tile([0, 5, 99], 5))
    run = fake_run(tmp_path / "run", 100)
    out = tmp_path / "c.json"
    assert main(["evaluate", "--run", str(run), "--cifar100c", "--data-root", str(tmp_path / "data"),
                 "--corruptions", "fog", "snow", "--severities", "1", "3", "--out", str(out), "--no-progress",
                 "--device", "cpu"]) == 0
    r = json.loads(out.read_text())
    assert set(r["accuracy"]) == {"fog", "snow"} and set(r["accuracy"]["fog"]) == {"1", "3"}
    vals = [v for row in r["accuracy"].values() for v in row.values()]
    assert all(abs(v * 3 / 100 - round(v * 3 / 100)) < 1e-9 for v in vals)  # 3 images per set
    assert r["average"] == pytest.approx(np.mean(vals))
    assert r["average_per_severity"]["3"] == pytest.approx((r["accuracy"]["fog"]["3"] + r["accuracy"]["snow"]["3"]) / 2)


class ColourCLIP(torch.nn.Module):
    """A CLIP whose zero-shot predictions on the smoke shapes are known by construction. An image's feature is its
    per-channel maximum minus 1/2: the shape is the brightest thing on a dark background (every channel < 60), so
    the signs are red (+, -, -), green (-, +, -), blue (-, -, +), yellow (+, +, -). A prompt's feature is the sign
    pattern ``colours`` gives the colour it names; with the true patterns each image is nearest its own class."""

    def __init__(self, colours: dict):
        super().__init__()
        self.unit = torch.nn.Parameter(torch.ones(()))  # the dtype clip_zero_shot feeds images in
        self.visual = type("Visual", (), {"preprocess_cfg": {"size": 32, "mean": (0.0,) * 3, "std": (1.0,) * 3}})()
        self.colours = colours

    def encode_image(self, x):
        return x.amax((2, 3)) - 0.5

    def encode_text(self, tokens):
        return tokens.float()

    def bundle(self):
        from types import SimpleNamespace

        from torchvision.transforms.functional import to_tensor

        def tokenizer(prompts):
            return torch.tensor([next(s for c, s in self.colours.items() if c in p) for p in prompts])

        return SimpleNamespace(model=self, preprocess=to_tensor, tokenizer=tokenizer)


def test_clip_zero_shot_predicts_with_the_clip_s_text_and_image_features(monkeypatch):
    """With the true colour prompts every smoke shape is classified right (100 %); with the prompts of red and blue
    swapped, exactly the red and blue shapes are wrong (50 %, per class 0 / 100 / 0 / 100)."""
    from gifkit.models import guides

    true = {"red": (1, -1, -1), "green": (-1, 1, -1), "blue": (-1, -1, 1), "yellow": (1, 1, -1)}
    swapped = {**true, "red": true["blue"], "blue": true["red"]}
    results = {}
    for name, colours in (("true", true), ("swapped", swapped)):
        monkeypatch.setattr(guides, "guide_clip", lambda *a, colours=colours, **k: ColourCLIP(colours).bundle())
        results[name] = ev.clip_zero_shot("smoke", profile="smoke", device="cpu", progress=False,
                                          data_kwargs={"n_per_class": 4})
    r = results["true"]
    assert r["baseline"] == "clip-zero-shot" and r["n_test"] == 16 and r["clip"] == "tiny_clip"
    assert r["accuracy_micro"] == 100.0 and set(r["per_class_accuracy"].values()) == {100.0}
    r = results["swapped"]
    assert r["accuracy_micro"] == 50.0 and r["accuracy_macro"] == 50.0
    assert r["per_class_accuracy"] == {"red circle": 0.0, "green square": 100.0, "blue triangle": 0.0,
                                       "yellow cross": 100.0}


class TinyFeatures(torch.nn.Module):
    """A stand-in feature extractor for FID: per-channel means and standard deviations (6 features)."""

    num_features = 6

    def forward(self, x):
        x = x.float() / 255
        return torch.cat([x.mean((2, 3)), x.std((2, 3))], 1).double()


def test_fid_with_a_custom_extractor(tmp_path):
    pytest.importorskip("torchmetrics")
    ds, classes = load_dataset("smoke", "train", n_per_class=4)
    images = [ds[i][0] for i in range(len(ds))]
    same = ev.compute_fid(images, images, feature=TinyFeatures(), device="cpu", size=32)
    assert abs(same) < 1e-3
    expand(create_method("gridmask", classes), ds, tmp_path / "g", ratio=2, progress=False)
    far = ev.fid_expanded(tmp_path / "g", ds, feature=TinyFeatures(), device="cpu", size=32)
    assert far > same


def test_fid_features_normalise_encode_and_give_the_frechet_distance_by_hand():
    """FIDFeatures on an encoder that averages each channel: the features are the normalised channel means, and
    two sets whose features differ by a constant shift are at Frechet distance |shift|^2 (equal covariances)."""
    pytest.importorskip("torchmetrics")
    from PIL import Image

    f = ev.FIDFeatures(torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()), 8,
                       mean=(0.0, 0.2, 0.5), std=(1.0, 0.5, 0.25))
    assert (f.size, f.num_features) == (8, 3)
    x = torch.tensor([0, 51, 255], dtype=torch.uint8).view(1, 3, 1, 1).expand(2, 3, 8, 8)
    torch.testing.assert_close(f(x), torch.tensor([[0.0, 0.0, 2.0]] * 2, dtype=torch.float64))  # (v/255 - m) / s
    twice = ev.FIDFeatures(torch.nn.Flatten(), 2, encode=lambda net, x: 2 * net(x).mean(1, keepdim=True))
    assert twice.num_features == 1 and float(twice(torch.full((1, 3, 2, 2), 255, dtype=torch.uint8))) == 2.0
    f = ev.FIDFeatures(torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()), 8, (0, 0, 0),
                       (1, 1, 1))
    # real features 0, .2, .4, .6 on every channel; fake: the same + 0.2 on every channel: |(.2, .2, .2)|^2
    gray = [Image.new("RGB", (8, 8), (v, v, v)) for v in (0, 51, 102, 153)]
    shifted = [Image.new("RGB", (8, 8), (v + 51,) * 3) for v in (0, 51, 102, 153)]
    assert ev.compute_fid(gray, shifted, feature=f, device="cpu", size=8) == pytest.approx(0.12, abs=1e-4)
    rgb = [Image.new("RGB", (8, 8), c) for c in ((0, 51, 102), (102, 0, 51), (51, 102, 0))]
    assert ev.compute_fid(rgb, rgb, feature=f, device="cpu", size=8) == pytest.approx(0.0, abs=1e-4)


def test_fid_offline_without_weights_fails_fast_and_clearly(tmp_path, monkeypatch, capsys):
    pytest.importorskip("torch_fidelity")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t = time.perf_counter()
    with pytest.raises(ev.FIDUnavailable, match=r"weights-inception-2015-12-05-6726825d.pth.*offline.*curl"):
        ev.compute_fid([], [], device="cpu")
    assert time.perf_counter() - t < 5
    with pytest.raises(ev.FIDUnavailable, match="do not exist"):
        ev.fid_weights_path(tmp_path / "nope.pth")
    ds, classes = load_dataset("smoke", "train", n_per_class=2)
    expand(create_method("cutout", classes), ds, tmp_path / "g", ratio=1, progress=False)
    assert main(["evaluate", "--fid", str(tmp_path / "g"), "--data", "smoke", "--data-arg", "n_per_class=2",
                 "--device", "cpu", "--no-progress"]) == 2
    assert "InceptionV3 weights" in capsys.readouterr().err


def test_evaluate_needs_a_mode():
    assert main(["evaluate"]) == 2


def test_clip_fid_features_is_zero_on_identical_sets_and_positive_otherwise():
    pytest.importorskip("torchmetrics")
    from gifkit.models import tiny

    f = ev.clip_fid_features(tiny.tiny_clip(embed_dim=8))
    assert (f.size, f.num_features) == (32, 8)
    ds, _ = load_dataset("smoke", "train", n_per_class=4)
    images = [ds[i][0] for i in range(len(ds))]
    assert abs(ev.compute_fid(images, images, feature=f, device="cpu", size=f.size)) < 1e-3
    flipped = [im.transpose(0).rotate(90) for im in images]
    assert ev.compute_fid(images, flipped, feature=f, device="cpu", size=f.size) > 1e-3
