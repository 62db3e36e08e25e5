"""Fashion-MNIST (and MNIST) from the official idx files, for the ``mini`` profile.

The files are read with NumPy from, in order:

1. ``root`` (argument / ``--data-root``), a folder holding the four official
   files (``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``,
   ``t10k-images-idx3-ubyte[.gz]``, ``t10k-labels-idx1-ubyte[.gz]``), or a
   torchvision root (``<root>/FashionMNIST/raw``);
2. ``$GIFKIT_FASHION_MNIST`` / ``$GIFKIT_MNIST``;
3. the Debian/Ubuntu packages: ``apt-get install dataset-fashion-mnist``
   installs them under ``/usr/share/datasets/fashion-mnist`` (MNIST:
   ``/usr/share/datasets/mnist`` where such a package exists);
4. torchvision's copy in gifkit's cache (``<user cache>/gifkit/torchvision``),
   downloaded there only when ``download=True`` (never in tests or offline).

Splits: ``train`` is the *small-data scenario*: ``n_per_class`` images per
class (default 20 in the mini profile) drawn without replacement from the
official training set with a generator seeded by ``(seed, name, "subset")``,
so the same 200 images come out on every machine. ``pool`` is the whole
official training set (60,000 images, what the mini VAE prior is trained on,
without labels). ``test`` is the official test set (10,000; ``test_per_class``
may subsample it for quick checks; ``n_per_class`` applies to ``train`` only,
so one set of keyword arguments serves both splits). Items are
``(PIL RGB 28x28, label)``.

Two derived sets stand in for the paper's long-tail and OOD studies on the mini profile:

* ``fashion-mnist-lt`` (:func:`load_fashion_mnist_lt`): ``train`` = ``n_max`` (200) images per class drawn
  as above, then cut to the exponential long tail of CIFAR100-LT (:mod:`gifkit.data.longtail`) with imbalance
  ratio 20: 200, 143, 102, 73, 52, 37, 27, 19, 13, 10 images (676 in all; with CIFAR100-LT's thresholds 3
  many-shot (> 100), 4 medium-shot and 3 few-shot (< 20) classes); ``test`` = the balanced official test set.
  Both splits carry ``.class_counts`` (the training counts).
* ``fashion-mnist-c`` (:func:`load_fashion_mnist_c`): the official test set under the corruptions of
  :mod:`gifkit.data.corruptions`, split ``"<corruption>-<severity>"`` (e.g. ``"contrast-3"``); ``test`` /
  ``clean`` is the uncorrupted test set and ``train`` the small labelled set (so a mini run evaluates on it
  unchanged). Each image's corruption is drawn from ``(seed, "fashion-mnist-c", corruption, severity, index in
  the official test set)`` and applied to the grey image (the first channel of the RGB result), so the set is
  the same on every machine and a ``test_per_class`` subsample holds the same corrupted images.
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from gifkit.core.rng import np_random
from gifkit.data.corruptions import CORRUPTIONS, corrupt
from gifkit.data.longtail import longtail_counts, longtail_subset
from gifkit.errors import UserError

__all__ = ["FASHION_CLASSES", "MNIST_CLASSES", "IdxDataset", "read_idx", "find_files", "load_arrays",
           "DataUnavailable", "DEFAULT_N_PER_CLASS", "APT_PACKAGE", "how_to_get", "load_fashion_mnist",
           "load_mnist", "load_idx_dataset", "sample_per_class", "cache_root", "LT_N_MAX", "LT_IMBALANCE",
           "load_fashion_mnist_lt", "CorruptedDataset", "load_fashion_mnist_c"]

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]
MNIST_CLASSES = [str(i) for i in range(10)]
DEFAULT_N_PER_CLASS = 20  # the mini profile's small-data scenario: 20 labelled images per class
APT_PACKAGE = "dataset-fashion-mnist"
_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
_SPECS = {
    "fashion-mnist": dict(classes=FASHION_CLASSES, env="GIFKIT_FASHION_MNIST", system="/usr/share/datasets/fashion-mnist",
                          tv="FashionMNIST"),
    "mnist": dict(classes=MNIST_CLASSES, env="GIFKIT_MNIST", system="/usr/share/datasets/mnist", tv="MNIST"),
}
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DataUnavailable(UserError, FileNotFoundError):
    """The dataset's files were found nowhere; the message says how to get them."""


