"""Tiny deterministic synthetic datasets for the smoke profile: ``smoke`` and its long-tailed ``smoke-lt``.

Four classes of coloured shapes on a noisy background ("red circle",
"green square", "blue triangle", "yellow cross"), 32 x 32 px. Every image is
drawn from a generator seeded by (seed, split, index), so the dataset is the
same on every machine and needs no download.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw
from torch.utils.data import Dataset

from gifkit.core.rng import np_random
from gifkit.data.longtail import longtail_counts, longtail_subset

__all__ = ["CLASSES", "draw_shape", "SyntheticShapes", "load_smoke", "load_smoke_lt"]

CLASSES = ["red circle", "green square", "blue triangle", "yellow cross"]
_COLOURS = [(220, 40, 40), (40, 180, 60), (50, 80, 220), (230, 210, 40)]


def draw_shape(label: int, rng: np.random.Generator, size: int = 32) -> Image.Image:
    """One image of class ``label``: shape, colour, position and scale jittered by ``rng``."""
    bg = rng.integers(0, 60, size=(size, size, 3), dtype=np.uint8)
    img = Image.fromarray(bg, "RGB")
    d = ImageDraw.Draw(img)
    r = size * rng.uniform(0.22, 0.34)
    cx, cy = size / 2 + rng.uniform(-size / 8, size / 8, size=2)
    colour = tuple(int(np.clip(c + rng.integers(-25, 26), 0, 255)) for c in _COLOURS[label])
    if label == 0:
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif label == 1:
        d.rectangle([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif label == 2:
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    else:
        w = r / 3
        d.rectangle([cx - r, cy - w, cx + r, cy + w], fill=colour)
        d.rectangle([cx - w, cy - r, cx + w, cy + r], fill=colour)
    return img


class SyntheticShapes(Dataset):
    """``n_per_class`` images per class; ``(PIL RGB image, label)`` items, ``.classes``, ``.targets``."""

    def __init__(self, split: str = "train", n_per_class: int | None = None, size: int = 32, seed: int = 0):
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        n = n_per_class if n_per_class is not None else (4 if split == "train" else 16)
        if n < 1:
            raise ValueError(f"n_per_class must be >= 1, got {n}")
        self.split, self.size, self.seed = split, size, seed
        self.classes = list(CLASSES)
        self.targets = [i % len(CLASSES) for i in range(n * len(CLASSES))]

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        label = self.targets[i]
        return draw_shape(label, np_random(self.seed, self.split, i), self.size), label


def load_smoke(split: str = "train", root=None, profile: str = "smoke", **kwargs):
    """The smoke set: :class:`SyntheticShapes` (``n_per_class``, ``size``, ``seed`` as keyword arguments)."""
    ds = SyntheticShapes(split=split, **kwargs)
    return ds, ds.classes


def load_smoke_lt(split: str = "train", root=None, profile: str = "smoke", n_max: int = 120,
                  imbalance_ratio: float = 30, test_per_class: int = 16, **_):
    """Long-tailed smoke data: ``train`` = :func:`longtail_subset` of ``n_max`` synthetic images per class
    (default ratio 30: 120, 38, 12, 4 images, i.e. one many-, one medium- and two few-shot classes by the
    CIFAR100-LT thresholds); ``test`` = the balanced smoke test set. Both carry the train ``class_counts``."""
    if split == "train":
        ds = longtail_subset(SyntheticShapes("train", n_per_class=n_max), imbalance_ratio)
    elif split == "test":
        ds = SyntheticShapes("test", n_per_class=test_per_class)
        ds.class_counts = longtail_counts(n_max, len(ds.classes), imbalance_ratio)
    else:
        raise ValueError(f"smoke-lt: split must be 'train' or 'test', got {split!r}")
    return ds, ds.classes

