"""Dataset registry: ``load_dataset(name, split, root=None, profile=...) -> (dataset, class_names)``.

Every dataset yields ``(PIL RGB image, int label)`` and has ``.targets``.
Built in: ``smoke`` (tiny synthetic shapes, no download) and any image folder
path (``<root>/<class>/<image>``, or ``<root>/<split>/<class>/<image>``).
Further datasets register themselves with :func:`register`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from torch.utils.data import Dataset

from gifkit.data.folder import ImageFolderDataset
from gifkit.data.images import BadImage, open_rgb, to_rgb
from gifkit.data.synthetic import SyntheticShapes

__all__ = ["load_dataset", "register", "available_datasets", "ImageFolderDataset", "SyntheticShapes",
           "BadImage", "open_rgb", "to_rgb", "PROFILES"]

PROFILES = ("smoke", "mini", "paper")
Loader = Callable[..., "tuple[Dataset, list[str]]"]
_REGISTRY: dict[str, Loader] = {}


def register(name: str) -> Callable[[Loader], Loader]:
    """Decorator: ``@register("cifar100s") def load(split, root, profile, **kw) -> (dataset, class_names)``."""

    def deco(fn: Loader) -> Loader:
        _REGISTRY[name.lower()] = fn
        return fn

    return deco


def available_datasets() -> list[str]:
    """Registered dataset names (an image-folder path is always accepted too)."""
    return sorted(_REGISTRY)


def load_dataset(name: str, split: str = "train", root: str | Path | None = None, profile: str = "smoke",
                 **kwargs) -> tuple[Dataset, list[str]]:
    """Load a dataset split by registered name or folder path; returns ``(dataset, class_names)``."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    key = str(name).lower()
    if key in _REGISTRY:
        return _REGISTRY[key](split=split, root=root, profile=profile, **kwargs)
    path = Path(name).expanduser()
    if path.is_dir():
        sub = path / split
        ds = ImageFolderDataset(sub if sub.is_dir() else path, **kwargs)
        return ds, ds.classes
    raise ValueError(f"unknown dataset {name!r}: not a registered name ({', '.join(available_datasets())}) "
                     f"nor an existing folder of <class>/<image> files")


@register("smoke")
def _smoke(split: str, root=None, profile: str = "smoke", **kwargs):
    ds = SyntheticShapes(split=split, **kwargs)
    return ds, ds.classes


from gifkit.data import paper as _paper  # noqa: E402,F401  (registers the paper's datasets, manifest, imagefolder)


from gifkit.data import fashion as _fashion  # noqa: E402,F401  (registers "fashion-mnist" and "mnist")
