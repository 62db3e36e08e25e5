"""The expanded dataset on disk: ImageFolder layout plus ``metadata.csv``.

Layout of an expansion folder ``root``::

    root/classes.json           class names in label order (written once)
    root/<class_dir>/<seed>_<variant>.png
    root/metadata.csv           one row per generated image (after finalize)
    root/.parts/<batch_id>.csv  per-batch rows, until finalize merges them

``root`` loads with ``torchvision.datasets.ImageFolder`` (its labels follow the
sorted folder names, not necessarily gifkit's label order; ``metadata.csv`` and
:class:`ExpandedDataset` carry the true labels) and with Hugging Face
``load_dataset("imagefolder", data_dir=root)``: column ``file_name`` holds the
path relative to ``root`` with forward slashes.

Every write is atomic (temp file in the same folder, then ``os.replace``), so an
interrupted run never leaves a truncated file under a final name, and a re-run
skips what exists. Nothing is read or written through a symlink inside the folder
(a symlinked class folder, ``.parts`` or image is refused, naming it), and no
``metadata.csv`` path may leave the folder. Work is done in *batches*: a run writes a batch's images,
then the batch's part file; :meth:`ExpansionStore.finalize` merges all parts
into ``metadata.csv`` with rows sorted by ``(seed_index, variant)`` and a fixed
column order, so the bytes do not depend on which batch, shard or process
finished first.

This module is one cohesive thing: the on-disk format of an expansion, its
writer, and the guards that keep reads and writes inside the folder.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import re
import unicodedata
import warnings
from pathlib import Path, PurePath, PurePosixPath
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image

from gifkit.errors import Damaged, Refused
from gifkit.io.files import atomic_save_image, atomic_write_bytes, is_temp_name, make_dirs, read_json, \
    remove_stale_temps

__all__ = [
    "FIXED_COLUMNS", "METADATA", "CLASSES", "PARTS", "RUN_FILE", "SKIPPED_FILE",
    "safe_dirname", "ExpansionStore", "read_metadata", "read_classes", "describe_difference", "write_subset",
    "STORE_FILE", "refuse_symlink", "inside", "has_outputs", "clear_store",
]

METADATA = "metadata.csv"
CLASSES = "classes.json"
PARTS = ".parts"
RUN_FILE = "run.json"  # the settings of the run a folder holds
SKIPPED_FILE = "skipped.json"  # [[seed index, reason], ...] of unreadable seeds
FIXED_COLUMNS = ("file_name", "label", "class_name", "seed_index", "seed_path", "variant", "method")
_REQUIRED = ("file_name", "label", "seed_index", "variant")
_TEXT_COLUMNS = ("file_name", "class_name", "seed_path", "method", "prompt")
_ILLEGAL = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
_BATCH_ID = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]*")


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


def _cell(value: Any) -> str:
    """One metadata value as CSV text: floats as ``%.6g``, None/NaN as empty."""
    if value is None:
        return ""
    if isinstance(value, (np.generic, torch.Tensor)) and np.ndim(value) == 0:
        value = value.item()
    if isinstance(value, float):
        return "" if math.isnan(value) else "%.6g" % value
    if isinstance(value, PurePath):
        return value.as_posix()
    return str(value)


def _order_columns(columns: Any) -> list[str]:
    rest = sorted(set(columns) - set(FIXED_COLUMNS))
    return [*FIXED_COLUMNS, *rest]


def _csv_bytes(table: pd.DataFrame) -> bytes:
    return table.to_csv(index=False, lineterminator="\n", float_format="%.6g").encode("utf-8")


def _read_text_csv(path: Path) -> pd.DataFrame:
    """A CSV with every cell as text (lossless, so merging never reformats values)."""
    return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")


def _parse_metadata(src: Any) -> pd.DataFrame:
    """Typed metadata: numbers as numbers, empty cells as NaN, names as text."""
    dtype = {c: str for c in _TEXT_COLUMNS}  # absent columns are ignored
    return pd.read_csv(src, dtype=dtype, keep_default_na=False, na_values=[""], encoding="utf-8")


def _damaged_csv(path: Path, err: Exception) -> Damaged:
    return Damaged(f"{path} is damaged ({type(err).__name__}: {str(err).strip().splitlines()[0] if str(err) else ''}); "
                   f"delete it and re-run the expansion: the images are kept and it is rebuilt")


def read_metadata(root: str | os.PathLike) -> pd.DataFrame:
    """Load ``<root>/metadata.csv`` as a typed DataFrame (a damaged file raises :class:`~gifkit.errors.Damaged`
    naming it; a symlink is refused)."""
    path = Path(root) / METADATA
    refuse_symlink(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no {METADATA} in {root}: run `gifkit expand` on it (which finalizes) "
            f"or call ExpansionStore(root, class_names).finalize() first")
    try:
        return _parse_metadata(path)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as err:
        raise _damaged_csv(path, err) from err


def read_classes(root: str | os.PathLike) -> list[str]:
    """The class names (label order) of an expansion folder, from ``classes.json``."""
    path = Path(root) / CLASSES
    refuse_symlink(path)
    if not path.is_file():
        raise FileNotFoundError(f"no {CLASSES} in {root}: not a gifkit expansion folder")
    names = read_json(path, what="the class names of an expansion")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise Damaged(f"{path} must hold a JSON list of class names")
    return names


STORE_FILE = re.compile(r"\d{6}_\d{3}\.png")  # the file names ExpansionStore.relpath makes


def refuse_symlink(path: str | os.PathLike) -> None:
    """Raise :class:`~gifkit.errors.Refused` when ``path`` is a symlink: gifkit never reads or writes through a
    symlink inside an expansion folder (it could lead anywhere)."""
    path = Path(path)
    if path.is_symlink():
        raise Refused(f"{path} is a symlink (to {os.readlink(path)}); gifkit does not read or write through "
                      f"symlinks inside an expansion folder: replace it by a real folder or file, or use "
                      f"another output folder")


def inside(root: str | os.PathLike, relpath: str) -> Path:
    """The path of ``relpath`` (a ``file_name`` of ``metadata.csv``) under ``root``; refused
    (:class:`~gifkit.errors.Refused`, naming it) when it is absolute, climbs out with ``..``, or resolves
    (through symlinks) outside ``root``."""
    root = Path(root)
    rel = PurePosixPath(str(relpath))
    if rel.is_absolute() or ".." in rel.parts or "\\" in str(relpath) or not rel.parts:
        raise Refused(f"{root / METADATA}: file_name {relpath!r} leaves the expansion folder; gifkit reads only "
                      f"files inside it (a damaged or hostile metadata.csv?)")
    path = root.joinpath(*rel.parts)
    real = os.path.realpath(path)
    base = os.path.realpath(root)
    if os.path.commonpath([real, base]) != base:
        raise Refused(f"{path} leads outside {root} (to {real}) through a symlink; gifkit reads only files "
                      f"inside an expansion folder")
    return path


def _gifkit_files(root: Path) -> Iterator[Path]:
    """The files an expansion run makes in ``root``: images with store names in its class folders, the
    records, ``.parts`` and temp files (never anything else a user keeps there)."""
    for name in (METADATA, CLASSES, RUN_FILE, SKIPPED_FILE):
        if (root / name).is_file() or (root / name).is_symlink():
            yield root / name
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return
    for e in entries:
        if e.is_file(follow_symlinks=False) and is_temp_name(e.name):
            yield Path(e.path)
        elif e.is_dir(follow_symlinks=False):
            for f in sorted(os.scandir(e.path), key=lambda f: f.name):
                if f.is_file(follow_symlinks=False) and (e.name == PARTS or STORE_FILE.fullmatch(f.name)
                                                         or is_temp_name(f.name)):
                    yield Path(f.path)


def has_outputs(root: str | os.PathLike) -> bool:
    """True when ``root`` holds images, part files or ``metadata.csv`` of an expansion (not only records)."""
    root = Path(root)
    return any(p.name not in (CLASSES, RUN_FILE, SKIPPED_FILE) and not is_temp_name(p.name)
               for p in _gifkit_files(root))


def clear_store(root: str | os.PathLike) -> int:
    """Delete what an expansion run made in ``root`` (its images, records, ``.parts``; class folders left
    empty), and nothing else; returns the number of files removed. ``gifkit expand --force-new``."""
    root = Path(root)
    files = list(_gifkit_files(root))
    for p in files:
        p.unlink(missing_ok=True)
    for d in {p.parent for p in files} - {root}:
        with contextlib.suppress(OSError):
            d.rmdir()
    return len(files)


def describe_difference(old: list[str], new: list[str]) -> str:
    if len(old) != len(new):
        return f"{len(old)} classes there vs {len(new)} here"
    i = next(i for i, (a, b) in enumerate(zip(old, new)) if a != b)
    return f"label {i} is {old[i]!r} there vs {new[i]!r} here"


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Exclusive advisory lock on ``folder`` (POSIX); a no-op where unsupported."""
    try:
        import fcntl
        fd = os.open(folder, os.O_RDONLY)
    except (ImportError, OSError):
        fd = None
    if fd is None:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


