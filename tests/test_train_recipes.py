"""The official training scripts' recipes (`--preset official-original` / `official-expanded`), per dataset and
arm, against the values their published commands and argument defaults run with; the lr schedules and
transform recipes by hand-computed values."""
import math

import pytest
import torch
from PIL import Image

from gifkit.train import data as tdata
from gifkit.train.config import make_config, settings_of
from gifkit.train.loop import lr_at

# dataset: (lr, transforms, normalize, rotation, (nesterov, schedule) of the original arm, of the expanded arm),
# read from the official <dataset>.py / <dataset>_expanded_data_concat*.py and their README commands
NC, STEP = (True, "cosine-epoch"), (False, "step")
PUBLISHED = {
    "cifar100s": (0.1, "official-cifar", "cifar10", 15.0, NC, NC),
    "caltech101": (0.01, "official-caltech", "cifar100", 0.0, STEP, STEP),
    "cars": (0.01, "official-crop256", "cifar100", 15.0, NC, STEP),
    "flowers102": (0.1, "official-crop256", "cifar100", 15.0, NC, STEP),
    "pets": (0.01, "official-crop256", "imagenet", 15.0, NC, STEP),
    "dtd": (0.01, "official-dtd", "dtd", 0.0, NC, STEP),
    "organsmnist": (0.1, "official-cifar", "cifar10", 15.0, NC, NC),
    "pathmnist": (0.01, "official-cifar", "cifar10", 15.0, NC, NC),
    "breastmnist": (0.01, "official-cifar", "cifar10", 15.0, NC, NC),
}


@pytest.mark.parametrize("data", sorted(PUBLISHED))
def test_official_presets_resolve_to_the_published_recipe(data):
    lr, transforms, normalize, rotation, original, expanded = PUBLISHED[data]
    for arm, (nesterov, schedule) in (("original", original), ("expanded", expanded)):
        cfg = make_config(f"official-{arm}", data=data)
        assert (cfg.arch, cfg.epochs, cfg.batch_size, cfg.momentum, cfg.weight_decay) == \
            ("resnet50", 100, 256, 0.9, 1e-4)
        assert (cfg.lr, cfg.transforms, cfg.normalize, cfg.rotation, cfg.hflip) == \
            (lr, transforms, normalize, rotation, True)
        assert (cfg.nesterov, cfg.schedule) == (nesterov, schedule), (data, arm)
        if schedule == "step":
            assert (cfg.milestones, cfg.gamma) == ([21, 31], 0.1)
    assert make_config("official-expanded", data=data, lr=0.5).lr == 0.5  # a flag still wins


def test_official_preset_refuses_a_dataset_without_an_official_script():
    with pytest.raises(ValueError, match="official scripts' recipes of cifar100s"):
        make_config("official-original", data="smoke")


def test_the_paper_preset_keeps_its_resume_key():
    """Fields at gifkit's defaults stay out of the key, so runs recorded before they existed still match."""
    key = settings_of(make_config("paper", data="cifar100s"))
    assert not {"schedule", "milestones", "gamma", "transforms", "normalize"} & set(key)
    official = settings_of(make_config("official-expanded", data="caltech101"))
    assert official["schedule"] == "step" and official["transforms"] == "official-caltech"


def test_lr_schedules_against_hand_computed_values():
    step = make_config("official-original", data="caltech101")  # lr 0.01, x0.1 at the start of epochs 21 and 31
    lrs = [lr_at(step, 0, 1000, e) for e in (0, 20, 21, 30, 31, 99)]
    assert lrs == pytest.approx([0.01, 0.01, 0.001, 0.001, 1e-4, 1e-4])
    cos = make_config("official-original", data="cars")  # CosineAnnealingLR(T_max=100), stepped per epoch
    assert lr_at(cos, 0, 1000, 0) == lr_at(cos, 9, 1000, 0) == pytest.approx(0.01)  # constant within an epoch
    assert lr_at(cos, 500, 1000, 50) == pytest.approx(0.005)
    assert lr_at(cos, 0, 1000, 25) == pytest.approx(0.005 * (1 + math.cos(math.pi / 4)))
    # torch's own scheduler gives the same per-epoch values
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.01)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 100)
    torch_lrs = []
    for _ in range(100):
        torch_lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert [lr_at(cos, 0, 1, e) for e in range(100)] == pytest.approx(torch_lrs)
    paper = make_config("paper", data="cars")  # gifkit's per-step cosine
    assert lr_at(paper, 250, 1000, 0) == pytest.approx(0.005 * (1 + math.cos(math.pi / 4)))


def _compose_names(transform):
    return [type(t).__name__ for t in transform.transforms]


def test_transform_recipes():
    raw = ((0.0,) * 3, (1.0,) * 3)  # no normalisation: pixel values in [0, 1]
    caltech = make_config("official-original", data="caltech101")
    names = _compose_names(tdata.train_transform(caltech, *raw))
    assert names[1:3] == ["Grayscale", "RandomResizedCrop"] and "RandomRotation" not in names
    colour = Image.new("RGB", (300, 200), (200, 30, 90))
    x = tdata.train_transform(caltech, *raw)(colour)
    assert x.shape == (3, 224, 224) and torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])
    grey = round(0.299 * 200 + 0.587 * 30 + 0.114 * 90) / 255  # PIL's L = R 299/1000 + G 587/1000 + B 114/1000
    assert float(x.mean()) == pytest.approx(grey, abs=2 / 255)
    # Cars/Flowers/Pets test: Resize((256, 256)) then CenterCrop(224) drops a 16 px border
    framed = Image.new("RGB", (256, 256), (255, 0, 0))
    framed.paste((0, 0, 255), (16, 16, 240, 240))
    y = tdata.eval_transform(224, *raw, "official-crop256")(framed)
    assert y.shape == (3, 224, 224) and float(y[0].max()) < 0.02 and float(y[2].min()) > 0.98
    cars = make_config("official-expanded", data="cars")
    assert _compose_names(tdata.train_transform(cars, *raw))[1:4] == ["Resize", "RandomRotation", "RandomCrop"]
    # CIFAR / MedMNIST test: Resize(224) of the short side keeps the aspect ratio
    assert tdata.eval_transform(224, *raw, "official-cifar")(Image.new("RGB", (40, 20))).shape == (3, 224, 448)
    assert tdata.eval_transform(224, *raw)(Image.new("RGB", (40, 20))).shape == (3, 224, 224)  # gifkit's square
    dtd = make_config("official-expanded", data="dtd")
    assert "RandomRotation" not in _compose_names(tdata.train_transform(dtd, *raw))
    assert tdata.normalization_of(None, False, "cifar10") == ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
    assert tdata.normalization_of(None, False) == (tdata.IMAGENET_MEAN, tdata.IMAGENET_STD)
    from gifkit.train.config import NORMALIZE_NAMES

    assert set(tdata.NORMALIZATIONS) == set(NORMALIZE_NAMES) - {"model"}  # every flag value has its statistics
