"""Atomic writes and JSON records: the one path every file gifkit writes goes through.

``atomic_write_bytes`` writes a temp file in the target's folder and renames it into place, so a reader
(or a resumed run) sees the old file or the complete new one, never a truncated one. ``read_json``
names the file in its error when the content is damaged.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
from pathlib import Path
from typing import Any

from PIL import Image

__all__ = ["atomic_write_bytes", "write_text", "write_json", "write_csv", "read_json", "png_bytes", "atomic_save_image"]


def atomic_write_bytes(path: str | os.PathLike, data: bytes, fsync: bool = False) -> None:
    """Write ``data`` to ``path`` atomically: a temp file in the same folder, then
    ``os.replace``. Readers see the old file or the complete new one, never a
    partial one; the temp file is removed on failure. ``fsync=True`` also
    survives power loss (slower; used for metadata, not per image).
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
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    """``text`` as UTF-8, written atomically; parent folders made."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, text.encode("utf-8"))


def write_csv(path: str | os.PathLike, table, **to_csv) -> None:
    """A pandas DataFrame as CSV (no index, ``\\n`` line ends, ``to_csv`` options), written atomically."""
    write_text(path, table.to_csv(index=False, lineterminator="\n", **to_csv))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """``obj`` as indented JSON (non-JSON values through ``str``), written atomically; parent folders made."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
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



def read_json(path: str | os.PathLike, default: Any = ..., what: str = "") -> Any:
    """The JSON content of ``path``; ``default`` when the file does not exist (an error without one).

    A file that exists but does not parse raises ``ValueError`` naming the file (``what`` says what it is).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if default is ...:
            raise
        return default
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}{f' ({what})' if what else ''} is damaged: not valid JSON ({err}); "
                         f"delete it (or restore it) and re-run") from err
