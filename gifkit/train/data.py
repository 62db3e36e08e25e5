"""The data side of training: transforms, the seeded epoch sampler, the splits of a run.

Under gifkit's recipe (``transforms="gifkit"``) training images are resized to ``image_size`` x ``image_size``
(bicubic), randomly rotated and flipped and normalised (torchvision v2); test images are resized and normalised.
The official scripts' recipes are :data:`TRANSFORM_RECIPES`, their normalisations :data:`NORMALIZATIONS`. The
sampler draws one permutation per epoch from a generator seeded by ``(seed, "shuffle", epoch)``, so a resumed run sees the batches an uninterrupted one sees.
"""
from __future__ import annotations

from gifkit.core.rng import derive_seed
from gifkit.train.config import TRANSFORM_NAMES, TrainConfig

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "NORMALIZATIONS", "TRANSFORM_RECIPES", "normalization_of", "train_transform",
           "eval_transform", "EpochSampler", "Transformed", "load_splits", "batches"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# the input normalisations of the official training scripts (TrainConfig.normalize; "model": normalization_of)
NORMALIZATIONS = {
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),  # Pets
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),  # CIFAR100-S and the MedMNIST sets
    "cifar100": ((0.507, 0.487, 0.441), (0.267, 0.256, 0.276)),  # Caltech101, Cars, Flowers
    "dtd": ((0.5329876098715876, 0.474260843249454, 0.42627281899380676),
            (0.26549755708788914, 0.25473554309855373, 0.2631728035662832)),
}
# The transform recipes (TrainConfig.transforms), as (training, test) steps before rotation/flip placement; S is
# image_size and L = round(S * 256 / 224) (256 at 224 px). Rotation (cfg.rotation) and flips (cfg.hflip, vflip)
# come where each official script applies them. A crop that equals the image (the official RandomCrop(224) after
# a resize to 224) is left out: it does nothing.
# gifkit:           train Resize((S,S)) bicubic, rotation, flip;       test Resize((S,S)) bicubic
# official-cifar:   train Resize((S,S)) bicubic, rotation, flip;       test Resize(S) bicubic (short side)
#                   (cifar.py, the three MedMNIST scripts; their Grayscale(3) on grey images changes nothing)
# official-caltech: train Grayscale(3), RandomResizedCrop(S, scale 0.8-1) bilinear, flip (no rotation);
#                   test Grayscale(3), Resize(L) (short side) bilinear, CenterCrop(S)
# official-crop256: train Resize((L,L)) bilinear, rotation, RandomCrop(S), flip; test Resize((L,L)), CenterCrop(S)
#                   (Cars, Flowers, Pets)
# official-dtd:     train Resize((S,S)) bicubic, flip (no rotation); test Resize((L,L)) bicubic, CenterCrop(S)
TRANSFORM_RECIPES = TRANSFORM_NAMES  # the recipes above, by name (TrainConfig.transforms)


def normalization_of(model, pretrained: bool, normalize: str = "model") -> tuple[tuple, tuple]:
    """The input mean and std: an official script's (``normalize``, a key of :data:`NORMALIZATIONS`), else
    ``model``'s pretrained config's when it starts from pretrained weights, else ImageNet's."""
    if normalize != "model":
        return NORMALIZATIONS[normalize]
    cfg = getattr(model, "pretrained_cfg", None) or {}
    if pretrained and cfg.get("mean"):
        return tuple(cfg["mean"]), tuple(cfg["std"])
    return IMAGENET_MEAN, IMAGENET_STD


def _large(size: int) -> int:
    return round(size * 256 / 224)


