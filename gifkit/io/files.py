"""Atomic writes and JSON records: the one path every file gifkit writes goes through.

``atomic_write_bytes`` writes a temp file ``.<name>.<pid>.<random>.tmp`` in the target's folder and renames
it into place, so a reader (or a resumed run) sees the old file or the complete new one, never a truncated
one. A process killed between the two steps leaves its temp file behind: :func:`remove_stale_temps` (run
at the start of every expansion) removes those of processes that are gone. A folder of files (a training
checkpoint) is written beside its final name and swapped in by :func:`replace_dir`. A full disk, a quota
or the file-size limit raise :class:`~gifkit.errors.DiskFull` naming the folder. ``read_json`` names the
file in its error when the content is damaged.
"""
from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import Any

from PIL import Image

from gifkit.errors import Damaged, DiskFull

__all__ = ["atomic_write_bytes", "write_text", "write_json", "write_csv", "read_json", "png_bytes", "atomic_save_image",
           "make_dirs", "remove_stale_temps", "is_temp_name", "pid_alive", "replace_dir", "recover_dir", "disk_full"]

TEMP_NAME = re.compile(r"\..+\.(\d+)\.[0-9a-f]{8}\.tmp")  # what atomic_write_bytes names its temp files
_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def disk_full(err: OSError, path: str | os.PathLike) -> OSError:
    """``err`` as :class:`~gifkit.errors.DiskFull` (naming ``path``'s folder and saying a re-run resumes) when
    it is a full disk, an exceeded quota or file-size limit; otherwise ``err`` itself."""
    if isinstance(err, DiskFull) or getattr(err, "errno", None) not in _FULL:
        return err
    path = Path(path)
    what = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "the disk quota is exceeded",
            errno.EFBIG: "the file-size limit is exceeded"}[err.errno]
    full = DiskFull(f"{what} while writing {path.name} in {path.parent}: free some space (or raise the limit) "
                    f"and re-run the same command; the run resumes where it stopped")
    full.errno = err.errno
    return full


def is_temp_name(name: str) -> bool:
    """True for the name of a temp file :func:`atomic_write_bytes` makes."""
    return TEMP_NAME.fullmatch(name) is not None


def pid_alive(pid: int) -> bool:
    """True when a process ``pid`` runs on this machine (this process included)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temps(folder: str | os.PathLike) -> int:
    """Remove the temp files of :func:`atomic_write_bytes` in ``folder`` (not below it) whose process is gone
    (killed mid-write); those of running processes, e.g. other shards, are kept. Returns how many went."""
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for e in entries:
        m = TEMP_NAME.fullmatch(e.name)
        if m and not pid_alive(int(m.group(1))) and e.is_file(follow_symlinks=False):
            with contextlib.suppress(OSError):
                os.unlink(e.path)
                removed += 1
    return removed


def make_dirs(path: str | os.PathLike) -> Path:
    """``mkdir -p path``; a full disk raises :class:`~gifkit.errors.DiskFull`, an existing file in the way a
    clear ``FileExistsError``."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise FileExistsError(errno.EEXIST, f"{path} exists and is not a folder") from None
    except OSError as err:
        raise disk_full(err, path / ".") from err
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes, fsync: bool = False) -> None:
    """Write ``data`` to ``path`` atomically: a temp file in the same folder, then
    ``os.replace``. Readers see the old file or the complete new one, never a
    partial one; the temp file is removed on failure (and by :func:`remove_stale_temps`
    when the process was killed). ``fsync=True`` also survives power loss (slower; used for
    metadata and checkpoints, not per image). ``path`` itself is replaced, never followed
    when it is a symlink. A full disk raises :class:`~gifkit.errors.DiskFull`.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as fh:
            fh.write(data)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(err, OSError) and not isinstance(err, DiskFull):
            full = disk_full(err, path)
            if full is not err:
                raise full from err
            if err.filename in (None, str(tmp)):  # name the file the user asked for, not the temp file
                named = OSError(f"cannot write {path}: {err.strerror or err}")
                named.errno = err.errno
                raise named from err
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    """``text`` as UTF-8, written atomically; parent folders made."""
    path = Path(path)
    make_dirs(path.parent)
    atomic_write_bytes(path, text.encode("utf-8"))


def write_csv(path: str | os.PathLike, table, **to_csv) -> None:
    """A pandas DataFrame as CSV (no index, ``\\n`` line ends, ``to_csv`` options), written atomically."""
    write_text(path, table.to_csv(index=False, lineterminator="\n", **to_csv))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """``obj`` as indented JSON (non-JSON values through ``str``), written atomically; parent folders made."""
    path = Path(path)
    make_dirs(path.parent)
    atomic_write_bytes(path, (json.dumps(obj, indent=1, ensure_ascii=False, default=str) + "\n").encode())


def png_bytes(image: Image.Image) -> bytes:
    """PNG encoding of ``image``; identical images give identical bytes (no timestamps)."""
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL.Image.Image, got {type(image).__name__}")
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def atomic_save_image(path: str | os.PathLike, image: Image.Image) -> None:
    """Save ``image`` as PNG at ``path`` atomically, with deterministic bytes."""
    atomic_write_bytes(path, png_bytes(image))


def _old(final: Path) -> Path:
    return final.with_name(f".{final.name}.old")


def replace_dir(tmp: str | os.PathLike, final: str | os.PathLike) -> None:
    """Put the complete folder ``tmp`` in place of ``final`` (a sibling): ``final`` is renamed aside to
    ``.<name>.old``, ``tmp`` renamed to ``final``, then the old one removed. A kill at any point leaves either
    ``final`` complete or ``.<name>.old`` complete, which :func:`recover_dir` puts back."""
    tmp, final = Path(tmp), Path(final)
    old = _old(final)
    if old.exists():
        if final.exists():
            shutil.rmtree(old)
        else:
            os.rename(old, final)  # a previous swap was cut short: its old folder is the last complete one
    try:
        if final.exists():
            os.rename(final, old)
        os.rename(tmp, final)
    except OSError as err:
        raise disk_full(err, final / ".") from err
    shutil.rmtree(old, ignore_errors=True)


def recover_dir(final: str | os.PathLike) -> Path:
    """``final`` after a :func:`replace_dir` that a kill cut short: the old folder is renamed back when
    ``final`` is missing, and removed when both exist. Returns ``final``."""
    final = Path(final)
    old = _old(final)
    if old.is_dir():
        if final.exists():
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(old, final)
    return final


def read_json(path: str | os.PathLike, default: Any = ..., what: str = "") -> Any:
    """The JSON content of ``path``; ``default`` when the file does not exist (an error without one).

    A file that exists but does not parse (or is not UTF-8) raises :class:`~gifkit.errors.Damaged` (a
    ``ValueError``) naming the file (``what`` says what it is).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if default is ...:
            raise
        return default
    except UnicodeDecodeError as err:
        raise Damaged(f"{path}{f' ({what})' if what else ''} is damaged: not UTF-8 text ({err}); "
                         f"delete it (or restore it) and re-run") from err
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise Damaged(f"{path}{f' ({what})' if what else ''} is damaged: not valid JSON ({err}); "
                         f"delete it (or restore it) and re-run") from err
