"""What the dataset loaders share: the missing-files error, the data root, and the generic dataset classes.

Every dataset yields ``(PIL RGB image, int label)`` and has ``.classes`` and ``.targets``. Loaders of the
paper's datasets read a local root (``$GIFKIT_DATA`` or ``./data`` by default) laid out as torchvision or
medmnist writes it; nothing is downloaded unless ``download=True``, and missing files raise
:class:`DatasetMissing` naming the files expected and the exact way to get them.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from gifkit.core.rng import derive_seed
from gifkit.errors import UserError
from gifkit.io.images import open_rgb, to_rgb

__all__ = ["DatasetMissing", "default_root", "data_root", "missing", "fetch", "readable", "check_split", "FileListDataset",
           "ArrayDataset", "hash_subset"]


class DatasetMissing(UserError, FileNotFoundError):
    """The files of a dataset are not under its root (and downloading was not allowed or is impossible)."""


def default_root() -> Path:
    """``$GIFKIT_DATA`` if set, else ``./data``."""
    return Path(os.environ.get("GIFKIT_DATA", "data")).expanduser()


def data_root(root) -> Path:
    return Path(root).expanduser() if root is not None else default_root()


def missing(name: str, expected: Path | str, how: str) -> DatasetMissing:
    return DatasetMissing(f"dataset {name!r}: {expected} not found. {how} "
                          f"(pass root=... / --data-root to point at another folder; default $GIFKIT_DATA or ./data)")


def fetch(name: str, expected: Path | str, manual: str, download: Callable[[], Any]) -> None:
    """Run ``download`` (e.g. torchvision's); when it fails (offline, a URL gone, a bad archive) raise
    :class:`DatasetMissing` in the form every missing dataset takes, with the reason and ``manual``: how to get
    the files by hand."""
    try:
        download()
    except (OSError, RuntimeError, ValueError) as err:  # urllib's URLError is an OSError
        reason = " ".join(str(getattr(err, "reason", None) or err).split())[:200]
        raise missing(name, expected, f"The download failed ({type(err).__name__}: {reason}); {manual}") from err


def readable(name: str) -> str:
    return name.replace("_", " ").strip()


def check_split(name: str, split: str, allowed: Sequence[str]) -> None:
    if split not in allowed:
        raise ValueError(f"dataset {name!r} has splits {list(allowed)}, got {split!r}")


# ----------------------------------------------------------------------------- generic datasets


class FileListDataset(Dataset):
    """``(PIL RGB image, label)`` from a list of ``(path, label)``; ``.classes``, ``.targets``, ``.samples``."""

    def __init__(self, samples: Sequence[tuple[str | Path, int]], classes: Sequence[str]):
        self.samples = [(str(p), int(y)) for p, y in samples]
        self.classes = list(classes)
        self.targets = [y for _, y in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        path, label = self.samples[i]
        return open_rgb(path), label


class ArrayDataset(Dataset):
    """``(PIL RGB image, label)`` from a uint8 array ``[N, H, W]`` or ``[N, H, W, C]`` (may be memory-mapped)."""

    def __init__(self, images: np.ndarray, labels: Sequence[int], classes: Sequence[str],
                 indices: Sequence[int] | None = None):
        self.images = images
        self.indices = None if indices is None else [int(i) for i in indices]
        labels = np.asarray(labels).reshape(len(labels), -1)[:, 0].astype(int)
        self.targets = [int(v) for v in (labels if self.indices is None else labels[self.indices])]
        self.classes = list(classes)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} items")
        j = self.indices[i] if self.indices is not None else i
        a = np.asarray(self.images[j])
        if a.ndim == 3 and a.shape[-1] == 1:
            a = a[..., 0]
        return to_rgb(Image.fromarray(a)), self.targets[i]


def hash_subset(keys: Sequence[str], labels: Sequence[int], per_class: int, seed: int, tag: str) -> list[int]:
    """Positions of ``per_class`` items per class, chosen by the smallest ``derive_seed(seed, tag, key)``.

    A seeded sample that depends only on the item keys (not on NumPy's RNG
    streams, the order of listing, or the platform); a class with fewer items
    keeps all of them. Returned in ascending position order.
    """
    by_class: dict[int, list[tuple[int, int]]] = {}
    for pos, (key, y) in enumerate(zip(keys, labels)):
        by_class.setdefault(int(y), []).append((derive_seed(seed, tag, key), pos))
    chosen = [pos for items in by_class.values() for _, pos in sorted(items)[:per_class]]
    return sorted(chosen)
