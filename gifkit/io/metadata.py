"""The text format of an expansion's ``metadata.csv`` and of its per-batch part files.

One row per generated image: ``file_name`` (relative to the expansion folder, forward slashes), ``label``,
``class_name``, ``seed_index``, ``seed_path``, ``variant``, ``method``, then any further columns in
alphabetical order. Cells are text: floats with ``%.6g``, ``None``/NaN as empty cells, ``\\n`` line ends,
UTF-8, so merging parts never reformats a value and equal rows give equal bytes.
"""
from __future__ import annotations

import math
import os
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import pandas as pd
import torch

from gifkit.errors import Damaged
from gifkit.io.owner import own_file

__all__ = ["METADATA", "FIXED_COLUMNS", "REQUIRED_COLUMNS", "cell_text", "order_columns", "csv_bytes",
           "read_text_csv", "parse_metadata", "damaged_csv", "read_metadata"]

METADATA = "metadata.csv"
FIXED_COLUMNS = ("file_name", "label", "class_name", "seed_index", "seed_path", "variant", "method")
REQUIRED_COLUMNS = ("file_name", "label", "seed_index", "variant")
_TEXT_COLUMNS = ("file_name", "class_name", "seed_path", "method", "prompt")


def cell_text(value: Any) -> str:
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


def order_columns(columns: Any) -> list[str]:
    """:data:`FIXED_COLUMNS`, then the other columns alphabetically."""
    rest = sorted(set(columns) - set(FIXED_COLUMNS))
    return [*FIXED_COLUMNS, *rest]


def csv_bytes(table: pd.DataFrame) -> bytes:
    return table.to_csv(index=False, lineterminator="\n", float_format="%.6g").encode("utf-8")


def read_text_csv(path: Path) -> pd.DataFrame:
    """A CSV with every cell as text (lossless, so merging never reformats values); the file must be a
    regular file (:func:`~gifkit.io.owner.own_file`)."""
    if own_file(path) is None:
        raise FileNotFoundError(f"{path} does not exist")
    return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")


def parse_metadata(src: Any) -> pd.DataFrame:
    """Typed metadata: numbers as numbers, empty cells as NaN, names as text."""
    dtype = {c: str for c in _TEXT_COLUMNS}  # absent columns are ignored
    return pd.read_csv(src, dtype=dtype, keep_default_na=False, na_values=[""], encoding="utf-8")


def damaged_csv(path: Path, err: Exception) -> Damaged:
    return Damaged(f"{path} is damaged ({type(err).__name__}: {str(err).strip().splitlines()[0] if str(err) else ''}); "
                   f"delete it and re-run the expansion: the images are kept and it is rebuilt")


def read_metadata(root: str | os.PathLike) -> pd.DataFrame:
    """Load ``<root>/metadata.csv`` as a typed DataFrame (a damaged file raises :class:`~gifkit.errors.Damaged`
    naming it; a symlink or another non-regular file is refused)."""
    path = Path(root) / METADATA
    if own_file(path) is None:
        raise FileNotFoundError(
            f"no {METADATA} in {root}: run `gifkit expand` on it (which finalizes) "
            f"or call ExpansionStore(root, class_names).finalize() first")
    try:
        return parse_metadata(path)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as err:
        raise damaged_csv(path, err) from err
