"""Torch datasets over expansion stores, and what every expansion needs to know of a dataset.

:class:`ExpandedDataset` is the original training set followed by the images of one or more expansion
folders (what :mod:`gifkit.train` trains on); :func:`dataset_labels` and :func:`seed_path` read a
dataset's labels and a seed's provenance without decoding images when the dataset allows;
:func:`seed_fingerprint` identifies a dataset's seed images (an expansion's ``run.json`` records it) and
:func:`data_folders` says where its files are (an expansion never writes there).
"""
from __future__ import annotations

import hashlib
import math
import os
import stat
import warnings
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import Dataset, Subset

from gifkit.errors import Damaged
from gifkit.io.images import BadImage, open_rgb
from gifkit.io.store import CLASSES, METADATA, describe_difference, inside, read_classes, read_metadata, store_parts

__all__ = ["ExpandedDataset", "dataset_labels", "seed_path", "seed_fingerprint", "data_folders"]


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


_EDGE = 16 << 10  # bytes read at each end of a seed file for its fingerprint


def _file_entries(samples, labels, exclude) -> Iterable[bytes]:
    paths = [str(p) for p, _ in samples]
    base = os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in paths]) if paths else ""
    for i, (p, y) in enumerate(zip(paths, labels)):
        if i in exclude:
            yield f"{i}\tskipped\n".encode()
            continue
        head = f"{os.path.relpath(os.path.abspath(p), base)}\t{y}\t".encode("utf-8", "surrogateescape")
        try:
            if not stat.S_ISREG(os.stat(p).st_mode):  # a FIFO would block the read: never opened
                yield head + b"not a regular file\n"
                continue
            with open(p, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                body = fh.read(2 * _EDGE) if size <= 2 * _EDGE else fh.read(_EDGE) + (fh.seek(-_EDGE, 2) and
                                                                                       fh.read(_EDGE))
            yield head + f"{size}\t".encode() + hashlib.blake2b(body, digest_size=16).digest() + b"\n"
        except OSError as e:
            yield head + f"unreadable {e.errno}\n".encode()


def _array_of(dataset: Dataset) -> np.ndarray | None:
    images = getattr(dataset, "images", None)
    if not isinstance(images, np.ndarray):
        return None
    if len(images) == len(dataset):
        return images
    indices = getattr(dataset, "indices", None)
    if indices is not None and len(indices) == len(dataset):
        return images[np.asarray(indices, dtype=np.int64)]
    return None


def seed_fingerprint(dataset: Dataset, exclude: Iterable[int] = ()) -> dict:
    """What identifies ``dataset``'s seed images: ``{"n": N, "kind": ..., "digest": 16 hex digits}``, a
    BLAKE2b hash of

    * ``files`` (a dataset with ``.samples``: image folders, manifests, the paper's folder datasets): each
      file's path relative to their common folder, label, size, and its first and last 16 KiB (all of a
      small file; so a copy of the data, with other modification times, is the same data);
    * ``array`` (``.images``, e.g. CIFAR, MedMNIST, Fashion-MNIST): every pixel and the labels;
    * ``items`` (any other dataset): the labels and the pixels of every item (of 256 spread evenly when there
      are more than 4096).

    Seeds in ``exclude`` (those skipped as unreadable, which may be repaired before a re-run) count only by
    their position. Another dataset with the same class names thus gets another fingerprint.
    """
    labels = dataset_labels(dataset)
    exclude = {int(i) for i in exclude}
    h = hashlib.blake2b(digest_size=8)
    samples = getattr(dataset, "samples", None)
    array = None if samples is not None else _array_of(dataset)
    if samples is not None:
        kind = "files"
        for line in _file_entries(samples, labels, exclude):
            h.update(line)
    elif array is not None:
        kind = "array"
        h.update(str(array.shape).encode())
        h.update(np.ascontiguousarray(array).tobytes())
        h.update(np.asarray(labels, dtype=np.int64).tobytes())
    else:
        kind = "items"
        n = len(labels)
        picks = range(n) if n <= 4096 else sorted({int(round(k * (n - 1) / 255)) for k in range(256)})
        h.update(np.asarray(labels, dtype=np.int64).tobytes())
        for i in picks:
            if i in exclude:
                continue
            try:
                image = dataset[i][0]
                h.update(str(i).encode() + np.asarray(image).tobytes() if isinstance(image, Image.Image)
                         else f"{i}:{type(image).__name__}".encode())
            except (BadImage, OSError, ValueError):
                h.update(f"{i}:unreadable".encode())
    return {"n": len(labels), "kind": kind, "digest": h.hexdigest()}


def data_folders(dataset: Dataset) -> list[Path]:
    """The folders a dataset's files live in (its ``root``, the folders of its ``samples``, its manifest's
    folder), resolved; empty for in-memory datasets. An expansion refuses to write into, above or below them."""
    found: set[str] = set()
    for attr in ("root", "csv"):
        value = getattr(dataset, attr, None)
        if isinstance(value, (str, os.PathLike)):
            p = Path(value)
            found.add(str(p if attr == "root" else p.parent))
    samples = getattr(dataset, "samples", None)
    if samples is not None:
        found |= {os.path.dirname(os.path.abspath(str(p))) for p, _ in samples}
    return sorted({Path(os.path.realpath(f)) for f in found if f and os.path.realpath(f) != os.path.sep})



def _store_paths(root: Path, file_names: Sequence[str]) -> list[Path]:
    """The images of ``root``'s metadata rows, each checked to stay inside ``root``: no absolute or ``..``
    path, no symlinked folder or image leading outside (refused, naming the first offender). Each folder is
    resolved once and its symlinks listed once, so the check costs no system call per image."""
    paths: list[Path] = []
    symlinks: dict[Path, set[str]] = {}
    for f in file_names:
        path = root.joinpath(*store_parts(root, f))
        parent = path.parent
        if parent not in symlinks:
            if parent != root:
                inside(root, parent.relative_to(root).as_posix())
            try:
                symlinks[parent] = {e.name for e in os.scandir(parent) if e.is_symlink()}
            except OSError:
                symlinks[parent] = set()
        if path.name in symlinks[parent]:
            inside(root, str(f))
        paths.append(path)
    return paths


class _Flags:
    """One flag per item in shared memory, so data-loader worker processes can mark damaged items that the
    main process then counts."""

    def __init__(self, n: int):
        self.bits = torch.zeros(max(n, 1), dtype=torch.bool).share_memory_()

    def set(self, i: int) -> None:
        self.bits[i] = True

    def indices(self) -> list[int]:
        return [int(i) for i in torch.nonzero(self.bits).flatten()]


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

    A ``file_name`` leaving its folder (absolute, ``..``, a symlink leading outside) is refused when the
    dataset is built. An item that cannot be read at training time (a truncated or deleted image, an
    unreadable seed) is skipped: it is counted in :attr:`damaged` (also from data-loader workers), a warning
    names it, and the next readable item of the same part (original or expansions, wrapping around) stands
    in for it, so a run is not lost to one bad file.
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
                lam = pd.to_numeric(meta["lam"], errors="coerce").where(meta["label_b"].notna())
                label_b = pd.to_numeric(meta["label_b"], errors="coerce").where(lam.notna())
                bad = (label_b.notna() & ((label_b % 1 != 0) | (label_b < 0) | (label_b >= len(names)))) | \
                    (lam.notna() & ((lam < 0) | (lam > 1)))
                if bad.any():
                    row = meta[bad].iloc[0]
                    raise ValueError(f"{root / METADATA}: a mixed row needs label_b an integer in [0, {len(names)}) "
                                     f"and lam in [0, 1]; {row['file_name']} has label_b {row['label_b']}, "
                                     f"lam {row['lam']}")
                label_b = label_b.fillna(-1).astype(int)
            else:
                lam, label_b = pd.Series(np.nan, index=meta.index), pd.Series(-1, index=meta.index)
            paths += _store_paths(root, meta["file_name"].tolist())
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
        self._damaged = _Flags(len(self))

    @property
    def damaged(self) -> list[str]:
        """The items skipped because they could not be read (in any process): expansion image paths, and
        ``original[i]`` for seeds of the original dataset."""
        return [str(self._paths[i - self._n_original]) if i >= self._n_original else f"original[{i}]"
                for i in self._damaged.indices()]

    @property
    def targets(self) -> list[int]:
        """Hard int labels of all items (original first)."""
        if self._targets is None:
            self._targets = dataset_labels(self.original) + list(self._labels)
        return self._targets

    def __len__(self) -> int:
        return self._n_original + len(self._paths)

    def _read(self, index: int):
        if index < self._n_original:
            image, label = self.original[index]
            return image, int(label), -1, math.nan
        j = index - self._n_original
        image = open_rgb(self._paths[j])
        return image, self._labels[j], self._labels_b[j], self._lams[j]

    def _readable(self, index: int):
        """``(image, label, label_b, lam)`` of ``index``, or of the next readable item of its part."""
        lo, hi = (0, self._n_original) if index < self._n_original else (self._n_original, len(self))
        for k in range(hi - lo):
            i = lo + (index - lo + k) % (hi - lo)
            if k and bool(self._damaged.bits[i]):
                continue
            try:
                return self._read(i)
            except (BadImage, OSError, ValueError) as e:
                self._damaged.set(i)
                warnings.warn(f"skipping an unreadable training image ({e}); the next readable one stands in "
                              f"for it", stacklevel=3)
        where = "original dataset" if index < self._n_original else "expansions"
        raise Damaged(f"no image of the {where} ({hi - lo} items) can be read; the last error is above")

    def __getitem__(self, index: int) -> tuple[Any, int | torch.Tensor]:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        image, label, label_b, lam = self._readable(index)
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
