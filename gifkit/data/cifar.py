"""CIFAR-100 and its derivatives from the official python pickles: cifar100, cifar100s, cifar100lt, cifar100c.

Loaded through :func:`gifkit.data.load_dataset` (``root`` defaults to ``$GIFKIT_DATA`` or ``./data``,
laid out as torchvision writes it; nothing is downloaded unless ``download=True``).

name                 train split (the paper's)                           test split
-------------------  --------------------------------------------------  ------------------------------
cifar100             CIFAR-100 train (50,000)                            CIFAR-100 test (10,000)
cifar100s            100 per class of CIFAR-100 train: 10,000            CIFAR-100 test
cifar100lt           imbalance ratio 100, exponential: 10,847            CIFAR-100 test
cifar100c            --                                                  ``<corruption>-<severity>``

The CIFAR100-S subset ranks each class's images by a BLAKE2b hash of ``(seed, "cifar100s", index)``
(:func:`gifkit.core.rng.derive_seed`), stable across NumPy/torch versions and platforms; CIFAR100-LT follows
LDAM-DRW's code exactly (:mod:`gifkit.data.longtail`). The CIFAR100-S index list is written to
``gifkit/data/cifar100s_indices.json`` the first time the *official* CIFAR-100 train file (checked by its
MD5) is loaded, and checked against on later loads: it is a record for users of other tools and a
regression check; the subset's definition does not depend on it.

The official files are Python pickles, and loading a pickle can run code. gifkit therefore checks each
file's MD5 against the official digest (:data:`CIFAR100_MD5`) before unpickling it and refuses any other
file with a message. A file you made yourself (e.g. a test fixture) loads with ``trust_pickle=True``
(``--data-arg trust_pickle=true``). CIFAR-100-C is NumPy ``.npy`` (no pickles: ``allow_pickle`` stays off).
"""
from __future__ import annotations

import hashlib
import json
import pickle
import re
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from gifkit.data.base import ArrayDataset, DatasetMissing, check_split, data_root, fetch, hash_subset, missing, \
    readable
from gifkit.data.longtail import longtail_counts, longtail_indices
from gifkit.errors import Refused
from gifkit.io.files import write_text

__all__ = ["CIFAR100_CLASSES", "CIFAR100_MD5", "CIFAR100_URL", "CORRUPTIONS", "INDEX_FILE", "read_cifar100",
           "cifar100s_indices", "read_cifar100c", "load_cifar100", "load_cifar100s", "load_cifar100lt",
           "load_cifar100c"]

INDEX_FILE = Path(__file__).with_name("cifar100s_indices.json")

CIFAR100_CLASSES = [
    "apple", "aquarium fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle", "bowl", "boy",
    "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle", "chair", "chimpanzee", "clock",
    "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish",
    "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn mower", "leopard", "lion",
    "lizard", "lobster", "man", "maple tree", "motorcycle", "mountain", "mouse", "mushroom", "oak tree", "orange",
    "orchid", "otter", "palm tree", "pear", "pickup truck", "pine tree", "plain", "plate", "poppy", "porcupine",
    "possum", "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk",
    "skyscraper", "snail", "snake", "spider", "squirrel", "streetcar", "sunflower", "sweet pepper", "table", "tank",
    "telephone", "television", "tiger", "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale",
    "willow tree", "wolf", "woman", "worm",
]
CORRUPTIONS = ["gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
               "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
               "jpeg_compression"]
CIFAR100C_URL = "https://zenodo.org/record/3555552/files/CIFAR-100-C.tar"
CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"  # MD5 eb9058c3a382ffc7106e4002c42a8d85
# MD5 of the official files inside the archive (the digests torchvision lists); checked before unpickling
CIFAR100_MD5 = {"train": "16019d7e3df5f24257cddd939b257f8d", "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
                "meta": "7973b15100ade9c7d40fb424638fde48"}


def _cifar_missing(root: Path, name: str) -> DatasetMissing:
    return missing(name, root / "cifar-100-python" / "{train,test,meta}",
                    "Get it with download=True (CLI --download), i.e. torchvision.datasets.CIFAR100(root, "
                    f"download=True), or fetch {CIFAR100_URL} and extract it into {root}")


def _ensure_cifar100(root: Path, download: bool, name: str = "cifar100") -> Path:
    base = root / "cifar-100-python"
    if not all((base / f).is_file() for f in ("train", "test")):
        if not download:
            raise _cifar_missing(root, name)
        from torchvision.datasets import CIFAR100
        fetch(name, base / "{train,test,meta}", f"fetch {CIFAR100_URL} and extract it into {root}",
              lambda: CIFAR100(str(root), train=True, download=True))
    return base


_MD5_CACHE: dict[tuple, str] = {}


