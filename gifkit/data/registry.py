"""The dataset registry: names -> loaders, and :func:`load_dataset`.

A loader is ``loader(split=..., root=..., profile=..., **kwargs) -> (dataset, class_names)``; the dataset
yields ``(PIL RGB image, int label)`` and has ``.targets``. :mod:`gifkit.data` registers every built-in
loader when it is imported; :func:`register` adds a user's and refuses a name that is taken.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from torch.utils.data import Dataset

from gifkit.config import get_profile
from gifkit.data.folder import ImageFolderDataset, is_split_folder

__all__ = ["Loader", "register", "registered", "available_datasets", "load_dataset"]

Loader = Callable[..., "tuple[Dataset, list[str]]"]
_REGISTRY: dict[str, Loader] = {}


def register(name: str, loader: Loader | None = None):
    """Register ``loader`` under ``name`` (case-insensitive); as a decorator without ``loader``.

    A name that is taken raises ``ValueError`` (unregister nothing silently: pick another name).
    """
    def add(fn: Loader) -> Loader:
        key = str(name).lower()
        if not key:
            raise ValueError("a dataset name must not be empty")
        if key in _REGISTRY:
            raise ValueError(f"dataset name {name!r} is taken (by {_REGISTRY[key].__module__}."
                             f"{_REGISTRY[key].__qualname__}); register under another name")
        _REGISTRY[key] = fn
        return fn

    return add if loader is None else add(loader)


def registered(name: str) -> bool:
    """True when ``name`` is a registered dataset name."""
    return str(name).lower() in _REGISTRY


def available_datasets() -> list[str]:
    """Registered dataset names (an image-folder path is always accepted too)."""
    return sorted(_REGISTRY)


def load_dataset(name: str, split: str = "train", root: str | Path | None = None, profile: str = "smoke",
                 **kwargs) -> tuple[Dataset, list[str]]:
    """Load a dataset split by registered name or folder path; returns ``(dataset, class_names)``."""
    get_profile(profile)
    key = str(name).lower()
    if key in _REGISTRY:
        return _REGISTRY[key](split=split, root=root, profile=profile, **kwargs)
    path = Path(name).expanduser()
    if path.is_dir():
        sub = path / split
        ds = ImageFolderDataset(sub if is_split_folder(sub) else path, **kwargs)
        return ds, ds.classes
    raise ValueError(f"unknown dataset {name!r}: not a registered name ({', '.join(available_datasets())}) "
                     f"nor an existing folder of <class>/<image> files")
