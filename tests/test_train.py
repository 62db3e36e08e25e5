"""`gifkit train`: presets, losses, one epoch above chance, resume, expanded data, seeds, KD."""
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from gifkit.cli import main
from gifkit.config import ARCHS
from gifkit.data import load_dataset
from gifkit.methods import create_method, expand
from gifkit.models.classifiers import create_model
from gifkit.train import data as tdata
from gifkit.train import loop as tr_loop
from gifkit.train.config import make_config, parse_kv
from gifkit.train.losses import balanced_softmax_loss, kd_loss
from gifkit.train.loop import Supervised, train


pytestmark = pytest.mark.usefixtures("one_thread")


def smoke_cfg(tmp_path, name="run", n=4, **kw):
    kw = {"epochs": 1, "progress": False, "out": str(tmp_path / name), **kw}
    return make_config("smoke", data="smoke", data_kwargs={"n_per_class": n}, **kw)


def test_presets_and_overrides():
    paper = make_config("paper", data="caltech101")
    assert (paper.arch, paper.epochs, paper.lr, paper.momentum, paper.image_size, paper.batch_size) == \
        ("resnet50", 100, 0.01, 0.9, 224, 256)  # batch 256: every official command's
    assert paper.rotation == 15 and paper.hflip and paper.loss == "ce" and not paper.pretrained
    assert not paper.nesterov and make_config("official-original", data="cifar100s").nesterov  # the two recipes
    assert make_config("official-original", data="cifar100s").lr == 0.1
    assert make_config("paper", data="cifar100s").lr == 0.1 == make_config("paper", data="organsmnist").lr
    assert make_config("paper", data="cifar100s", lr=0.05, epochs=3).lr == 0.05
    smoke = make_config("smoke", data="smoke")
    assert smoke.arch == "test_resnet" and smoke.image_size == 32 and smoke.profile == "smoke"
    with pytest.raises(ValueError, match="unknown training option"):
        make_config("paper", data="smoke", learning_rate=1)
    with pytest.raises(ValueError, match="loss"):
        make_config("paper", data="smoke", loss="focal")
    import timm

    from gifkit.models.mininet import register_arch

    register_arch()
    assert all(timm.is_model(n) for n in ARCHS.values())
    assert ARCHS["resnext50"] == "resnext50_32x4d" and ARCHS["wideresnet50"] == "wide_resnet50_2"
    assert ARCHS["mobilenetv2"] == "mobilenetv2_100"
    with pytest.raises(ValueError, match="unknown architecture"):
        create_model("resnet9000", 3)
    assert parse_kv(["a=1", "b=0.5", "c=true", "d=x"]) == {"a": 1, "b": 0.5, "c": True, "d": "x"}


def test_transforms_resize_bicubic_and_normalise():
    from PIL import Image
    cfg = make_config("paper", data="smoke")
    x = tdata.train_transform(cfg, tdata.IMAGENET_MEAN, tdata.IMAGENET_STD)(Image.new("RGB", (37, 20), (128, 128, 128)))
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32
    y = tdata.eval_transform(224, tdata.IMAGENET_MEAN, tdata.IMAGENET_STD)(Image.new("RGB", (37, 20), (255, 0, 0)))
    assert y.shape == (3, 224, 224) and abs(float(y[0].mean()) - (1 - 0.485) / 0.229) < 1e-3


def test_balanced_softmax_against_hand_computed_values():
    logits = torch.tensor([[1.0, 2.0, 0.0]])
    counts = torch.tensor([10.0, 1.0, 1.0])
    e = math.e
    # adjusted logits: [1 + ln 10, 2, 0] -> p = [10e, e^2, 1] / (10e + e^2 + 1)
    z = 10 * e + e ** 2 + 1
    expect_1 = -math.log(e ** 2 / z)
    assert abs(float(balanced_softmax_loss(logits, torch.tensor([1]), counts)) - expect_1) < 1e-5
    expect_0 = -math.log(10 * e / z)
    soft = torch.tensor([[0.25, 0.75, 0.0]])
    assert abs(float(balanced_softmax_loss(logits, soft, counts)) - (0.25 * expect_0 + 0.75 * expect_1)) < 1e-5
    # equal counts: plain cross-entropy
    plain = torch.nn.functional.cross_entropy(logits, torch.tensor([2]))
    assert torch.allclose(balanced_softmax_loss(logits, torch.tensor([2]), torch.full((3,), 7.0)), plain)


