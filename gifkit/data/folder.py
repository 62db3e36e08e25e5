"""A user's image folder (``<root>/<class>/<image>``), tolerant of bad files.

Like torchvision's ``ImageFolder`` but: every image is returned as 8-bit RGB
whatever its mode (grey, RGBA, palette, 16-bit); empty class folders are kept
(so labels stay stable) and listed in ``empty_classes``; unreadable files raise
:class:`gifkit.io.images.BadImage` at access time, which the expansion loop
catches, skips and reports.
"""
from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

__all__ = ["ImageFolderDataset", "load_imagefolder"]

from gifkit.io.images import IMAGE_EXTENSIONS, open_rgb


class ImageFolderDataset(Dataset):
    """``(PIL RGB image, label)`` items from ``root/<class_name>/*``; ``.classes``, ``.targets``, ``.samples``."""

    def __init__(self, root: str | Path, classes: list[str] | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"image folder {str(self.root)!r} does not exist")
        found = sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if classes is None:
            classes = found
        else:
            unknown = sorted(set(found) - set(classes))
            if unknown:
                raise ValueError(f"folders {unknown} in {str(self.root)!r} are not among the given class names {classes}")
        if not classes:
            raise ValueError(f"{str(self.root)!r} has no class folders; expected <root>/<class_name>/<image files>")
        self.classes = list(classes)
        self.samples: list[tuple[str, int]] = []
        self.empty_classes: list[str] = []
        for label, name in enumerate(self.classes):
            d = self.root / name
            files = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()) if d.is_dir() else []
            if not files:
                self.empty_classes.append(name)
            self.samples += [(str(p), label) for p in files]
        if not self.samples:
            raise ValueError(f"{str(self.root)!r} holds no image files with extensions {IMAGE_EXTENSIONS}")
        self.targets = [label for _, label in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        path, label = self.samples[i]
        return open_rgb(path), label


def load_imagefolder(split: str = "train", root=None, profile: str = "paper", **_):
    """Any ``<root>/<class>/<image>`` folder, or ``<root>/<split>/<class>/<image>`` if that exists."""
    if root is None:
        raise ValueError("dataset 'imagefolder' needs root=<folder> (CLI --data-root), or pass the folder as the name")
    path = Path(root).expanduser()
    ds = ImageFolderDataset(path / split if (path / split).is_dir() else path)
    return ds, ds.classes
