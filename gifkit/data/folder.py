"""A user's image folder (``<root>/<class>/<image>``), tolerant of bad files.

Like torchvision's ``ImageFolder`` but: every image is returned as 8-bit RGB
whatever its mode (grey, RGBA, palette, 16-bit); empty class folders are kept
(so labels stay stable) and listed in ``empty_classes``; unreadable files raise
:class:`gifkit.io.images.BadImage` at access time, which the expansion loop
catches, skips and reports. What is not read is said, never dropped silently:
hidden folders (``.name``, ``..x``), files beside the class folders, folders
nested inside a class folder, files with other extensions and class folders
that cannot be listed (permissions) are listed in ``ignored`` and named in one
warning, as are entries that are not regular files (a FIFO, a socket, a device, a broken symlink), which are
never opened.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

from torch.utils.data import Dataset

__all__ = ["ImageFolderDataset", "is_split_folder", "load_imagefolder"]

from gifkit.io.images import IMAGE_EXTENSIONS, not_regular, open_rgb


def _entries(folder: Path) -> list[os.DirEntry]:
    with os.scandir(folder) as it:
        return sorted(it, key=lambda e: e.name)


class ImageFolderDataset(Dataset):
    """``(PIL RGB image, label)`` items from ``root/<class_name>/*``; ``.classes``, ``.targets``, ``.samples``;
    ``.ignored``: ``[(path, why), ...]`` of what was not read."""

    def __init__(self, root: str | Path, classes: list[str] | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"image folder {str(self.root)!r} does not exist")
        self.ignored: list[tuple[str, str]] = []
        try:
            top = _entries(self.root)
        except OSError as e:
            raise OSError(e.errno, f"cannot list the image folder {str(self.root)!r}: {e.strerror}") from e
        found = []
        for e in top:
            if e.is_dir():
                if e.name.startswith("."):
                    self.ignored.append((e.path, "hidden folder"))
                else:
                    found.append(e.name)
            elif not e.name.startswith("."):
                self.ignored.append((e.path, "a file beside the class folders"))
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
            files = []
            d = self.root / name
            try:
                entries = _entries(d) if d.is_dir() else []
            except OSError as e:
                self.ignored.append((str(d), f"class folder cannot be listed: {e.strerror}"))
                entries = []
            for e in entries:
                why = not_regular(e.path)  # asked without opening: a FIFO would block the read
                if e.is_dir():
                    self.ignored.append((e.path, "nested folder (only <root>/<class>/<image> files are read)"))
                elif why is not None and not e.name.startswith("."):
                    self.ignored.append((e.path, f"{why}, not a regular file"))
                elif os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS:
                    files.append(e.path)
                elif not e.name.startswith("."):
                    self.ignored.append((e.path, "not an image file extension"))
            if not files:
                self.empty_classes.append(name)
            self.samples += [(p, label) for p in files]
        if self.ignored:
            shown = "; ".join(f"{p} ({why})" for p, why in self.ignored[:5])
            more = f"; and {len(self.ignored) - 5} more" if len(self.ignored) > 5 else ""
            warnings.warn(f"image folder {str(self.root)!r}: {len(self.ignored)} entries not read: {shown}{more}",
                          stacklevel=2)
        if not self.samples:
            raise ValueError(f"{str(self.root)!r} holds no image files with extensions {IMAGE_EXTENSIONS}")
        self.targets = [label for _, label in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        path, label = self.samples[i]
        return open_rgb(path), label


def is_split_folder(folder: Path) -> bool:
    """True when ``folder`` holds class folders and no images of its own: ``<root>/<split>/<class>/<image>``,
    not a class folder that happens to be named ``train`` or ``test``."""
    try:
        entries = _entries(folder)
    except OSError:
        return False
    has_folders = any(e.is_dir() and not e.name.startswith(".") for e in entries)
    has_images = any(not e.is_dir() and os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS for e in entries)
    return has_folders and not has_images


def load_imagefolder(split: str = "train", root=None, profile: str = "paper", **_):
    """Any ``<root>/<class>/<image>`` folder, or ``<root>/<split>/<class>/<image>`` if ``<root>/<split>`` holds
    class folders (:func:`is_split_folder`; a class folder named like the split is a class)."""
    if root is None:
        raise ValueError("dataset 'imagefolder' needs root=<folder> (CLI --data-root), or pass the folder as the name")
    path = Path(root).expanduser()
    ds = ImageFolderDataset(path / split if is_split_folder(path / split) else path)
    return ds, ds.classes