class ExpansionStore:
    """Writer for one expansion folder (see the module docstring for the layout).

    Several processes (shards) may write into the same folder at once as long
    as they write disjoint batches; any of them may call :meth:`finalize`.
    """

    def __init__(self, root: str | os.PathLike, class_names: Sequence[str]):
        names = list(class_names)
        if not names or not all(isinstance(n, str) for n in names):
            raise ValueError("class_names must be a non-empty list of strings")
        folders: dict[str, str] = {}
        for name in names:
            key = safe_dirname(name).casefold()  # case-insensitive filesystems too
            if key in folders:
                raise ValueError(f"class names {folders[key]!r} and {name!r} map to the same folder "
                                 f"{safe_dirname(name)!r}; rename one of them")
            folders[key] = name
        self.root = Path(root)
        self.class_names = names
        self.dirnames = [safe_dirname(n) for n in names]
        self.parts_dir = self.root / PARTS
        if self.root.exists() and not self.root.is_dir():
            raise FileExistsError(f"{self.root} exists and is not a folder: give another output folder")
        make_dirs(self.root)
        for name in {*self.dirnames, PARTS, METADATA, CLASSES, RUN_FILE, SKIPPED_FILE}:
            refuse_symlink(self.root / name)
        classes = self.root / CLASSES
        if classes.exists():
            old = read_classes(self.root)
            if old != names:
                raise Refused(
                    f"{classes} was written for another class list ({describe_difference(old, names)}); "
                    f"this folder belongs to another dataset or class order: use a new output folder")
        else:
            text = json.dumps(names, ensure_ascii=False, indent=1) + "\n"
            atomic_write_bytes(classes, text.encode("utf-8"), fsync=True)
        self._made_dirs: set[Path] = set()
        self._finalized: set[str] = set()
        self._finalized_stamp: int | None = None

    def __repr__(self) -> str:
        return f"ExpansionStore({str(self.root)!r}, {len(self.class_names)} classes)"

    def relpath(self, label: int, seed_index: int, variant: int) -> str:
        """``<class_dir>/<seed_index:06d>_<variant:03d>.png`` (relative to root, forward slashes)."""
        return f"{self.dirnames[label]}/{seed_index:06d}_{variant:03d}.png"

    def path(self, relpath: str) -> Path:
        """Absolute path of ``relpath``; rejects paths that would leave the root."""
        rel = PurePosixPath(relpath)
        if rel.is_absolute() or ".." in rel.parts or "\\" in relpath or not rel.parts:
            raise ValueError(f"not a relative path inside the store: {relpath!r}")
        return self.root.joinpath(*rel.parts)

    def exists(self, relpath: str) -> bool:
        """True if the file is present and non-empty (a symlink there is refused)."""
        path = self.path(relpath)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return False
        if not os.path.isfile(path) or os.path.islink(path):
            refuse_symlink(path)
            raise Refused(f"{path} is not a file; remove it and re-run")
        return st.st_size > 0

    def remove_stale_temps(self) -> int:
        """Remove the temp files that killed writers left in the folder, its class folders and ``.parts``
        (:func:`gifkit.io.files.remove_stale_temps`); returns how many."""
        folders = [self.root, self.parts_dir, *(self.root / d for d in set(self.dirnames))]
        return sum(remove_stale_temps(f) for f in folders if f.is_dir() and not f.is_symlink())

    def _part_path(self, batch_id: str) -> Path:
        if not isinstance(batch_id, str) or not _BATCH_ID.fullmatch(batch_id):
            raise ValueError(f"batch_id must match [A-Za-z0-9_-][A-Za-z0-9_.-]*, got {batch_id!r}")
        return self.parts_dir / f"{batch_id}.csv"

    def _finalized_files(self) -> set[str]:
        """``file_name``s in metadata.csv (cached; reloaded when the file changes)."""
        try:
            stamp = (self.root / METADATA).stat().st_mtime_ns
        except FileNotFoundError:
            return set()
        if stamp != self._finalized_stamp:
            try:
                col = pd.read_csv(self.root / METADATA, usecols=["file_name"], dtype=str, keep_default_na=False)
            except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as err:
                raise _damaged_csv(self.root / METADATA, err) from err
            self._finalized, self._finalized_stamp = set(col["file_name"]), stamp
        return self._finalized

    def batch_done(self, batch_id: str, relpaths: Sequence[str]) -> bool:
        """True iff the batch's rows are recorded and every one of its images exists.

        Rows count as recorded when the part file exists, or, after
        :meth:`finalize` folded the part into metadata.csv, when every relpath
        is listed there.
        """
        if not self._part_path(batch_id).is_file():
            if not relpaths or not set(relpaths) <= self._finalized_files():
                return False
        return all(self.exists(r) for r in relpaths)

    def save_image(self, relpath: str, image: Image.Image) -> bool:
        """Write the image atomically; if it already exists, keep it and return False."""
        path = self.path(relpath)
        if self.exists(relpath):
            return False
        if path.parent not in self._made_dirs:
            refuse_symlink(path.parent)
            make_dirs(path.parent)
            self._made_dirs.add(path.parent)
        atomic_save_image(path, image)
        return True

    def write_part(self, batch_id: str, rows: Sequence[dict]) -> None:
        """Atomically write the batch's metadata rows to ``.parts/<batch_id>.csv``.

        Each row needs ``file_name``, ``label``, ``seed_index`` and ``variant``;
        ``class_name`` is filled from the label when absent. Values are stored
        as text: floats with ``%.6g``, None/NaN as empty cells.
        """
        path = self._part_path(batch_id)
        columns: set[str] = set()
        for row in rows:
            missing = [k for k in _REQUIRED if _cell(row.get(k)) == ""]
            if missing:
                raise ValueError(f"batch {batch_id!r}: metadata row {row!r} lacks {missing}")
            columns.update(row)
        columns = _order_columns(columns)
        cells = []
        for row in rows:
            row = dict(row)
            row.setdefault("class_name", self.class_names[int(row["label"])])
            cells.append([_cell(row.get(c)) for c in columns])
        refuse_symlink(self.parts_dir)
        make_dirs(self.parts_dir)
        atomic_write_bytes(path, _csv_bytes(pd.DataFrame(cells, columns=columns, dtype=str)), fsync=True)

    def write_skipped(self, batch_id: str, record: Any) -> None:
        """Atomically write a batch's skip record (JSON) to ``.parts/<batch_id>.skipped.json``."""
        path = self._part_path(batch_id).with_suffix(".skipped.json")
        refuse_symlink(self.parts_dir)
        make_dirs(self.parts_dir)
        atomic_write_bytes(path, json.dumps(record).encode(), fsync=True)

    def finalize(self) -> pd.DataFrame:
        """Merge metadata.csv and all part files into metadata.csv; return it typed.

        Rows are unique by ``file_name`` (a part overrides an older row), sorted
        by ``(seed_index, variant, file_name)``; columns are the fixed ones then
        the rest alphabetically; a column a part lacks is empty there. Merged
        part files are removed afterwards (so ``.parts`` does not show up as a
        class in ImageFolder); :meth:`batch_done` then consults metadata.csv.
        """
        meta = self.root / METADATA
        refuse_symlink(meta)
        refuse_symlink(self.parts_dir)
        with _locked(self.root):
            parts = sorted(self.parts_dir.glob("*.csv")) if self.parts_dir.is_dir() else []
            parts = [p for p in parts if not p.name.startswith(".")]
            frames = []
            for p in ([meta] if meta.is_file() else []) + parts:
                try:
                    frames.append(_read_text_csv(p))
                except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as err:
                    raise _damaged_csv(p, err) from err
            columns = _order_columns(set().union(*(f.columns for f in frames)))
            if frames:
                table = pd.concat([f.reindex(columns=columns, fill_value="") for f in frames], ignore_index=True)
            else:
                table = pd.DataFrame(columns=columns, dtype=str)
            table = table.drop_duplicates("file_name", keep="last")
            try:
                keys = list(zip(table["seed_index"].astype(int), table["variant"].astype(int), table["file_name"]))
            except ValueError as err:
                raise ValueError(f"{self.root}: every metadata row needs integer seed_index and variant ({err})")
            table = table.iloc[sorted(range(len(keys)), key=keys.__getitem__)]
            data = _csv_bytes(table)
            atomic_write_bytes(meta, data, fsync=True)
            for p in parts:
                p.unlink(missing_ok=True)
            if self.parts_dir.is_dir():
                remove_stale_temps(self.parts_dir)
                try:
                    self.parts_dir.rmdir()
                except OSError:
                    warnings.warn(f"{self.parts_dir} is not empty (another run is writing, or stale temp files); "
                                  f"ImageFolder will list it as a class until it is removed", stacklevel=2)
        self._check_files(set(table["file_name"]))
        return _parse_metadata(io.BytesIO(data))

    def _check_files(self, listed: set[str]) -> None:
        """Warn about rows without images and images without rows."""
        on_disk = {f"{d}/{f.name}" for d in set(self.dirnames) if (self.root / d).is_dir()
                   for f in os.scandir(self.root / d)
                   if f.name.endswith(".png") and not f.name.startswith(".")}
        problems = (("rows without an image", listed - on_disk), ("images without a row", on_disk - listed))
        for what, names in problems:
            if names:
                warnings.warn(f"{self.root}: {len(names)} {what} in {METADATA}, e.g. {sorted(names)[:3]}; "
                              f"re-run the expansion to complete them", stacklevel=3)