def _md5(path: Path) -> str:
    """The file's MD5 (cached per path, size and modification time)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _MD5_CACHE:
        h = hashlib.md5()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        _MD5_CACHE[key] = h.hexdigest()
    return _MD5_CACHE[key]


def _unpickle(path: Path, name: str, trust_pickle: bool):
    """The content of an official CIFAR-100 pickle; any other file is refused before it is unpickled (loading a
    pickle can run code), unless the caller trusts it (``trust_pickle``)."""
    if not trust_pickle:
        digest, official = _md5(path), CIFAR100_MD5[path.name]
        if digest != official:
            raise Refused(f"dataset {name!r}: {path} is not the official CIFAR-100 file (MD5 {digest}, expected "
                          f"{official}); gifkit unpickles only the official files, because loading a pickle can run "
                          f"code. Fetch them again (download=True / --download, or {CIFAR100_URL}), or pass "
                          f"trust_pickle=True (--data-arg trust_pickle=true) for a file you made yourself and trust")
    with open(path, "rb") as fh:
        return pickle.load(fh, encoding="latin1")


def read_cifar100(root: str | Path, train: bool, download: bool = False, name: str = "cifar100",
                  trust_pickle: bool = False) -> tuple[np.ndarray, list[int], list[str]]:
    """CIFAR-100 from the official python pickles: ``(uint8 [N, 32, 32, 3], fine labels, class names)``.

    Reads ``root/cifar-100-python/{train,test,meta}`` itself (torchvision is used for the download only),
    each file checked against its official MD5 before it is unpickled (:data:`CIFAR100_MD5`; a file that
    differs is refused unless ``trust_pickle``). Class names are the fine label names with ``_`` replaced
    by spaces.
    """
    base = _ensure_cifar100(Path(root), download, name)
    d = _unpickle(base / ("train" if train else "test"), name, trust_pickle)
    images = np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    labels = [int(v) for v in d["fine_labels"]]
    classes = CIFAR100_CLASSES
    if (base / "meta").is_file():
        classes = [readable(n) for n in _unpickle(base / "meta", name, trust_pickle)["fine_label_names"]]
    return images, labels, classes


def cifar100s_indices(labels: Sequence[int], per_class: int = 100, seed: int = 0) -> list[int]:
    """CIFAR100-Subset: for each class, the ``per_class`` train indices ``i`` with the smallest
    ``derive_seed(seed, "cifar100s", i)`` (a fixed, version-independent seeded sample)."""
    labels = [int(v) for v in labels]
    counts = np.bincount(labels)
    if (counts < per_class).any():
        raise ValueError(f"cifar100s: class {int(np.argmin(counts))} has only {counts.min()} images (< {per_class})")
    return hash_subset([str(i) for i in range(len(labels))], labels, per_class, seed, "cifar100s")


def _record_cifar100s(indices: list[int], base: Path, per_class: int, seed: int) -> None:
    """Keep the index list in the repository (``gifkit/data/cifar100s_indices.json``).

    Written on the first load of the *official* CIFAR-100 train file (MD5 as
    torchvision lists it) with the default settings; later loads check that the
    computed list still equals the recorded one. Other files (e.g. test fakes)
    are neither recorded nor checked.
    """
    if (per_class, seed) != (100, 0) or _md5(base / "train") != CIFAR100_MD5["train"]:
        return
    record = {"definition": "per class c: the 100 CIFAR-100 train indices i with label c with the smallest "
                            "gifkit.core.rng.derive_seed(0, 'cifar100s', i)",
              "train_md5": CIFAR100_MD5["train"], "per_class": per_class, "seed": seed, "indices": indices}
    if INDEX_FILE.is_file():
        saved = json.loads(INDEX_FILE.read_text())
        if saved.get("indices") != indices:
            raise RuntimeError(f"{INDEX_FILE} differs from the CIFAR100-S indices computed now; "
                               f"the subset definition changed, which must not happen")
        return
    text = json.dumps(record, separators=(",", ":")) + "\n"
    for target in (INDEX_FILE, base / INDEX_FILE.name):
        try:
            write_text(target, text)
            warnings.warn(f"recorded the CIFAR100-S index list in {target}", stacklevel=3)
            return
        except OSError:
            continue



def load_cifar100(split: str = "train", root=None, profile: str = "paper", download: bool = False,
                  trust_pickle: bool = False, **_):
    """Full CIFAR-100 (``train`` 50,000 / ``test`` 10,000)."""
    check_split("cifar100", split, ("train", "test"))
    images, labels, classes = read_cifar100(data_root(root), split == "train", download, trust_pickle=trust_pickle)
    ds = ArrayDataset(images, labels, classes)
    return ds, ds.classes


def load_cifar100s(split: str = "train", root=None, profile: str = "paper", download: bool = False,
                   per_class: int = 100, subset_seed: int = 0, trust_pickle: bool = False, **_):
    """CIFAR100-Subset: ``train`` = 100 per class of CIFAR-100 train (:func:`cifar100s_indices`),
    ``test`` = the full CIFAR-100 test set. ``.indices`` holds the chosen train indices."""
    check_split("cifar100s", split, ("train", "test"))
    root = data_root(root)
    images, labels, classes = read_cifar100(root, split == "train", download, "cifar100s", trust_pickle)
    if split == "test":
        ds = ArrayDataset(images, labels, classes)
        return ds, ds.classes
    indices = cifar100s_indices(labels, per_class, subset_seed)
    _record_cifar100s(indices, root / "cifar-100-python", per_class, subset_seed)
    ds = ArrayDataset(images, labels, classes, indices=indices)
    return ds, ds.classes


def load_cifar100lt(split: str = "train", root=None, profile: str = "paper", download: bool = False,
                    imbalance_ratio: float = 100, trust_pickle: bool = False, **_):
    """CIFAR100-LT: ``train`` = :func:`longtail_indices` (ratio 100: 500 down to 5 per class),
    ``test`` = the full, balanced CIFAR-100 test set. ``.class_counts`` = train images per class."""
    check_split("cifar100lt", split, ("train", "test"))
    root = data_root(root)
    images, labels, classes = read_cifar100(root, True, download, "cifar100lt", trust_pickle)
    counts = longtail_counts(len(labels) // len(classes), len(classes), imbalance_ratio)
    if split == "train":
        ds = ArrayDataset(images, labels, classes, indices=longtail_indices(labels, imbalance_ratio))
    else:
        images, labels, classes = read_cifar100(root, False, trust_pickle=trust_pickle)
        ds = ArrayDataset(images, labels, classes)
    ds.class_counts = counts
    return ds, ds.classes


def read_cifar100c(root: str | Path, corruption: str, severity: int, download: bool = False) -> ArrayDataset:
    """One CIFAR-100-C set: ``root/CIFAR-100-C/<corruption>.npy`` rows ``(severity-1)*10000 : severity*10000``
    (the official files stack severities 1..5) with ``labels.npy``; memory-mapped."""
    if corruption not in CORRUPTIONS:
        raise ValueError(f"cifar100c: corruption must be one of {CORRUPTIONS}, got {corruption!r}")
    if not 1 <= int(severity) <= 5:
        raise ValueError(f"cifar100c: severity must be 1..5, got {severity}")
    root = Path(root)
    base = root / "CIFAR-100-C"
    files = [base / f"{corruption}.npy", base / "labels.npy"]
    if not all(f.is_file() for f in files):
        if download:
            from torchvision.datasets.utils import download_and_extract_archive
            fetch("cifar100c", f"{files[0]} and {files[1]}", f"fetch {CIFAR100C_URL} (2.9 GB) and extract it "
                  f"into {root}", lambda: download_and_extract_archive(CIFAR100C_URL, str(root)))
        else:
            raise missing("cifar100c", f"{files[0]} and {files[1]}",
                           f"Get it with download=True (CLI --download), or fetch {CIFAR100C_URL} "
                           f"(Hendrycks & Dietterich, 2.9 GB) and extract it into {root}")
    images = np.load(files[0], mmap_mode="r")
    labels = np.load(files[1], mmap_mode="r")
    n = len(images) // 5
    if len(images) % 5 or len(labels) != len(images):
        raise ValueError(f"{files[0]}: expected 5 severities x N images with as many labels, "
                         f"got {len(images)} images and {len(labels)} labels")
    lo, hi = (int(severity) - 1) * n, int(severity) * n
    return ArrayDataset(images[lo:hi], np.asarray(labels[lo:hi]), CIFAR100_CLASSES)


def load_cifar100c(split: str = "gaussian_noise-3", root=None, profile: str = "paper", download: bool = False,
                   corruption: str | None = None, severity: int | None = None, trust_pickle: bool = False, **_):
    """CIFAR-100-C test sets: ``split`` = ``"<corruption>-<severity>"`` (e.g. ``"fog-3"``), or pass
    ``corruption=`` and ``severity=``; ``split="clean"`` or ``"test"`` is the CIFAR-100 test set."""
    if split in ("clean", "test") and corruption is None:
        return load_cifar100("test", root, profile, download, trust_pickle)
    if corruption is None:
        m = re.fullmatch(r"([a-z_]+)-([1-5])", split)
        if not m:
            raise ValueError(f"cifar100c: split must be '<corruption>-<severity 1..5>' (corruptions: "
                             f"{', '.join(CORRUPTIONS)}), got {split!r}")
        corruption, severity = m.group(1), int(m.group(2))
    ds = read_cifar100c(data_root(root), corruption, int(severity or 3), download)
    return ds, ds.classes
