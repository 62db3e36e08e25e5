"""The expanded dataset on disk: ImageFolder layout plus ``metadata.csv``.

Layout of an expansion folder ``root``::

    root/classes.json           class names in label order (written once)
    root/<class_dir>/<seed>_<variant>.png
    root/metadata.csv           one row per generated image (after finalize; :mod:`gifkit.io.metadata`)
    root/.parts/<batch_id>.csv  per-batch rows, until finalize merges them
    root/.gifkit.lock, .gifkit-made.json, .gifkit-shard-<i>.*   who owns the folder, what gifkit made
                                (:mod:`gifkit.io.owner`)

``root`` loads with ``torchvision.datasets.ImageFolder`` (its labels follow the
sorted folder names, not necessarily gifkit's label order; ``metadata.csv`` and
:class:`ExpandedDataset` carry the true labels) and with Hugging Face
``load_dataset("imagefolder", data_dir=root)``: column ``file_name`` holds the
path relative to ``root`` with forward slashes.

Every write is atomic (temp file in the same folder, then ``os.replace``), so an
interrupted run never leaves a truncated file under a final name, and a re-run
skips what exists. Nothing is read or written through a symlink inside the folder
(a symlinked class folder, ``.parts``, part file or image is refused, naming it; every file read back must be
a regular file, :func:`~gifkit.io.owner.own_file`), and no ``metadata.csv`` path may leave the folder
(:func:`store_parts`, the one check of such a path). Work is done in *batches*: a run writes a batch's images,
then the batch's part file; :meth:`ExpansionStore.finalize` merges all parts
into ``metadata.csv`` with rows sorted by ``(seed_index, variant)`` and a fixed
column order, so the bytes do not depend on which batch, shard or process
finished first. The record files and the folders the writer creates are listed in the folder's manifest, and
:func:`clear_store` deletes only what that proves gifkit made.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import warnings
from pathlib import Path, PurePosixPath
from typing import Any, Sequence

import pandas as pd
from PIL import Image

from gifkit.errors import Damaged, Refused
from gifkit.io.files import atomic_save_image, atomic_write_bytes, is_temp_name, make_dirs, read_json, \
    remove_stale_temps
from gifkit.io.layout import CLASSES, PARTS, RECORDS, RUN_FILE, SKIPPED_FILE, STORE_FILE, classes_bytes, \
    describe_difference, inside, read_classes, refuse_symlink, safe_dirname, store_parts
from gifkit.io.metadata import FIXED_COLUMNS, METADATA, REQUIRED_COLUMNS, cell_text, csv_bytes, damaged_csv, \
    order_columns, parse_metadata, read_metadata, read_text_csv
from gifkit.io.owner import digest, folder_lock, is_owner_file, live_claims, make_own_dir, own_file, \
    prune_made, read_made, record_own, remove_stale_claims, write_own

__all__ = [
    "FIXED_COLUMNS", "METADATA", "CLASSES", "PARTS", "RUN_FILE", "SKIPPED_FILE",
    "safe_dirname", "ExpansionStore", "read_metadata", "read_classes", "describe_difference", "write_subset",
    "STORE_FILE", "refuse_symlink", "store_parts", "inside", "has_outputs", "clear_store", "proven_files",
    "proven_record", "adopt_legacy", "RECORDS", "classes_bytes",
]

_BATCH_ID = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]*")
_PART_FILE = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]*\.(csv|skipped\.json)")


def _expansion_like(root: Path) -> list[Path]:
    """What looks like an expansion's output in ``root``: ``metadata.csv``, files named as the store names its
    images in any folder, ``.parts`` (whoever made them)."""
    found = [root / METADATA] if os.path.lexists(root / METADATA) else []
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return found
    for e in entries:
        if e.is_dir(follow_symlinks=False):
            with contextlib.suppress(OSError):
                found += [Path(f.path) for f in os.scandir(e.path)
                          if not is_temp_name(f.name) and (e.name == PARTS or STORE_FILE.fullmatch(f.name))]
    return found


def has_outputs(root: str | os.PathLike) -> bool:
    """True when ``root`` holds images, part files or ``metadata.csv`` of an expansion (not only records)."""
    return bool(_expansion_like(Path(root)))


def _legacy_record(root: Path) -> bool:
    """True for a ``run.json`` of a gifkit from before the manifest: a record with its seeds and condition."""
    try:
        record = read_json(own_file(root / RUN_FILE) or root / RUN_FILE, None)
    except (Damaged, Refused):
        return False
    return isinstance(record, dict) and isinstance(record.get("seeds"), dict) and \
        isinstance(record.get("environment"), dict)


def _proven_record(root: Path, name: str, made: dict | None) -> bool:
    try:
        path = own_file(root / name)
    except Refused:
        return False
    if path is None:
        return False
    if made is not None:
        return digest(path.read_bytes()) in made["files"].get(name, [])
    try:  # a legacy folder: gifkit's records by their format
        if name == METADATA:
            return list(read_text_csv(path).columns[:len(FIXED_COLUMNS)]) == list(FIXED_COLUMNS)
        value = read_json(path)
        return isinstance(value, (list, dict))
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError):
        return False


def proven_record(root: str | os.PathLike, name: str) -> bool:
    """True when the record file ``root/name`` is one gifkit wrote (its digest in the manifest; in a folder from
    before the manifest with a complete ``run.json``: in gifkit's format)."""
    root = Path(root)
    made = read_made(root)
    return (made is not None or _legacy_record(root)) and _proven_record(root, name, made)


def adopt_legacy(root: str | os.PathLike) -> None:
    """Give a folder from before the manifest one: the digests of its records in gifkit's formats (the caller
    has checked that its ``run.json`` matches the run that resumes it)."""
    root = Path(root)
    if read_made(root) is None and _legacy_record(root):
        record_own(root, {n: (root / n).read_bytes() for n in RECORDS if _proven_record(root, n, None)})


def proven_files(root: str | os.PathLike) -> tuple[list[Path], list[Path]]:
    """``(files, folders)`` gifkit can prove it made in ``root``: the record files whose digests the manifest
    lists (in a folder from before the manifest, with a complete ``run.json``: those in gifkit's formats), the
    images their ``metadata.csv`` and the part files of a ``.parts`` folder gifkit made list, those part files,
    temp files of its atomic writes in the folders it made, and the folders the manifest lists."""
    root = Path(root)
    made = read_made(root)
    legacy = made is None and _legacy_record(root)
    if made is None and not legacy:
        return [], []
    records = [n for n in RECORDS if _proven_record(root, n, made)]
    folders = [root / f for f in (made or {}).get("folders", []) if isinstance(f, str) and ".." not in f]
    parts_made = legacy or (root / PARTS) in folders
    files = [root / n for n in records]
    listed: set[str] = set()
    tables = [root / METADATA] if METADATA in records else []
    if parts_made and (root / PARTS).is_dir() and not (root / PARTS).is_symlink():
        for e in sorted(os.scandir(root / PARTS), key=lambda e: e.name):
            if e.is_file(follow_symlinks=False) and (_PART_FILE.fullmatch(e.name) or is_temp_name(e.name)):
                files.append(Path(e.path))
                if e.name.endswith(".csv") and not is_temp_name(e.name):
                    tables.append(Path(e.path))
    for table in tables:
        with contextlib.suppress(ValueError, KeyError, UnicodeDecodeError, pd.errors.ParserError, Refused):
            listed |= set(read_text_csv(table)["file_name"])
    for rel in sorted(listed):
        parts = PurePosixPath(rel).parts
        if len(parts) == 2 and not parts[0].startswith(".") and STORE_FILE.fullmatch(parts[1]) and \
                "\\" not in rel and os.path.isfile(root / rel) and not os.path.islink(root / rel) and \
                not os.path.islink(root / parts[0]):
            files.append(root / rel)
    for folder in [root, *folders]:
        if folder.is_dir() and not folder.is_symlink():
            files += [Path(e.path) for e in os.scandir(folder)
                      if is_temp_name(e.name) and e.is_file(follow_symlinks=False)]
    return sorted(set(files)), folders


def clear_store(root: str | os.PathLike) -> int:
    """Delete what gifkit made in ``root`` (:func:`proven_files`; then the folders it made, when empty) and
    nothing else; returns the number of files removed. What stays is named in one warning. Refused while a
    gifkit run holds the folder. ``gifkit expand --force-new``."""
    root = Path(root)
    if not root.is_dir():
        return 0
    with folder_lock(root):
        running = live_claims(root)
        if running:
            info = running[0]
            raise Refused(f"{root} is being written by a gifkit run (process {info.get('pid')} on "
                          f"{info.get('host')}, started {info.get('started')}): stop it before starting over")
        remove_stale_claims(root)
        files, folders = proven_files(root)
        for p in files:
            p.unlink(missing_ok=True)
        for d in sorted(folders, key=lambda f: len(f.parts), reverse=True):
            with contextlib.suppress(OSError):
                d.rmdir()
        prune_made(root)  # what is left of gifkit's (a record the user changed, its folders) stays listed
        kept = sorted(str(p.relative_to(root)) for p in root.rglob("*")
                      if not p.is_dir() and not (p.parent == root and is_owner_file(p.name)))
    if kept:
        warnings.warn(f"{root}: kept {len(kept)} file(s) gifkit cannot prove it made: {', '.join(kept[:5])}"
                      f"{', ...' if len(kept) > 5 else ''}", stacklevel=2)
    return len(files)


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
        if own_file(classes) is not None:
            old = read_classes(self.root)
            if old != names:
                raise Refused(
                    f"{classes} was written for another class list ({describe_difference(old, names)}); "
                    f"this folder belongs to another dataset or class order: use a new output folder")
        else:
            write_own(self.root, CLASSES, classes_bytes(names))
        self._made_dirs: set[Path] = set()
        self._finalized: set[str] = set()
        self._finalized_stamp: int | None = None

    def __repr__(self) -> str:
        return f"ExpansionStore({str(self.root)!r}, {len(self.class_names)} classes)"

    def relpath(self, label: int, seed_index: int, variant: int) -> str:
        """``<class_dir>/<seed_index:06d>_<variant:03d>.png`` (relative to root, forward slashes)."""
        return f"{self.dirnames[label]}/{seed_index:06d}_{variant:03d}.png"

    def path(self, relpath: str) -> Path:
        """Absolute path of ``relpath``; rejects paths that would leave the root (:func:`store_parts`)."""
        return self.root.joinpath(*store_parts(self.root, relpath))

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
        meta = own_file(self.root / METADATA)
        if meta is None:
            return set()
        stamp = meta.stat().st_mtime_ns
        if stamp != self._finalized_stamp:
            try:
                col = pd.read_csv(self.root / METADATA, usecols=["file_name"], dtype=str, keep_default_na=False)
            except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as err:
                raise damaged_csv(self.root / METADATA, err) from err
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
            make_own_dir(self.root, path.parent)
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
            missing = [k for k in REQUIRED_COLUMNS if cell_text(row.get(k)) == ""]
            if missing:
                raise ValueError(f"batch {batch_id!r}: metadata row {row!r} lacks {missing}")
            columns.update(row)
        columns = order_columns(columns)
        cells = []
        for row in rows:
            row = dict(row)
            row.setdefault("class_name", self.class_names[int(row["label"])])
            cells.append([cell_text(row.get(c)) for c in columns])
        refuse_symlink(self.parts_dir)
        make_own_dir(self.root, self.parts_dir)
        atomic_write_bytes(path, csv_bytes(pd.DataFrame(cells, columns=columns, dtype=str)), fsync=True)

    def write_skipped(self, batch_id: str, record: Any) -> None:
        """Atomically write a batch's skip record (JSON) to ``.parts/<batch_id>.skipped.json``."""
        path = self._part_path(batch_id).with_suffix(".skipped.json")
        refuse_symlink(self.parts_dir)
        make_own_dir(self.root, self.parts_dir)
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
        refuse_symlink(self.parts_dir)
        with folder_lock(self.root):
            parts = sorted(self.parts_dir.glob("*.csv")) if self.parts_dir.is_dir() else []
            parts = [p for p in parts if not p.name.startswith(".")]
            frames = []
            for p in ([meta] if own_file(meta) is not None else []) + parts:
                try:
                    frames.append(read_text_csv(p))  # a symlink or FIFO among the parts is refused
                except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as err:
                    raise damaged_csv(p, err) from err
            columns = order_columns(set().union(*(f.columns for f in frames)))
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
            data = csv_bytes(table)
            write_own(self.root, METADATA, data)
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
        return parse_metadata(io.BytesIO(data))

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
    proven = (out / METADATA) in proven_files(out)[0]
    if not proven and os.path.lexists(out / METADATA):
        raise Refused(f"{out / METADATA} is not a metadata.csv gifkit can prove it wrote; write_subset does not "
                      f"replace it: use another output folder")
    old = set(read_metadata(out)["file_name"]) if proven else set()
    store = ExpansionStore(out, class_names if class_names is not None else read_classes(source))
    for rel in old - set(rows["file_name"]):  # gifkit's images of an earlier subset, no longer listed
        if STORE_FILE.fullmatch(PurePosixPath(rel).name):
            store.path(rel).unlink(missing_ok=True)
    for rel in rows["file_name"]:
        if not store.exists(rel):
            dst = store.path(rel)
            refuse_symlink(dst.parent)
            make_own_dir(out, dst.parent)
            atomic_write_bytes(dst, inside(source, rel).read_bytes())
    (out / METADATA).unlink(missing_ok=True)
    records = [{k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()}
               for r in rows.to_dict("records")]
    if records:
        store.write_part(part, records)
    store.finalize()
    return out