def test_kd_loss_by_hand():
    """T^2 KL(softmax(log p / T) || softmax(s / T)), averaged over the batch: at T = 2 the teacher (0.8, 0.2)
    softens to (2/3, 1/3) (square roots, renormalised) and the student logits (0, 2 ln 2) to (1/3, 2/3)."""
    p = torch.tensor([[0.8, 0.2], [0.5, 0.5]])
    s = torch.tensor([[0.0, 0.0], [0.0, 2 * math.log(2)]])
    row0 = 2 / 3 * math.log((2 / 3) / 0.5) + 1 / 3 * math.log((1 / 3) / 0.5)  # student (1/2, 1/2)
    row1 = 0.5 * math.log(0.5 / (1 / 3)) + 0.5 * math.log(0.5 / (2 / 3))  # teacher (1/2, 1/2)
    assert float(kd_loss(s, p, 2.0)) == pytest.approx(4 * (row0 + row1) / 2, rel=1e-5)
    assert float(kd_loss(s[:1], p[:1], 1.0)) == pytest.approx(0.8 * math.log(1.6) + 0.2 * math.log(0.4), rel=1e-5)
    assert float(kd_loss(torch.log(p), p, 4.0)) == pytest.approx(0.0, abs=1e-6)  # the student is the teacher


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("train")
    cfg = smoke_cfg(out, n=32)  # 128 images, 8 steps of 16
    return cfg, train(cfg)


def test_one_epoch_on_smoke_data_beats_chance(smoke_run):
    cfg, r = smoke_run
    final = r["final"]
    assert final["accuracy_micro"] > 40 and final["accuracy_macro"] > 40  # chance: 25 %
    assert r["units"] == "percent" and r["primary_metric"] == "accuracy_micro"
    assert set(final["per_class_accuracy"]) == {"red circle", "green square", "blue triangle", "yellow cross"}
    assert r["best_over_epochs"]["accuracy_micro"] == {"value": final["accuracy_micro"], "epoch": 1}
    assert "optimistic" in r["best_over_epochs"]["note"]
    assert r["config"]["arch"] == "test_resnet" and r["config"]["lr"] == 0.05
    assert r["throughput"]["train_images"] == 128 and r["throughput"]["train_images_per_s"] > 0
    assert r["total_steps"] == 8 and r["history"][0]["steps"] == 8
    assert r["dataset"]["n_train_original"] == 128 and r["dataset"]["train_class_counts_original"] == [32] * 4
    from pathlib import Path
    out = Path(cfg.out)
    assert json.loads((out / "result.json").read_text())["final"] == json.loads(json.dumps(final))
    assert (out / "model.safetensors").is_file() and (out / "checkpoint" / "state.json").is_file()
    assert train(cfg)["final"] == r["final"]  # finished runs are not trained again


