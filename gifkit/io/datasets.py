"""Torch datasets over expansion stores, and what every expansion needs to know of a dataset.

:class:`ExpandedDataset` is the original training set followed by the images of one or more expansion
folders (what :mod:`gifkit.train` trains on); :func:`dataset_labels` and :func:`seed_path` read a
dataset's labels and a seed's provenance without decoding images when the dataset allows.
"""
from __future__ import annotations

import math
import os
from pathlib import Path, PurePosixPath
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import Dataset, Subset

from gifkit.io.store import CLASSES, METADATA, describe_difference, read_classes, read_metadata

__all__ = ["ExpandedDataset", "dataset_labels", "seed_path"]


def dataset_labels(dataset: Dataset) -> list[int]:
    """Integer labels of a dataset, from ``targets``/``labels``/``_labels`` (medmnist's [N, 1] too) or by iterating."""
    for attr in ("targets", "labels", "_labels"):
        values = getattr(dataset, attr, None)
        if values is not None:
            arr = np.asarray(values)
            if arr.ndim > 1:
                arr = arr.reshape(arr.shape[0], -1)[:, 0]
            return [int(v) for v in arr]
    if isinstance(dataset, Subset):
        base = dataset_labels(dataset.dataset)
        return [base[int(i)] for i in dataset.indices]
    return [int(dataset[i][1]) for i in range(len(dataset))]



def seed_path(dataset: Dataset, index: int) -> str:
    """What metadata's ``seed_path`` records for seed ``index``: its file for a folder dataset, else the index."""
    samples = getattr(dataset, "samples", None)
    return str(samples[index][0]) if samples is not None else str(index)



class ExpandedDataset(Dataset):
    """The original dataset followed by the images of one or more expansion folders.

    ``original[i]`` must return ``(image, int label)``; generated images load as
    RGB PIL images, so ``transform`` must accept what both give. Items are
    ``(transform(image), target)``. Target is the int label, unless
    ``soft_labels`` is true and some metadata row is a mix (columns ``label_b``
    and ``lam``, e.g. mixup/cutmix): then every target is a float tensor of
    size ``num_classes`` (``lam * onehot(label) + (1 - lam) * onehot(label_b)``,
    one-hot for unmixed items). ``targets`` lists hard labels (``label`` for
    mixed rows).
    """

    def __init__(self, original: Dataset, expanded_roots: Sequence[str | os.PathLike] | str | os.PathLike = (),
                 transform: Any = None, soft_labels: bool = True):
        if isinstance(expanded_roots, (str, os.PathLike)):
            expanded_roots = [expanded_roots]
        self.original = original
        self.transform = transform
        self.roots = [Path(r) for r in expanded_roots]
        self.class_names: list[str] | None = None
        paths: list[Path] = []
        labels: list[int] = []
        labels_b: list[int] = []
        lams: list[float] = []
        for root in self.roots:
            meta = read_metadata(root)
            names = read_classes(root)
            if self.class_names is None:
                self.class_names = names
            elif names != self.class_names:
                raise ValueError(f"{root / CLASSES} differs from {self.roots[0] / CLASSES} "
                                 f"({describe_difference(self.class_names, names)}): "
                                 f"these expansions are of different datasets")
            label = meta["label"].to_numpy()
            if len(meta) and (pd.isna(label).any() or label.min() < 0 or label.max() >= len(names)):
                raise ValueError(f"{root / METADATA}: labels must be integers in [0, {len(names)})")
            if {"label_b", "lam"} <= set(meta.columns):
                lam = pd.to_numeric(meta["lam"]).where(meta["label_b"].notna())
                label_b = meta["label_b"].where(lam.notna(), -1).astype(int)
            else:
                lam, label_b = pd.Series(np.nan, index=meta.index), pd.Series(-1, index=meta.index)
            paths += [root.joinpath(*PurePosixPath(f).parts) for f in meta["file_name"]]
            labels += [int(v) for v in label]
            labels_b += label_b.tolist()
            lams += lam.astype(float).tolist()
        if self.class_names is None:
            classes = getattr(original, "classes", None)
            self.class_names = list(classes) if classes is not None else None
        elif getattr(original, "classes", None) is not None and len(original.classes) != len(self.class_names):
            raise ValueError(f"the original dataset has {len(original.classes)} classes but the expansions "
                             f"have {len(self.class_names)}")
        self.num_classes = len(self.class_names) if self.class_names is not None else None
        self._n_original = len(original)
        self._paths, self._labels, self._labels_b, self._lams = paths, labels, labels_b, lams
        self.soft = bool(soft_labels) and any(not math.isnan(v) for v in lams)
        self._targets: list[int] | None = None

    @property
    def targets(self) -> list[int]:
        """Hard int labels of all items (original first)."""
        if self._targets is None:
            self._targets = dataset_labels(self.original) + list(self._labels)
        return self._targets

    def __len__(self) -> int:
        return self._n_original + len(self._paths)

    def __getitem__(self, index: int) -> tuple[Any, int | torch.Tensor]:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        lam, label_b = math.nan, -1
        if index < self._n_original:
            image, label = self.original[index]
            label = int(label)
        else:
            j = index - self._n_original
            with Image.open(self._paths[j]) as im:
                image = im.convert("RGB")
            label, label_b, lam = self._labels[j], self._labels_b[j], self._lams[j]
        if self.transform is not None:
            image = self.transform(image)
        if not self.soft:
            return image, label
        target = torch.zeros(self.num_classes)
        if math.isnan(lam):
            target[label] = 1.0
        else:
            target[label] += lam
            target[label_b] += 1.0 - lam
        return image, target
