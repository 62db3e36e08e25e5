"""The data side of training: transforms, the seeded epoch sampler, the splits of a run.

Training images are resized to ``image_size`` (bicubic), randomly rotated and flipped and normalised
(torchvision v2); test images are resized and normalised. The sampler draws one permutation per epoch from a
generator seeded by ``(seed, "shuffle", epoch)``, so a resumed run sees the batches an uninterrupted one sees.
"""
from __future__ import annotations

from gifkit.core.rng import derive_seed
from gifkit.train.config import TrainConfig

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "normalization_of", "train_transform", "eval_transform", "EpochSampler",
           "Transformed", "load_splits", "batches"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalization_of(model, pretrained: bool) -> tuple[tuple, tuple]:
    """The input mean and std of ``model``: its pretrained config's when it starts from pretrained weights,
    else ImageNet's."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    if pretrained and cfg.get("mean"):
        return tuple(cfg["mean"]), tuple(cfg["std"])
    return IMAGENET_MEAN, IMAGENET_STD



def train_transform(cfg: TrainConfig, mean, std):
    """Resize to image_size x image_size (bicubic), random rotation and flips, normalise (torchvision v2)."""
    import torch
    from torchvision.transforms import InterpolationMode, v2

    ops = [v2.ToImage(), v2.Resize((cfg.image_size, cfg.image_size), InterpolationMode.BICUBIC, antialias=True)]
    if cfg.rotation:
        ops.append(v2.RandomRotation(cfg.rotation, InterpolationMode.BILINEAR))
    if cfg.hflip:
        ops.append(v2.RandomHorizontalFlip())
    if cfg.vflip:
        ops.append(v2.RandomVerticalFlip())
    return v2.Compose(ops + [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])


def eval_transform(image_size: int, mean, std):
    """Resize to image_size x image_size (bicubic) and normalise (torchvision v2)."""
    import torch
    from torchvision.transforms import InterpolationMode, v2

    return v2.Compose([v2.ToImage(), v2.Resize((image_size, image_size), InterpolationMode.BICUBIC, antialias=True),
                       v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])


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
