"""Long-tailed subsets: the exponential profile of Cao et al. (2019) used by CIFAR100-LT and its stand-ins.

Class ``c`` of ``C`` keeps ``n_c = int(n_max * (1 / ratio) ** (c / (C - 1)))`` images; which images is chosen
exactly as LDAM-DRW's ``IMBALANCECIFAR100`` chooses them, so the subset matches the long-tail literature's.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from torch.utils.data import Dataset

__all__ = ["longtail_counts", "longtail_indices", "LongTailSubset", "longtail_subset"]


def longtail_counts(n_max: int, num_classes: int, imbalance_ratio: float) -> list[int]:
    """Images per class of the exponential profile (Cao et al. 2019):
    ``n_c = int(n_max * (1 / ratio) ** (c / (C - 1)))``; CIFAR100-LT(100): 500 ... 5, 10,847 in all."""
    if imbalance_ratio < 1:
        raise ValueError(f"imbalance_ratio must be >= 1, got {imbalance_ratio}")
    return [int(n_max * (1.0 / imbalance_ratio) ** (c / (num_classes - 1.0))) for c in range(num_classes)]


def longtail_indices(labels: Sequence[int], imbalance_ratio: float = 100, rand_number: int = 0) -> list[int]:
    """Train indices of CIFAR100-LT exactly as LDAM-DRW's ``IMBALANCECIFAR100`` selects them.

    ``n_max`` = images per class of the balanced set; ``np.random.RandomState(rand_number)``
    shuffles each class's indices in class order and keeps the first ``n_c``
    (the legacy RandomState stream is frozen, so this is stable across NumPy versions).
    """
    labels = np.asarray(labels, dtype=np.int64)
    classes = np.unique(labels)
    counts = longtail_counts(len(labels) // len(classes), len(classes), imbalance_ratio)
    rs = np.random.RandomState(rand_number)
    out: list[int] = []
    for c, n in zip(classes, counts):
        idx = np.where(labels == c)[0]
        rs.shuffle(idx)
        out += idx[:n].tolist()
    return out



class LongTailSubset(Dataset):
    """``(image, label)`` items of ``base`` at ``indices``, with ``.targets``, ``.classes`` and ``.class_counts``."""

    def __init__(self, base, indices: Sequence[int], classes: Sequence[str], class_counts: Sequence[int]):
        self.base, self.indices = base, [int(i) for i in indices]
        base_targets = list(getattr(base, "targets"))
        self.targets = [int(base_targets[i]) for i in self.indices]
        self.classes, self.class_counts = list(classes), [int(c) for c in class_counts]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        return self.base[self.indices[i]]


def longtail_subset(dataset, imbalance_ratio: float = 100, rand_number: int = 0) -> LongTailSubset:
    """An exponential long-tailed sample of a class-balanced ``dataset`` (the CIFAR100-LT recipe of
    :func:`gifkit.data.longtail_indices`: class c keeps ``int(n_max * ratio ** (-c / (C - 1)))`` images)."""
    targets = list(dataset.targets)
    classes = list(dataset.classes)
    counts = np.bincount(targets, minlength=len(classes))
    if len(set(counts.tolist())) != 1:
        raise ValueError(f"longtail_subset needs a class-balanced dataset, got class counts {counts.tolist()}")
    idx = longtail_indices(targets, imbalance_ratio, rand_number)
    return LongTailSubset(dataset, idx, classes, longtail_counts(len(targets) // len(classes), len(classes),
                                                                   imbalance_ratio))
