"""The paper's natural-image datasets with the paper's splits: Caltech101, Cars, Flowers102, DTD, Pets.

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

Class names are made readable for CLIP prompts (``_`` -> space). The on-disk layout under the root is the
one torchvision writes, so an existing torchvision download is reused.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from gifkit.data.base import FileListDataset, check_split, data_root, fetch, hash_subset, missing, readable
from gifkit.io.images import IMAGE_EXTENSIONS

__all__ = ["load_caltech101", "load_cars", "load_flowers102", "load_flowers102_official", "load_dtd", "load_pets",
           "load_pets_official"]

FLOWERS_PAPER_URL = "https://s3.amazonaws.com/content.udacity-data.com/courses/nd188/flower_data.zip"


_CALTECH_NAMES = {"BACKGROUND_Google": "background", "Faces": "face", "Faces_easy": "face easy",
                  "Leopards": "leopard", "Motorbikes": "motorbike", "airplanes": "airplane"}


def load_caltech101(split: str = "train", root=None, profile: str = "paper", download: bool = False,
                    per_class: int = 30, subset_seed: int = 0, **_):
    """Caltech-101, 102 classes (the 101 categories and BACKGROUND_Google, as the paper counts them).

    ``train``: per class the ``per_class`` = 30 images with the smallest
    ``derive_seed(subset_seed, "caltech101", "<folder>/<file>")`` (3,060); ``test``: the rest.
    Layout: ``root/caltech101/101_ObjectCategories/<folder>/image_NNNN.jpg`` (torchvision's).
    """
    check_split("caltech101", split, ("train", "test"))
    root = data_root(root)
    cats = root / "caltech101" / "101_ObjectCategories"
    if not cats.is_dir():
        if not download:
            raise missing("caltech101", cats, "Get it with download=True (CLI --download), i.e. "
                           "torchvision.datasets.Caltech101(root, download=True) (needs gdown), or fetch "
                           "https://data.caltech.edu/records/mzrjq-6wc02/files/caltech-101.zip and extract "
                           f"101_ObjectCategories.tar.gz into {root / 'caltech101'}")
        from torchvision.datasets import Caltech101
        fetch("caltech101", cats, "fetch https://data.caltech.edu/records/mzrjq-6wc02/files/caltech-101.zip and "
              f"extract 101_ObjectCategories.tar.gz into {root / 'caltech101'}",
              lambda: Caltech101(str(root), download=True))
    folders = sorted(p.name for p in cats.iterdir() if p.is_dir())
    samples = [(p, y) for y, f in enumerate(folders) for p in sorted((cats / f).iterdir())
               if p.suffix.lower() in IMAGE_EXTENSIONS]
    keys = [f"{Path(p).parent.name}/{Path(p).name}" for p, _ in samples]
    train = set(hash_subset(keys, [y for _, y in samples], per_class, subset_seed, "caltech101"))
    chosen = [s for i, s in enumerate(samples) if (i in train) == (split == "train")]
    ds = FileListDataset(chosen, [_CALTECH_NAMES.get(f, readable(f)) for f in folders])
    return ds, ds.classes


def load_cars(split: str = "train", root=None, profile: str = "paper", download: bool = False, **_):
    """Stanford Cars through ``torchvision.datasets.StanfordCars`` (official train 8,144 / test 8,041)."""
    check_split("cars", split, ("train", "test"))
    root = data_root(root)
    base = root / "stanford_cars"
    ann = base / "devkit" / "cars_train_annos.mat" if split == "train" else base / "cars_test_annos_withlabels.mat"
    needed = [base / "devkit" / "cars_meta.mat", ann, base / ("cars_train" if split == "train" else "cars_test")]
    if not all(p.exists() for p in needed):
        raise missing("cars", ", ".join(str(p) for p in needed),
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


def load_flowers102(split: str = "train", root=None, profile: str = "paper", download: bool = False, **_):
    """Flowers102 as the GIF code trains it: ``root/flower_data/{train,valid}/<1..102>/*.jpg``
    (the widely mirrored "flower_data" split: 6,552 train / 818 valid); ``test`` = ``valid``.
    Folder ``k`` is the official label ``k``; class names are torchvision's Flowers102 names.
    The official split is ``flowers102-official``."""
    check_split("flowers102", split, ("train", "test", "valid"))
    root = data_root(root)
    folder = root / "flower_data" / ("train" if split == "train" else "valid")
    if not folder.is_dir():
        if not download:
            raise missing("flowers102", folder,
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


def load_flowers102_official(split: str = "train", root=None, profile: str = "paper", download: bool = False, **_):
    """Flowers102 with the official ``setid.mat`` splits (``train``, ``val``, ``test``, ``trainval``).

    Reads ``root/flowers-102/{imagelabels.mat, setid.mat, jpg/}`` itself (torchvision's
    ``Flowers102`` insists on the official MD5s); torchvision is used for the download.
    """
    check_split("flowers102-official", split, ("train", "val", "test", "trainval"))
    from scipy.io import loadmat

    root = data_root(root)
    base = root / "flowers-102"
    files = [base / "imagelabels.mat", base / "setid.mat", base / "jpg"]
    if not all(p.exists() for p in files):
        if not download:
            raise missing("flowers102-official", ", ".join(map(str, files)),
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


def load_dtd(split: str = "train", root=None, profile: str = "paper", download: bool = False, partition: int = 1, **_):
    """DTD, partition 1 by default: ``train`` = train1 + val1 (3,760), ``test`` = test1 (1,880);
    ``val`` and ``train-only`` give the official halves. Through ``torchvision.datasets.DTD``."""
    check_split("dtd", split, ("train", "test", "val", "train-only"))
    from torchvision.datasets import DTD

    root = data_root(root)
    labels_dir = root / "dtd" / "dtd" / "labels"
    if not (labels_dir / f"train{partition}.txt").is_file():
        if not download:
            raise missing("dtd", labels_dir / f"{{train,val,test}}{partition}.txt",
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


def load_pets(split: str = "train", root=None, profile: str = "paper", download: bool = False,
              train_fraction: float = 0.52, **_):
    """Oxford-IIIT Pets as the GIF code splits it: all ``images/*.jpg`` grouped by breed (file name
    before the last ``_``); per breed the first ``int(n * 0.52)`` files are ``train`` (~3,842), the rest
    ``test``. The GIF code listed files in ``glob`` order (filesystem dependent); gifkit sorts them
    by name (natural order), so the counts match and the split is reproducible.
    Class order: sorted breed names, as the GIF code. The official split is ``pets-official``."""
    check_split("pets", split, ("train", "test"))
    root = data_root(root)
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
            raise missing(name, f"{base / 'images'} and {base / 'annotations'}",
                           "Get it with download=True (CLI --download), i.e. torchvision.datasets.OxfordIIITPet("
                           "root, download=True), or fetch images.tar.gz and annotations.tar.gz from "
                           f"https://www.robots.ox.ac.uk/~vgg/data/pets/data/ and extract them into {base}")
        from torchvision.datasets import OxfordIIITPet
        OxfordIIITPet(str(root), download=True)
    return base / "images"


def load_pets_official(split: str = "trainval", root=None, profile: str = "paper", download: bool = False, **_):
    """Oxford-IIIT Pets with the official ``trainval`` (3,680) / ``test`` (3,669) lists
    (``train`` is accepted for ``trainval``), through ``torchvision.datasets.OxfordIIITPet``."""
    check_split("pets-official", split, ("train", "trainval", "test"))
    from torchvision.datasets import OxfordIIITPet

    root = data_root(root)
    _pets_images(root, "pets-official", download)
    tv = OxfordIIITPet(str(root), split="test" if split == "test" else "trainval")
    ds = FileListDataset(list(zip(tv._images, tv._labels)), tv.classes)
    return ds, ds.classes