def train_transform(cfg: TrainConfig, mean, std):
    """The training transform of ``cfg.transforms`` (:data:`TRANSFORM_RECIPES`), normalised (torchvision v2)."""
    import torch
    from torchvision.transforms import InterpolationMode, v2

    s, recipe = cfg.image_size, cfg.transforms
    bicubic, bilinear = InterpolationMode.BICUBIC, InterpolationMode.BILINEAR
    rotate = [v2.RandomRotation(cfg.rotation, bilinear)] if cfg.rotation else []
    if recipe == "official-caltech":
        ops = [v2.Grayscale(3), v2.RandomResizedCrop(s, scale=(0.8, 1.0), interpolation=bilinear, antialias=True)]
        ops += rotate
    elif recipe == "official-crop256":
        ops = [v2.Resize((_large(s), _large(s)), bilinear, antialias=True), *rotate, v2.RandomCrop(s)]
    else:  # gifkit, official-cifar, official-dtd: a square resize
        ops = [v2.Resize((s, s), bicubic, antialias=True), *rotate]
    if cfg.hflip:
        ops.append(v2.RandomHorizontalFlip())
    if cfg.vflip:
        ops.append(v2.RandomVerticalFlip())
    return v2.Compose([v2.ToImage(), *ops, v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])


def eval_transform(image_size: int, mean, std, recipe: str = "gifkit"):
    """The test transform of ``recipe`` (:data:`TRANSFORM_RECIPES`; gifkit's: resize to image_size x image_size,
    bicubic), normalised (torchvision v2)."""
    import torch
    from torchvision.transforms import InterpolationMode, v2

    s, big = image_size, _large(image_size)
    bicubic, bilinear = InterpolationMode.BICUBIC, InterpolationMode.BILINEAR
    ops = {"gifkit": [v2.Resize((s, s), bicubic, antialias=True)],
           "official-cifar": [v2.Resize(s, bicubic, antialias=True)],
           "official-caltech": [v2.Grayscale(3), v2.Resize(big, bilinear, antialias=True), v2.CenterCrop(s)],
           "official-crop256": [v2.Resize((big, big), bilinear, antialias=True), v2.CenterCrop(s)],
           "official-dtd": [v2.Resize((big, big), bicubic, antialias=True), v2.CenterCrop(s)]}[recipe]
    return v2.Compose([v2.ToImage(), *ops, v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])


class EpochSampler:
    """A permutation per epoch from a generator seeded by ``(seed, "shuffle", epoch)`` (exact resume)."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        import torch

        g = torch.Generator().manual_seed(derive_seed(self.seed, "shuffle", self.epoch))
        return iter(torch.randperm(self.n, generator=g).tolist())



class Transformed:
    """``(transform(image), int label)`` items of a ``(image, label)`` dataset."""

    def __init__(self, base, transform):
        self.base, self.transform = base, transform

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        image, label = self.base[i]
        return self.transform(image), int(label)


def load_splits(cfg: TrainConfig) -> tuple:
    """``(original training set, test set, class names)`` of ``cfg.data``, checked to share their classes and to
    be different splits; the test set is ``None`` when ``cfg.test_split`` is (no test pass)."""
    from gifkit.data import load_dataset

    data_args = dict(root=cfg.data_root, profile=cfg.profile, **({"download": True} if cfg.download else {}),
                     **cfg.data_kwargs)
    original, classes = load_dataset(cfg.data, cfg.train_split, **data_args)
    if cfg.test_split is None:
        return original, None, list(classes)
    test_set, test_classes = load_dataset(cfg.data, cfg.test_split, **data_args)
    if list(test_classes) != list(classes):
        raise ValueError(f"{cfg.data}: the {cfg.train_split} and {cfg.test_split} splits have different classes")
    if getattr(original, "samples", None) is not None and getattr(test_set, "samples", None) == original.samples:
        raise ValueError(f"{cfg.data}: the {cfg.test_split!r} split is the {cfg.train_split!r} split (a folder "
                         f"without <root>/{cfg.test_split}/?); give a separate test split, or none (--test-split none: "
                         f"train without a test pass)")
    return original, test_set, list(classes)


def batches(loader, epoch: int, n: int | None = None):
    """The batches of ``epoch``: as many passes over the loader as needed, each reshuffled (sampler epoch
    ``1000 * epoch + pass``); ``n`` batches, or without end when ``n`` is None."""
    done, passes = 0, 0
    while n is None or done < n:
        loader.set_epoch(1000 * epoch + passes)
        passes += 1
        before = done
        for batch in loader:
            yield batch
            done += 1
            if done == n:
                return
        if done == before:
            raise ValueError("the training data yields no batch")
