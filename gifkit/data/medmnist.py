"""The MedMNIST sets of the paper: PathMNIST, BreastMNIST, OrganSMNIST (macro accuracy).

The training splits are inferred from the paper's Table 11 sample counts (10,004 = PathMNIST ``val``,
78 = BreastMNIST ``val``, 13,940 = MedMNIST v1's OrganSMNIST ``train``); the raw splits are available as
``medmnist-train`` / ``medmnist-val`` / ``medmnist-test``.
"""
from __future__ import annotations

from gifkit.data.base import ArrayDataset, check_split, data_root, fetch, missing

__all__ = ["load_pathmnist", "load_breastmnist", "load_organsmnist"]

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
    check_split(flag, split, allowed)
    med_split = split.removeprefix("medmnist-") if split.startswith("medmnist-") else (
        _MED_TRAIN_SPLIT[flag] if split == "train" else "test")
    info = INFO[flag]
    suffix = "" if size in (None, 28) else f"_{size}"
    root = data_root(root)
    npz = root / f"{flag}{suffix}.npz"
    if not npz.is_file():
        if not download:
            raise missing(flag, npz, f"Get it with download=True (CLI --download), i.e. "
                           f"medmnist.{info['python_class']}(split='{med_split}', root='{root}', "
                           f"size={size or 28}, download=True), or fetch "
                           f"{info['url' + suffix]} (MD5 {info['MD5' + suffix]}) into {root}")
        root.mkdir(parents=True, exist_ok=True)
    cls = getattr(medmnist, info["python_class"])
    if not npz.is_file():
        fetch(flag, npz, f"fetch {info['url' + suffix]} (MD5 {info['MD5' + suffix]}) into {root}",
              lambda: cls(split=med_split, root=str(root), download=True, size=size))
    med = cls(split=med_split, root=str(root), download=False, size=size)
    classes = [info["label"][str(i)] for i in range(len(info["label"]))]
    ds = ArrayDataset(med.imgs, med.labels, classes)
    return ds, ds.classes


def load_pathmnist(split: str = "train", root=None, profile: str = "paper", download: bool = False,
                   size: int = 28, **_):
    """PathMNIST (9 classes): ``train`` = MedMNIST ``val`` (10,004, the paper's set), ``test`` = ``test``."""
    return _load_medmnist("pathmnist", split, root, download, size)


def load_breastmnist(split: str = "train", root=None, profile: str = "paper", download: bool = False,
                     size: int = 28, **_):
    """BreastMNIST (2 classes): ``train`` = MedMNIST ``val`` (78, the paper's set), ``test`` = ``test``."""
    return _load_medmnist("breastmnist", split, root, download, size)


def load_organsmnist(split: str = "train", root=None, profile: str = "paper", download: bool = False,
                     size: int = 28, **_):
    """OrganSMNIST (11 classes): ``train`` = MedMNIST ``train`` (13,932), ``test`` = ``test``."""
    return _load_medmnist("organsmnist", split, root, download, size)
