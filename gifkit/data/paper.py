"""The paper's datasets with the paper's splits (DESIGN.md §2), loaded from a local root.

Every loader is registered in :mod:`gifkit.data` and called as
``load_dataset(name, split, root=None, download=False, ...)``. ``root`` defaults
to ``$GIFKIT_DATA`` or ``./data``; the on-disk layout under it is the one
torchvision (or medmnist) writes, so an existing torchvision download is
reused. Nothing is downloaded unless ``download=True`` (CLI ``--download``);
missing files raise :class:`DatasetMissing` naming the files expected and the
exact way to get them.

name                 train split (the paper's)                           test split
-------------------  --------------------------------------------------  ------------------------------
caltech101           30 per class, 102 classes (101 categories +         the other images
                     BACKGROUND_Google): 3,060
cars                 official train, 196 classes: 8,144                  official test (8,041)
flowers102           the GIF code's ``flower_data/train``: 6,552         ``flower_data/valid`` (818)
flowers102-official  setid.mat ``train``/``val``/``trainval``            ``test`` (6,149)
dtd                  partition 1: train1 + val1 = 3,760                  test1 (1,880)
pets                 the GIF code's split: per breed the first 52 %      the other 48 %
                     of ``images/*.jpg`` (~3,842)
pets-official        ``trainval`` (3,680)                                ``test`` (3,669)
cifar100             CIFAR-100 train (50,000)                            CIFAR-100 test (10,000)
cifar100s            100 per class of CIFAR-100 train: 10,000            CIFAR-100 test
cifar100lt           imbalance ratio 100, exponential: 10,847            CIFAR-100 test
cifar100c            --                                                  ``<corruption>-<severity>``
pathmnist            MedMNIST ``val`` split (10,004)                     MedMNIST ``test``
breastmnist          MedMNIST ``val`` split (78)                         MedMNIST ``test``
organsmnist          MedMNIST ``train`` split (13,932)                   MedMNIST ``test``
manifest             a CSV of ``path,label`` (:mod:`gifkit.data.manifest`), ``root`` = the CSV
imagefolder          ``root/<class>/<image>`` or ``root/<split>/<class>/<image>``

Decisions (see each loader's docstring): class names are made readable for
CLIP prompts (``_`` -> space); random subsets (Caltech101's 30 per class,
CIFAR100-S's 100 per class) rank candidates by a BLAKE2b hash of
``(seed, dataset, item)`` (:func:`gifkit.rng.derive_seed`), which is stable
across NumPy/torch versions and platforms; CIFAR100-LT follows Cao et al.'s
LDAM-DRW code exactly (``np.random.RandomState(0)``) so it matches the subset
the long-tail literature uses. The MedMNIST training splits are inferred from
the paper's Table 11 sample counts (10,004 = PathMNIST ``val``, 78 =
BreastMNIST ``val``, 13,940 = MedMNIST v1's OrganSMNIST ``train``); the raw
splits are available as ``medmnist-train`` / ``medmnist-val`` /
``medmnist-test``. The CIFAR100-S index list is written to
``gifkit/data/cifar100s_indices.json`` the first time the *official*
CIFAR-100 train file (checked by its MD5) is loaded, and checked against on
later loads: it is a record for users of other tools and a regression check;
the subset's definition does not depend on it (the file could not be made
without the data, so the repository does not ship it yet).
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from gifkit.data import register
from gifkit.data.folder import ImageFolderDataset
from gifkit.data.images import IMAGE_EXTENSIONS, open_rgb, to_rgb
from gifkit.rng import derive_seed

__all__ = ["DatasetMissing", "FileListDataset", "ArrayDataset", "default_root", "CIFAR100_CLASSES",
           "CORRUPTIONS", "hash_subset", "cifar100s_indices", "longtail_counts", "longtail_indices",
           "read_cifar100", "read_cifar100c", "INDEX_FILE"]

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
FLOWERS_PAPER_URL = "https://s3.amazonaws.com/content.udacity-data.com/courses/nd188/flower_data.zip"


class DatasetMissing(FileNotFoundError):
    """The files of a dataset are not under its root (and downloading was not allowed or is impossible)."""


def default_root() -> Path:
    """``$GIFKIT_DATA`` if set, else ``./data``."""
    return Path(os.environ.get("GIFKIT_DATA", "data")).expanduser()


def _root(root) -> Path:
    return Path(root).expanduser() if root is not None else default_root()


def _missing(name: str, expected: Path | str, how: str) -> DatasetMissing:
    return DatasetMissing(f"dataset {name!r}: {expected} not found. {how} "
                          f"(pass root=... / --data-root to point at another folder; default $GIFKIT_DATA or ./data)")


def _readable(name: str) -> str:
    return name.replace("_", " ").strip()


def _check_split(name: str, split: str, allowed: Sequence[str]) -> None:
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


# ----------------------------------------------------------------------------- CIFAR-100 family


def _cifar_missing(root: Path, name: str) -> DatasetMissing:
    return _missing(name, root / "cifar-100-python" / "{train,test,meta}",
                    "Get it with download=True (CLI --download), i.e. torchvision.datasets.CIFAR100(root, "
                    "download=True), or fetch https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz and "
                    f"extract it into {root}")


def _ensure_cifar100(root: Path, download: bool, name: str = "cifar100") -> Path:
    base = root / "cifar-100-python"
    if not all((base / f).is_file() for f in ("train", "test")):
        if not download:
            raise _cifar_missing(root, name)
        from torchvision.datasets import CIFAR100
        CIFAR100(str(root), train=True, download=True)
    return base


def read_cifar100(root: str | Path, train: bool, download: bool = False,
                  name: str = "cifar100") -> tuple[np.ndarray, list[int], list[str]]:
    """CIFAR-100 from the official python pickles: ``(uint8 [N, 32, 32, 3], fine labels, class names)``.

    Reads ``root/cifar-100-python/{train,test,meta}`` itself rather than through
    ``torchvision.datasets.CIFAR100``, whose MD5 check rejects anything but the
    official files (torchvision is used for the download only). Class names are
    the fine label names with ``_`` replaced by spaces.
    """
    base = _ensure_cifar100(Path(root), download, name)
    with open(base / ("train" if train else "test"), "rb") as fh:
        d = pickle.load(fh, encoding="latin1")
    images = np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    labels = [int(v) for v in d["fine_labels"]]
    classes = CIFAR100_CLASSES
    if (base / "meta").is_file():
        with open(base / "meta", "rb") as fh:
            classes = [_readable(n) for n in pickle.load(fh, encoding="latin1")["fine_label_names"]]
    return images, labels, classes


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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
    from torchvision.datasets import CIFAR100

    if (per_class, seed) != (100, 0) or _md5(base / "train") != CIFAR100.train_list[0][1]:
        return
    record = {"definition": "per class c: the 100 CIFAR-100 train indices i with label c with the smallest "
                            "gifkit.rng.derive_seed(0, 'cifar100s', i)",
              "train_md5": CIFAR100.train_list[0][1], "per_class": per_class, "seed": seed, "indices": indices}
    if INDEX_FILE.is_file():
        saved = json.loads(INDEX_FILE.read_text())
        if saved.get("indices") != indices:
            raise RuntimeError(f"{INDEX_FILE} differs from the CIFAR100-S indices computed now; "
                               f"the subset definition changed, which must not happen")
        return
    text = json.dumps(record, separators=(",", ":")) + "\n"
    for target in (INDEX_FILE, base / INDEX_FILE.name):
        try:
            target.write_text(text)
            warnings.warn(f"recorded the CIFAR100-S index list in {target}", stacklevel=3)
            return
        except OSError:
            continue


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


@register("cifar100")
def load_cifar100(split: str = "train", root=None, profile: str = "paper", download: bool = False, **_):
    """Full CIFAR-100 (``train`` 50,000 / ``test`` 10,000)."""
    _check_split("cifar100", split, ("train", "test"))
    images, labels, classes = read_cifar100(_root(root), split == "train", download)
    ds = ArrayDataset(images, labels, classes)
    return ds, ds.classes


@register("cifar100s")
def load_cifar100s(split: str = "train", root=None, profile: str = "paper", download: bool = False,
                   per_class: int = 100, subset_seed: int = 0, **_):
    """CIFAR100-Subset: ``train`` = 100 per class of CIFAR-100 train (:func:`cifar100s_indices`),
    ``test`` = the full CIFAR-100 test set. ``.indices`` holds the chosen train indices."""
    _check_split("cifar100s", split, ("train", "test"))
    root = _root(root)
    images, labels, classes = read_cifar100(root, split == "train", download, "cifar100s")
    if split == "test":
        ds = ArrayDataset(images, labels, classes)
        return ds, ds.classes
    indices = cifar100s_indices(labels, per_class, subset_seed)
    _record_cifar100s(indices, root / "cifar-100-python", per_class, subset_seed)
    ds = ArrayDataset(images, labels, classes, indices=indices)
    return ds, ds.classes


@register("cifar100lt")
def load_cifar100lt(split: str = "train", root=None, profile: str = "paper", download: bool = False,
                    imbalance_ratio: float = 100, **_):
    """CIFAR100-LT: ``train`` = :func:`longtail_indices` (ratio 100: 500 down to 5 per class),
    ``test`` = the full, balanced CIFAR-100 test set. ``.class_counts`` = train images per class."""
    _check_split("cifar100lt", split, ("train", "test"))
    root = _root(root)
    images, labels, classes = read_cifar100(root, True, download, "cifar100lt")
    counts = longtail_counts(len(labels) // len(classes), len(classes), imbalance_ratio)
    if split == "train":
        ds = ArrayDataset(images, labels, classes, indices=longtail_indices(labels, imbalance_ratio))
    else:
        images, labels, classes = read_cifar100(root, False)
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
            download_and_extract_archive(CIFAR100C_URL, str(root))
        else:
            raise _missing("cifar100c", f"{files[0]} and {files[1]}",
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


@register("cifar100c")
def load_cifar100c(split: str = "gaussian_noise-3", root=None, profile: str = "paper", download: bool = False,
                   corruption: str | None = None, severity: int | None = None, **_):
    """CIFAR-100-C test sets: ``split`` = ``"<corruption>-<severity>"`` (e.g. ``"fog-3"``), or pass
    ``corruption=`` and ``severity=``; ``split="clean"`` or ``"test"`` is the CIFAR-100 test set."""
    if split in ("clean", "test") and corruption is None:
        return load_cifar100("test", root, profile, download)
    if corruption is None:
        m = re.fullmatch(r"([a-z_]+)-([1-5])", split)
        if not m:
            raise ValueError(f"cifar100c: split must be '<corruption>-<severity 1..5>' (corruptions: "
                             f"{', '.join(CORRUPTIONS)}), got {split!r}")
        corruption, severity = m.group(1), int(m.group(2))
    ds = read_cifar100c(_root(root), corruption, int(severity or 3), download)
    return ds, ds.classes


# ----------------------------------------------------------------------------- image-folder datasets


_CALTECH_NAMES = {"BACKGROUND_Google": "background", "Faces": "face", "Faces_easy": "face easy",
                  "Leopards": "leopard", "Motorbikes": "motorbike", "airplanes": "airplane"}


@register("caltech101")
def load_caltech101(split: str = "train", root=None, profile: str = "paper", download: bool = False,
                    per_class: int = 30, subset_seed: int = 0, **_):
    """Caltech-101, 102 classes (the 101 categories and BACKGROUND_Google, as the paper counts them).

    ``train``: per class the ``per_class`` = 30 images with the smallest
    ``derive_seed(subset_seed, "caltech101", "<folder>/<file>")`` (3,060); ``test``: the rest.
    Layout: ``root/caltech101/101_ObjectCategories/<folder>/image_NNNN.jpg`` (torchvision's).
    """
    _check_split("caltech101", split, ("train", "test"))
    root = _root(root)
    cats = root / "caltech101" / "101_ObjectCategories"
    if not cats.is_dir():
        if not download:
            raise _missing("caltech101", cats, "Get it with download=True (CLI --download), i.e. "
                           "torchvision.datasets.Caltech101(root, download=True) (needs gdown), or fetch "
                           "https://data.caltech.edu/records/mzrjq-6wc02/files/caltech-101.zip and extract "
                           f"101_ObjectCategories.tar.gz into {root / 'caltech101'}")
        from torchvision.datasets import Caltech101
        Caltech101(str(root), download=True)
    folders = sorted(p.name for p in cats.iterdir() if p.is_dir())
    samples = [(p, y) for y, f in enumerate(folders) for p in sorted((cats / f).iterdir())
               if p.suffix.lower() in IMAGE_EXTENSIONS]
    keys = [f"{Path(p).parent.name}/{Path(p).name}" for p, _ in samples]
    train = set(hash_subset(keys, [y for _, y in samples], per_class, subset_seed, "caltech101"))
    chosen = [s for i, s in enumerate(samples) if (i in train) == (split == "train")]
    ds = FileListDataset(chosen, [_CALTECH_NAMES.get(f, _readable(f)) for f in folders])
    return ds, ds.classes


@register("cars")
@register("stanford_cars")
def load_cars(split: str = "train", root=None, profile: str = "paper", download: bool = False, **_):
    """Stanford Cars through ``torchvision.datasets.StanfordCars`` (official train 8,144 / test 8,041)."""
    _check_split("cars", split, ("train", "test"))
    root = _root(root)
    base = root / "stanford_cars"
    ann = base / "devkit" / "cars_train_annos.mat" if split == "train" else base / "cars_test_annos_withlabels.mat"
    needed = [base / "devkit" / "cars_meta.mat", ann, base / ("cars_train" if split == "train" else "cars_test")]
    if not all(p.exists() for p in needed):
        raise _missing("cars", ", ".join(str(p) for p in needed),
                       "It cannot be downloaded automatically any more (the Stanford URL is gone; "
                       "torchvision's download=True raises). Get cars_train/, cars_test/, devkit/ "
                       "(cars_meta.mat, cars_train_annos.mat) and cars_test_annos_withlabels.mat from a mirror "
                       "(e.g. the Kaggle dataset 'jessicali9530/stanford-cars-dataset'; see "
                       "https://github.com/pytorch/vision/issues/7545) and place them under "
                       f"{base}")
    from torchvision.datasets import StanfordCars
    tv = StanfordCars(str(root), split=split)
    ds = FileListDataset(tv._samples, tv.classes)
    return ds, ds.classes


def _flowers_classes() -> list[str]:
    from torchvision.datasets import Flowers102
    return list(Flowers102.classes)


@register("flowers102")
@register("flowers")
def load_flowers102(split: str = "train", root=None, profile: str = "paper", download: bool = False, **_):
    """Flowers102 as the GIF code trains it: ``root/flower_data/{train,valid}/<1..102>/*.jpg``
    (the widely mirrored "flower_data" split: 6,552 train / 818 valid); ``test`` = ``valid``.
    Folder ``k`` is the official label ``k``; class names are torchvision's Flowers102 names.
    The official split is ``flowers102-official``."""
    _check_split("flowers102", split, ("train", "test", "valid"))
    root = _root(root)
    folder = root / "flower_data" / ("train" if split == "train" else "valid")
    if not folder.is_dir():
        if not download:
            raise _missing("flowers102", folder,
                           f"This split is not on the official site: get it with download=True (CLI --download), "
                           f"which fetches {FLOWERS_PAPER_URL} (the 'flower_data' archive the GIF code used), or "
                           f"extract that archive into {root} yourself; or use 'flowers102-official' (the "
                           f"official setid.mat splits)")
        from torchvision.datasets.utils import download_and_extract_archive
        download_and_extract_archive(FLOWERS_PAPER_URL, str(root))
    names = _flowers_classes()
    samples = []
    for d in sorted((p for p in folder.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name)):
        label = int(d.name) - 1
        if not 0 <= label < len(names):
            raise ValueError(f"{d}: class folders must be 1..{len(names)}")
        samples += [(p, label) for p in sorted(d.iterdir()) if p.suffix.lower() in IMAGE_EXTENSIONS]
    ds = FileListDataset(samples, names)
    return ds, ds.classes


@register("flowers102-official")
def load_flowers102_official(split: str = "train", root=None, profile: str = "paper", download: bool = False, **_):
    """Flowers102 with the official ``setid.mat`` splits (``train``, ``val``, ``test``, ``trainval``).

    Reads ``root/flowers-102/{imagelabels.mat, setid.mat, jpg/}`` itself (torchvision's
    ``Flowers102`` insists on the official MD5s); torchvision is used for the download.
    """
    _check_split("flowers102-official", split, ("train", "val", "test", "trainval"))
    from scipy.io import loadmat

    root = _root(root)
    base = root / "flowers-102"
    files = [base / "imagelabels.mat", base / "setid.mat", base / "jpg"]
    if not all(p.exists() for p in files):
        if not download:
            raise _missing("flowers102-official", ", ".join(map(str, files)),
                           "Get it with download=True (CLI --download), i.e. torchvision.datasets.Flowers102("
                           "root, download=True), or fetch 102flowers.tgz, imagelabels.mat and setid.mat from "
                           f"https://www.robots.ox.ac.uk/~vgg/data/flowers/102/ into {base}")
        from torchvision.datasets import Flowers102
        Flowers102(str(root), download=True)
    labels = np.atleast_1d(loadmat(files[0], squeeze_me=True)["labels"]).astype(int) - 1
    setid = loadmat(files[1], squeeze_me=True)
    keys = {"train": ["trnid"], "val": ["valid"], "test": ["tstid"], "trainval": ["trnid", "valid"]}[split]
    ids = [int(i) for k in keys for i in np.atleast_1d(setid[k])]
    ds = FileListDataset([(base / "jpg" / f"image_{i:05d}.jpg", labels[i - 1]) for i in ids], _flowers_classes())
    return ds, ds.classes


@register("dtd")
def load_dtd(split: str = "train", root=None, profile: str = "paper", download: bool = False, partition: int = 1, **_):
    """DTD, partition 1 by default: ``train`` = train1 + val1 (3,760), ``test`` = test1 (1,880);
    ``val`` and ``train-only`` give the official halves. Through ``torchvision.datasets.DTD``."""
    _check_split("dtd", split, ("train", "test", "val", "train-only"))
    from torchvision.datasets import DTD

    root = _root(root)
    labels_dir = root / "dtd" / "dtd" / "labels"
    if not (labels_dir / f"train{partition}.txt").is_file():
        if not download:
            raise _missing("dtd", labels_dir / f"{{train,val,test}}{partition}.txt",
                           "Get it with download=True (CLI --download), i.e. torchvision.datasets.DTD(root, "
                           "download=True), or fetch https://www.robots.ox.ac.uk/~vgg/data/dtd/download/"
                           f"dtd-r1.0.1.tar.gz and extract it into {root / 'dtd'}")
        DTD(str(root), download=True)
    parts = {"train": ["train", "val"], "train-only": ["train"], "val": ["val"], "test": ["test"]}[split]
    sets = [DTD(str(root), split=p, partition=partition) for p in parts]
    classes = sorted(set().union(*(s.classes for s in sets)))
    samples = [(f, classes.index(s.classes[y])) for s in sets for f, y in zip(s._image_files, s._labels)]
    ds = FileListDataset(samples, classes)
    return ds, ds.classes


def _natural_key(name: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


@register("pets")
@register("oxford_pets")
def load_pets(split: str = "train", root=None, profile: str = "paper", download: bool = False,
              train_fraction: float = 0.52, **_):
    """Oxford-IIIT Pets as the GIF code splits it: all ``images/*.jpg`` grouped by breed (file name
    before the last ``_``); per breed the first ``int(n * 0.52)`` files are ``train`` (~3,842), the rest
    ``test``. The GIF code listed files in ``glob`` order (filesystem dependent); gifkit sorts them
    by name (natural order), so the counts match and the split is reproducible.
    Class order: sorted breed names, as the GIF code. The official split is ``pets-official``."""
    _check_split("pets", split, ("train", "test"))
    root = _root(root)
    images = _pets_images(root, "pets", download)
    by_breed: dict[str, list[Path]] = {}
    for p in sorted(images.glob("*.jpg"), key=lambda p: _natural_key(p.name)):
        by_breed.setdefault(p.stem.rsplit("_", 1)[0].replace("_", " "), []).append(p)
    classes = sorted(by_breed)
    samples = []
    for y, breed in enumerate(classes):
        files = by_breed[breed]
        cut = int(len(files) * train_fraction)
        samples += [(p, y) for p in (files[:cut] if split == "train" else files[cut:])]
    ds = FileListDataset(samples, classes)
    return ds, ds.classes


def _pets_images(root: Path, name: str, download: bool) -> Path:
    base = root / "oxford-iiit-pet"
    if not ((base / "images").is_dir() and (base / "annotations").is_dir()):
        if not download:
            raise _missing(name, f"{base / 'images'} and {base / 'annotations'}",
                           "Get it with download=True (CLI --download), i.e. torchvision.datasets.OxfordIIITPet("
                           "root, download=True), or fetch images.tar.gz and annotations.tar.gz from "
                           f"https://www.robots.ox.ac.uk/~vgg/data/pets/data/ and extract them into {base}")
        from torchvision.datasets import OxfordIIITPet
        OxfordIIITPet(str(root), download=True)
    return base / "images"


@register("pets-official")
def load_pets_official(split: str = "trainval", root=None, profile: str = "paper", download: bool = False, **_):
    """Oxford-IIIT Pets with the official ``trainval`` (3,680) / ``test`` (3,669) lists
    (``train`` is accepted for ``trainval``), through ``torchvision.datasets.OxfordIIITPet``."""
    _check_split("pets-official", split, ("train", "trainval", "test"))
    from torchvision.datasets import OxfordIIITPet

    root = _root(root)
    _pets_images(root, "pets-official", download)
    tv = OxfordIIITPet(str(root), split="test" if split == "test" else "trainval")
    ds = FileListDataset(list(zip(tv._images, tv._labels)), tv.classes)
    return ds, ds.classes


# ----------------------------------------------------------------------------- MedMNIST

_MED_TRAIN_SPLIT = {"pathmnist": "val", "breastmnist": "val", "organsmnist": "train"}


def _load_medmnist(flag: str, split: str, root, download: bool, size: int = 28):
    """A MedMNIST (v2/v3) 2D set through ``medmnist``'s dataset class, from ``root/<flag>[_<size>].npz``.

    ``split``: ``train`` (the paper's training set, see the module docstring), ``test``, or
    ``medmnist-train`` / ``medmnist-val`` / ``medmnist-test``. The images are wrapped in an
    :class:`ArrayDataset` because medmnist's ``__len__`` asserts the official split sizes.
    """
    import medmnist
    from medmnist.info import INFO

    allowed = ("train", "test", "medmnist-train", "medmnist-val", "medmnist-test")
    _check_split(flag, split, allowed)
    med_split = split.removeprefix("medmnist-") if split.startswith("medmnist-") else (
        _MED_TRAIN_SPLIT[flag] if split == "train" else "test")
    info = INFO[flag]
    suffix = "" if size in (None, 28) else f"_{size}"
    root = _root(root)
    npz = root / f"{flag}{suffix}.npz"
    if not npz.is_file():
        if not download:
            raise _missing(flag, npz, f"Get it with download=True (CLI --download), i.e. "
                           f"medmnist.{info['python_class']}(split='{med_split}', root='{root}', "
                           f"size={size or 28}, download=True), or fetch "
                           f"{info['url' + suffix]} (MD5 {info['MD5' + suffix]}) into {root}")
        root.mkdir(parents=True, exist_ok=True)
    cls = getattr(medmnist, info["python_class"])
    med = cls(split=med_split, root=str(root), download=download and not npz.is_file(), size=size)
    classes = [info["label"][str(i)] for i in range(len(info["label"]))]
    ds = ArrayDataset(med.imgs, med.labels, classes)
    return ds, ds.classes


@register("pathmnist")
def load_pathmnist(split: str = "train", root=None, profile: str = "paper", download: bool = False,
                   size: int = 28, **_):
    """PathMNIST (9 classes): ``train`` = MedMNIST ``val`` (10,004, the paper's set), ``test`` = ``test``."""
    return _load_medmnist("pathmnist", split, root, download, size)


@register("breastmnist")
def load_breastmnist(split: str = "train", root=None, profile: str = "paper", download: bool = False,
                     size: int = 28, **_):
    """BreastMNIST (2 classes): ``train`` = MedMNIST ``val`` (78, the paper's set), ``test`` = ``test``."""
    return _load_medmnist("breastmnist", split, root, download, size)


@register("organsmnist")
def load_organsmnist(split: str = "train", root=None, profile: str = "paper", download: bool = False,
                     size: int = 28, **_):
    """OrganSMNIST (11 classes): ``train`` = MedMNIST ``train`` (13,932), ``test`` = ``test``."""
    return _load_medmnist("organsmnist", split, root, download, size)


# ----------------------------------------------------------------------------- user data


@register("imagefolder")
def load_imagefolder(split: str = "train", root=None, profile: str = "paper", **_):
    """Any ``<root>/<class>/<image>`` folder, or ``<root>/<split>/<class>/<image>`` if that exists."""
    if root is None:
        raise ValueError("dataset 'imagefolder' needs root=<folder> (CLI --data-root), or pass the folder as the name")
    path = Path(root).expanduser()
    ds = ImageFolderDataset(path / split if (path / split).is_dir() else path)
    return ds, ds.classes


from gifkit.data import manifest as _manifest  # noqa: E402,F401  (registers "manifest")