def test_resume_after_interruption_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    whole = train(smoke_cfg(tmp_path, "whole", epochs=2, batch_size=8))
    calls = {"n": 0}
    real = tr_loop._evaluate

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # during epoch 2, after epoch 1's checkpoint
        return real(*a, **k)

    cfg = smoke_cfg(tmp_path, "cut", epochs=2, batch_size=8)
    monkeypatch.setattr(tr_loop, "_evaluate", flaky)
    with pytest.raises(KeyboardInterrupt):
        train(cfg)
    monkeypatch.setattr(tr_loop, "_evaluate", real)
    resumed = train(cfg)
    a = load_file(str(tmp_path / "whole" / "model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["final"] == whole["final"] and [h["steps"] for h in resumed["history"]] == [2, 4]
    with pytest.raises(ValueError, match="other settings"):
        train(smoke_cfg(tmp_path, "cut", epochs=2, batch_size=8, lr=0.2))


def test_expanded_soft_labels_balanced_softmax_equal_steps(tmp_path):
    ds, classes = load_dataset("smoke", "train", n_per_class=4)
    expand(create_method("cutmix", classes), ds, tmp_path / "cutmix", ratio=2, progress=False)
    r = train(smoke_cfg(tmp_path, expanded=[str(tmp_path / "cutmix")], loss="balanced_softmax", steps=3, epochs=2,
                        batch_size=8))
    assert r["dataset"]["n_train_total"] == 48 and r["dataset"]["soft_labels"]
    assert r["total_steps"] == 3 and [h["steps"] for h in r["history"]] == [2, 3]
    assert all(np.isfinite(h["train_loss"]) for h in r["history"])
    # steps_ratio: the steps a (1 + 2)x set of 16 images takes per epoch at batch 8
    r2 = train(smoke_cfg(tmp_path, "ratio", steps_ratio=2, batch_size=8))
    assert r2["total_steps"] == 48 // 8 and r2["dataset"]["n_train_total"] == 16


def test_kd_objective_mixes_cross_entropy_and_distillation_on_the_same_batch():
    """The KD loss of a batch is (1 - alpha) CE + alpha KD(teacher), hence differs from plain cross-entropy."""
    import torch.nn.functional as F
    from types import SimpleNamespace

    from gifkit.models.guides import zero_shot_classifier

    ds, classes = load_dataset("smoke", "train", n_per_class=2)
    mean, std = tdata.IMAGENET_MEAN, tdata.IMAGENET_STD
    cfg_ce = make_config("smoke", data="smoke")
    cfg_kd = make_config("smoke", data="smoke", kd="clip", kd_alpha=0.5, kd_temperature=4.0)
    x = torch.stack([tdata.eval_transform(32, mean, std)(ds[i][0]) for i in range(len(ds))])
    y = torch.tensor(ds.targets)
    model = create_model("test_resnet", len(classes)).eval()
    acc = SimpleNamespace(device=torch.device("cpu"))
    losses = {}
    for name, cfg in (("ce", cfg_ce), ("kd", cfg_kd)):
        obj = Supervised()
        obj.setup(cfg, acc, classes, ds, mean, std)
        with torch.no_grad():
            losses[name], n = obj.loss(model, [iter([(x, y)])], 0)
        assert n == len(ds)
    with torch.no_grad():
        logits = model(x)
        ce = F.cross_entropy(logits, y)
        teacher = zero_shot_classifier("smoke", classes)
        p_t = teacher.probs((x * torch.tensor(std).view(1, 3, 1, 1) + torch.tensor(mean).view(1, 3, 1, 1)).clamp(0, 1))
        kd = kd_loss(logits, p_t, 4.0)
    torch.testing.assert_close(losses["ce"], ce)
    torch.testing.assert_close(losses["kd"], 0.5 * ce + 0.5 * kd)
    assert float(kd) > 1e-4 and abs(float(losses["kd"] - losses["ce"])) > 1e-4


class FixedTeacher:
    """A teacher giving every image the probabilities ``p``; it keeps the images it was shown."""

    def __init__(self, p):
        self.p, self.seen = torch.tensor(p), []

    def probs(self, images01):
        self.seen.append(images01)
        return self.p.to(images01.device).expand(len(images01), -1)


class FixedStudent(torch.nn.Module):
    """Logits log q for every image."""

    def __init__(self, q):
        super().__init__()
        self.logits = torch.nn.Parameter(torch.tensor(q).log())

    def forward(self, x):
        return self.logits.expand(len(x), -1)


def test_the_teacher_changes_the_kd_loss_by_hand_and_the_run(tmp_path, monkeypatch):
    """(1 - alpha) CE + alpha T^2 KL(teacher_T || student_T) on a batch, by hand for two teachers (alpha 0.25,
    T 2): a uniform teacher and a confident one give different losses; the teacher sees the images in [0, 1];
    whole runs with the two teachers train differently."""
    from gifkit.models import guides

    ds, classes = load_dataset("smoke", "train", n_per_class=2)  # labels 0, 1, 2, 3, 0, 1, 2, 3
    mean, std = tdata.IMAGENET_MEAN, tdata.IMAGENET_STD
    images01 = torch.stack([tdata.eval_transform(32, (0.0,) * 3, (1.0,) * 3)(ds[i][0]) for i in range(len(ds))])
    x = torch.stack([tdata.eval_transform(32, mean, std)(ds[i][0]) for i in range(len(ds))])
    y = torch.tensor(ds.targets)
    q = [0.4, 0.2, 0.2, 0.2]
    ce = (2 * -math.log(0.4) + 6 * -math.log(0.2)) / 8

    def soften(d, t=2.0):
        w = [v ** (1 / t) for v in d]
        return [v / sum(w) for v in w]

    losses = {}
    for name, p in (("uniform", [0.25] * 4), ("confident", [0.1, 0.1, 0.1, 0.7])):
        teacher = FixedTeacher(p)
        monkeypatch.setattr(guides, "zero_shot_classifier", lambda *a, t=teacher, **k: t)
        obj = Supervised()
        obj.setup(make_config("smoke", data="smoke", kd="clip", kd_alpha=0.25, kd_temperature=2.0),
                  SimpleNamespace(device=torch.device("cpu")), classes, ds, mean, std)
        with torch.no_grad():
            losses[name] = float(obj.loss(FixedStudent(q), [iter([(x, y)])], 0)[0])
        pt, qt = soften(p), soften(q)
        kd = 4 * sum(a * math.log(a / b) for a, b in zip(pt, qt))
        assert losses[name] == pytest.approx(0.75 * ce + 0.25 * kd, rel=1e-5), name
        torch.testing.assert_close(teacher.seen[0], images01, atol=1e-5, rtol=0)
    assert losses["confident"] - losses["uniform"] > 0.1  # the confident teacher disagrees with the student

    runs = {}
    for name, p in (("uniform", [0.25] * 4), ("confident", [0.1, 0.1, 0.1, 0.7])):
        monkeypatch.setattr(guides, "zero_shot_classifier", lambda *a, p=p, **k: FixedTeacher(p))
        runs[name] = train(smoke_cfg(tmp_path, name, kd="clip", kd_alpha=0.5, batch_size=8))
    assert runs["uniform"]["history"][0]["train_loss"] != runs["confident"]["history"][0]["train_loss"]


def test_cli_seeds_aggregate(tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["train", "--data", "smoke", "--profile", "smoke", "--data-arg", "n_per_class=4", "--epochs", "1",
                 "--batch-size", "8", "--seeds", "0", "1", "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "seed 0:" in text and "seed 1:" in text and "+-" in text
    agg = json.loads((out / "aggregate.json").read_text())
    vals = [json.loads((out / f"seed_{s}" / "result.json").read_text())["final"]["accuracy_micro"] for s in (0, 1)]
    m = agg["metrics"]["final.accuracy_micro"]
    assert agg["seeds"] == [0, 1] and m["values"] == vals
    assert m["mean"] == pytest.approx(np.mean(vals)) and m["std"] == pytest.approx(np.std(vals, ddof=1))
    assert "best_over_epochs.accuracy_macro" in agg["metrics"]


def test_a_folder_without_a_test_split_is_refused(tmp_path):
    from PIL import Image
    for c in ("a", "b"):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (8, 8), (i * 50, 0, 0)).save(tmp_path / "imgs" / c / f"{i}.png")
    cfg = make_config("smoke", data=str(tmp_path / "imgs"), epochs=1, progress=False)
    with pytest.raises(ValueError, match="separate test split"):
        train(cfg)


def test_byte_identical_expansions_give_identical_runs(tmp_path):
    """Training is deterministic given (data, seed): an expansion copied with other metadata (method name, extra
    columns) trains to the same weights and accuracy, in one process and across runs."""
    import pandas as pd
    import shutil

    ds, classes = load_dataset("smoke", "train", n_per_class=4)
    expand(create_method("randaugment", classes), ds, tmp_path / "a", ratio=2, progress=False)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    meta = pd.read_csv(tmp_path / "b" / "metadata.csv")
    meta.assign(method="renamed", extra=1).to_csv(tmp_path / "b" / "metadata.csv", index=False)
    runs = [train(smoke_cfg(tmp_path, f"run_{i}", expanded=[str(tmp_path / name)], batch_size=8))
            for i, name in enumerate(("a", "b", "a"))]
    assert runs[0]["final"] == runs[1]["final"] == runs[2]["final"]
    w = [load_file(str(tmp_path / f"run_{i}" / "model.safetensors")) for i in (0, 1)]
    assert all(torch.equal(w[0][k], w[1][k]) for k in w[0])
