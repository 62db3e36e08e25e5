"""A tiny deterministic synthetic dataset for the smoke profile.

Four classes of coloured shapes on a noisy background ("red circle",
"green square", "blue triangle", "yellow cross"), 32 x 32 px. Every image is
drawn from a generator seeded by (seed, split, index), so the dataset is the
same on every machine and needs no download.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw
from torch.utils.data import Dataset

from gifkit.rng import np_random

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