def write_subset(source: str | os.PathLike, rows: pd.DataFrame, out: str | os.PathLike,
                 class_names: Sequence[str] | None = None, part: str = "subset") -> Path:
    """Write the images of ``rows`` (metadata rows of the store ``source``, extra columns welcome) as the store
    ``out``: images copied byte for byte, ``metadata.csv`` rebuilt from ``rows`` only. A re-run with other rows
    removes the store images no longer listed (what filters and selections of a candidates store need)."""
    source, out = Path(source), Path(out)
    if source.resolve() == out.resolve():
        raise ValueError(f"write_subset writes a new store: out must differ from {source}")
    store = ExpansionStore(out, class_names if class_names is not None else read_classes(source))
    keep = set(rows["file_name"])
    for d in set(store.dirnames):
        folder = out / d
        for f in folder.glob("*.png") if folder.is_dir() else []:
            if STORE_FILE.fullmatch(f.name) and f"{d}/{f.name}" not in keep:
                f.unlink()
    for rel in rows["file_name"]:
        if not store.exists(rel):
            dst = store.path(rel)
            refuse_symlink(dst.parent)
            make_dirs(dst.parent)
            atomic_write_bytes(dst, inside(source, rel).read_bytes())
    (out / METADATA).unlink(missing_ok=True)
    records = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
               for r in rows.to_dict("records")]
    if records:
        store.write_part(part, records)
    store.finalize()
    return out
