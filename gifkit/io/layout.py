"""Names and paths in an expansion folder: its record files, its class folders, the paths ``metadata.csv`` may
name, and the class list ``classes.json`` holds."""
from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
from pathlib import Path, PurePosixPath
from typing import Sequence

from gifkit.errors import Damaged, Refused
from gifkit.io.files import read_json
from gifkit.io.metadata import METADATA
from gifkit.io.owner import own_file

__all__ = ["CLASSES", "PARTS", "RUN_FILE", "SKIPPED_FILE", "RECORDS", "STORE_FILE", "safe_dirname", "read_classes",
           "classes_bytes", "refuse_symlink", "store_parts", "inside", "describe_difference"]

CLASSES = "classes.json"
PARTS = ".parts"
RUN_FILE = "run.json"  # the settings of the run a folder holds
SKIPPED_FILE = "skipped.json"  # [[seed index, reason], ...] of unreadable seeds
RECORDS = (RUN_FILE, CLASSES, METADATA, SKIPPED_FILE)
_ILLEGAL = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}


def safe_dirname(class_name: str) -> str:
    """A folder name for ``class_name`` that is valid on Linux, macOS and Windows.

    Characters illegal on common filesystems (path separators, NUL and control
    characters, ``<>:"|?*``) become ``_``; leading/trailing spaces and dots are
    stripped (no hidden folders, no ``..``); Windows device names get a ``_``
    suffix; the result is NFC-normalised, never empty (``"_"``) and at most
    ~200 bytes (longer names are cut and suffixed with a hash). Distinct
    typical class names stay distinct; :class:`ExpansionStore` refuses class
    lists whose folder names would collide. Class names are kept verbatim in
    ``metadata.csv`` (``class_name``) and ``classes.json``; only folders use this.
    """
    name = _ILLEGAL.sub("_", unicodedata.normalize("NFC", str(class_name))).strip(" .")
    if not name:
        return "_"
    if name.split(".")[0].upper() in _RESERVED:
        name += "_"
    if len(name.encode()) > 200:
        digest = hashlib.blake2b(str(class_name).encode(), digest_size=4).hexdigest()
        name = name.encode()[:180].decode(errors="ignore").rstrip(" .") + "_" + digest
    return name


def read_classes(root: str | os.PathLike) -> list[str]:
    """The class names (label order) of an expansion folder, from ``classes.json``."""
    path = Path(root) / CLASSES
    if own_file(path) is None:
        raise FileNotFoundError(f"no {CLASSES} in {root}: not a gifkit expansion folder")
    names = read_json(path, what="the class names of an expansion")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise Damaged(f"{path} must hold a JSON list of class names")
    return names


def classes_bytes(names: Sequence[str]) -> bytes:
    """The bytes of ``classes.json`` for ``names``."""
    return (json.dumps(list(names), ensure_ascii=False, indent=1) + "\n").encode("utf-8")


STORE_FILE = re.compile(r"\d{6}_\d{3}\.png")  # the file names ExpansionStore.relpath makes


def refuse_symlink(path: str | os.PathLike) -> None:
    """Raise :class:`~gifkit.errors.Refused` when ``path`` is a symlink: gifkit never reads or writes through a
    symlink inside an expansion folder (it could lead anywhere)."""
    path = Path(path)
    if path.is_symlink():
        own_file(path)  # raises, naming it and its target


def store_parts(root: str | os.PathLike, relpath: str) -> tuple[str, ...]:
    """The parts of ``relpath`` (a ``file_name`` of ``metadata.csv``, forward slashes); refused
    (:class:`~gifkit.errors.Refused`, naming it) when it is empty, absolute, climbs out with ``..`` or holds a
    backslash. The one check of a path inside an expansion folder."""
    text = str(relpath)
    rel = PurePosixPath(text)
    if rel.is_absolute() or ".." in rel.parts or "\\" in text or not rel.parts:
        raise Refused(f"{Path(root) / METADATA}: file_name {relpath!r} leaves the expansion folder; gifkit reads "
                      f"only files inside it (a damaged or hostile metadata.csv?)")
    return rel.parts


def inside(root: str | os.PathLike, relpath: str) -> Path:
    """The path of ``relpath`` under ``root`` (:func:`store_parts`); refused as well when it resolves (through
    symlinks) outside ``root``."""
    root = Path(root)
    path = root.joinpath(*store_parts(root, relpath))
    real = os.path.realpath(path)
    base = os.path.realpath(root)
    if os.path.commonpath([real, base]) != base:
        raise Refused(f"{path} leads outside {root} (to {real}) through a symlink; gifkit reads only files "
                      f"inside an expansion folder")
    return path


def describe_difference(old: list[str], new: list[str]) -> str:
    if len(old) != len(new):
        return f"{len(old)} classes there vs {len(new)} here"
    i = next(i for i, (a, b) in enumerate(zip(old, new)) if a != b)
    return f"label {i} is {old[i]!r} there vs {new[i]!r} here"