def read_idx(path: str | Path) -> np.ndarray:
    """An idx file (optionally gzipped) as a NumPy array of its declared type and shape."""
    path = Path(path)
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise ValueError(f"{path} is not an idx file (bad magic number)")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_DTYPES[raw[2]])
    expected = 4 + 4 * ndim + int(np.prod(dims)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(f"{path}: expected {expected} bytes for shape {dims}, found {len(raw)}")
    return np.frombuffer(raw, dtype=dtype, offset=4 + 4 * ndim).reshape(dims).astype(dtype.newbyteorder("="))


def _lookup(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx") + ".gz", stem.replace("-idx", ".idx")):
        if (folder / name).is_file():
            return folder / name
    return None


def cache_root() -> Path:
    """Where torchvision's fallback download goes: ``<user cache>/gifkit/torchvision``."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("gifkit")) / "torchvision"


def _candidates(name: str, root: str | Path | None) -> list[Path]:
    spec = _SPECS[name]
    out = []
    if root is not None:
        out += [Path(root).expanduser(), Path(root).expanduser() / spec["tv"] / "raw"]
    if os.environ.get(spec["env"]):
        out.append(Path(os.environ[spec["env"]]).expanduser())
    out += [Path(spec["system"]), cache_root() / spec["tv"] / "raw"]
    return out


def how_to_get(name: str = "fashion-mnist") -> str:
    """What a user should do when the files are missing."""
    spec = _SPECS[name]
    apt = (f"  sudo apt-get install -y {APT_PACKAGE}    (Debian/Ubuntu: installs {spec['system']})\n"
           if name == "fashion-mnist" else "")
    return (f"{name} files not found. Get them with one of:\n{apt}"
            f"  export {spec['env']}=/folder/with/the/4/idx/files   (the official *-idx?-ubyte[.gz] files)\n"
            f"  gifkit mini --download ...   (torchvision download into {cache_root()}, needs internet)")


def find_files(name: str, split: str, root: str | Path | None = None) -> tuple[Path, Path]:
    """The (images, labels) idx files of ``split`` ("train" or "test"); raises :class:`DataUnavailable`."""
    tried = []
    for folder in _candidates(name, root):
        images, labels = (_lookup(folder, s) for s in _FILES[split])
        if images is not None and labels is not None:
            return images, labels
        tried.append(str(folder))
    raise DataUnavailable(how_to_get(name) + "\n(looked in: " + ", ".join(tried) + ")")


def _download(name: str) -> None:
    from torchvision import datasets

    cls = datasets.FashionMNIST if name == "fashion-mnist" else datasets.MNIST
    for train in (True, False):
        cls(str(cache_root()), train=train, download=True)


_ARRAYS: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}


def load_arrays(name: str, split: str, root: str | Path | None = None,
                download: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 [N, 28, 28], labels int64 [N])`` of the official ``split`` (cached in memory)."""
    if name not in _SPECS:
        raise ValueError(f"unknown idx dataset {name!r}; known: {', '.join(_SPECS)}")
    if split not in _FILES:
        raise ValueError(f"split must be one of {tuple(_FILES)}, got {split!r}")
    try:
        paths = find_files(name, split, root)
    except DataUnavailable:
        if not download:
            raise
        try:
            _download(name)
        except (OSError, RuntimeError, ValueError) as err:  # offline, a URL gone: the usual way out
            raise DataUnavailable(f"the download failed ({type(err).__name__}: {err}); {how_to_get(name)}") from err
        paths = find_files(name, split, root)
    key = tuple(str(p) for p in paths)
    if key not in _ARRAYS:
        images, labels = read_idx(paths[0]), read_idx(paths[1])
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(f"{paths}: expected images [N, H, W] and labels [N], got {images.shape}, {labels.shape}")
        _ARRAYS[key] = (images.astype(np.uint8), labels.astype(np.int64))
    return _ARRAYS[key]


def sample_per_class(labels: np.ndarray, n_per_class: int, key: tuple) -> np.ndarray:
    """Sorted indices of ``n_per_class`` items of every class, drawn without replacement with ``np_random(*key)``."""
    rng = np_random(*key)
    picked = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if len(idx) < n_per_class:
            raise ValueError(f"class {c} has {len(idx)} items, fewer than n_per_class={n_per_class}")
        picked.append(rng.choice(idx, size=n_per_class, replace=False))
    return np.sort(np.concatenate(picked))


class IdxDataset(Dataset):
    """``(PIL RGB image, label)`` items of an idx dataset; ``.classes``, ``.targets``, ``.images`` (uint8 [N, H, W]),
    ``.indices`` (positions in the official split, for provenance)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, classes: list[str], indices: np.ndarray | None = None,
                 name: str = "", split: str = ""):
        self.images, self.classes, self.name, self.split = images, list(classes), name, split
        self.targets = [int(v) for v in labels]
        self.indices = np.arange(len(images)) if indices is None else np.asarray(indices)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        return Image.fromarray(self.images[i], "L").convert("RGB"), self.targets[i]

    def __repr__(self) -> str:
        return f"IdxDataset({self.name} {self.split}: {len(self)} images, {len(self.classes)} classes)"


def load_idx_dataset(name: str, split: str = "train", root: str | Path | None = None, profile: str = "mini",
                     n_per_class: int | None = None, seed: int = 0, download: bool = False,
                     test_per_class: int | None = None) -> IdxDataset:
    """``train``: ``n_per_class`` per class (default 20) sampled with ``seed``; ``pool``: all 60,000 training
    images; ``test``: the official test set (all of it unless ``test_per_class``)."""
    spec = _SPECS[name]
    official = {"train": "train", "pool": "train", "test": "test"}.get(split)
    if official is None:
        raise ValueError(f"{name}: split must be 'train' (small labelled set), 'pool' or 'test', got {split!r}")
    images, labels = load_arrays(name, official, root, download)
    per_class = {"train": n_per_class if n_per_class is not None else DEFAULT_N_PER_CLASS, "pool": None,
                 "test": test_per_class}[split]
    if per_class is None:
        idx = np.arange(len(labels))
    else:
        idx = sample_per_class(labels, int(per_class), (seed, name, split, "subset"))
    return IdxDataset(images[idx], labels[idx], spec["classes"], idx, name, split)


def load_fashion_mnist(split: str = "train", root=None, profile: str = "mini", **kwargs):
    ds = load_idx_dataset("fashion-mnist", split, root, profile, **kwargs)
    return ds, ds.classes


def load_mnist(split: str = "train", root=None, profile: str = "mini", **kwargs):
    ds = load_idx_dataset("mnist", split, root, profile, **kwargs)
    return ds, ds.classes


# ----------------------------------------------------------------------------- mini stand-ins: long tail, OOD

LT_N_MAX, LT_IMBALANCE = 200, 20  # fashion-mnist-lt: 200 ... 10 images per class (CIFAR100-LT's shot groups apply)


def load_fashion_mnist_lt(split: str = "train", root=None, profile: str = "mini", n_max: int = LT_N_MAX,
                          imbalance_ratio: float = LT_IMBALANCE, seed: int = 0, download: bool = False,
                          test_per_class: int | None = None, **_):
    """Long-tailed Fashion-MNIST (module docstring): ``train`` = the exponential long tail (``n_max`` down to
    ``n_max / imbalance_ratio`` per class) of ``n_max`` seeded images per class; ``test`` = the balanced official
    test set (``test_per_class`` to subsample). Both carry ``.class_counts``; other keyword arguments (the mini
    profile's ``n_per_class``) are ignored."""
    counts = longtail_counts(int(n_max), len(FASHION_CLASSES), imbalance_ratio)
    if split == "train":
        balanced = load_idx_dataset("fashion-mnist", "train", root, profile, n_per_class=int(n_max), seed=seed,
                                    download=download)
        ds = longtail_subset(balanced, imbalance_ratio)
        ds.name, ds.split = "fashion-mnist-lt", "train"
    elif split == "test":
        ds = load_idx_dataset("fashion-mnist", "test", root, profile, download=download,
                              test_per_class=test_per_class)
        ds.name = "fashion-mnist-lt"
    else:
        raise ValueError(f"fashion-mnist-lt: split must be 'train' or 'test', got {split!r}")
    ds.class_counts = counts
    return ds, list(FASHION_CLASSES)


class CorruptedDataset(IdxDataset):
    """An :class:`IdxDataset` whose items come out corrupted (``corruption`` at ``severity``, drawn per item from
    ``(seed, "fashion-mnist-c", corruption, severity, official index)``), grey as the originals."""

    def __init__(self, base: IdxDataset, corruption: str, severity: int, seed: int = 0):
        if corruption not in CORRUPTIONS:
            raise ValueError(f"fashion-mnist-c: corruption must be one of {', '.join(CORRUPTIONS)}, got {corruption!r}")
        if not 1 <= int(severity) <= 5:
            raise ValueError(f"fashion-mnist-c: severity must be 1..5, got {severity}")
        super().__init__(base.images, np.asarray(base.targets), base.classes, base.indices, "fashion-mnist-c",
                         f"{corruption}-{int(severity)}")
        self.corruption, self.severity, self.seed = corruption, int(severity), seed

    def __getitem__(self, i: int):
        image, label = super().__getitem__(i)
        rng = np_random(self.seed, "fashion-mnist-c", self.corruption, self.severity, int(self.indices[i]))
        grey = np.asarray(corrupt(image, self.corruption, self.severity, rng))[:, :, 0]
        return Image.fromarray(grey, "L").convert("RGB"), label


def load_fashion_mnist_c(split: str = "contrast-3", root=None, profile: str = "mini", seed: int = 0,
                         download: bool = False, test_per_class: int | None = None, n_per_class: int | None = None,
                         **_):
    """Corrupted Fashion-MNIST test sets (module docstring): ``split`` = ``"<corruption>-<severity 1..5>"``
    (corruptions: :data:`gifkit.data.corruptions.CORRUPTIONS`), ``"test"``/``"clean"`` (uncorrupted) or
    ``"train"`` (the small labelled set, ``n_per_class`` per class)."""
    if split == "train":
        ds = load_idx_dataset("fashion-mnist", "train", root, profile, n_per_class=n_per_class, seed=seed,
                              download=download)
        return ds, ds.classes
    base = load_idx_dataset("fashion-mnist", "test", root, profile, download=download, test_per_class=test_per_class)
    if split in ("test", "clean"):
        return base, base.classes
    corruption, _, severity = split.rpartition("-")
    if corruption not in CORRUPTIONS or severity not in tuple("12345"):
        raise ValueError(f"fashion-mnist-c: split must be '<corruption>-<severity 1..5>' (corruptions: "
                         f"{', '.join(CORRUPTIONS)}), 'test' or 'train', got {split!r}")
    ds = CorruptedDataset(base, corruption, int(severity), seed)
    return ds, ds.classes
