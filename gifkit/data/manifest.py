"""A CSV manifest of ``path,label`` rows as a dataset (``load_dataset("manifest", split, root="list.csv")``).

Columns: ``path`` (absolute, or relative to the CSV's folder) and ``label``
(a class name, or an integer label); optional ``split`` (rows are filtered by
it when present; without it every row belongs to every split). Class names:
integer labels 0..max -> ``"0"``, ``"1"``, ...; names -> sorted unique names,
unless a ``classes.json`` (list of names in label order) lies beside the CSV.
Unreadable images raise :class:`gifkit.io.images.BadImage` at access time, like the
image-folder loader; a CSV that cannot be parsed (or a damaged ``classes.json``)
raises an error naming it.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from gifkit.data.base import FileListDataset
from gifkit.io.files import read_json

__all__ = ["ManifestDataset", "load_manifest"]


class ManifestDataset(FileListDataset):
    """``(PIL RGB image, label)`` rows of a manifest; ``.classes``, ``.targets``, ``.samples``, ``.csv``."""

    def __init__(self, csv: str | Path, split: str | None = None):
        csv = Path(csv).expanduser()
        if not csv.is_file():
            raise FileNotFoundError(f"manifest {str(csv)!r} does not exist; expected a CSV with columns path,label")
        try:
            table = pd.read_csv(csv, dtype=str, keep_default_na=False)
        except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as e:
            raise ValueError(f"manifest {csv} cannot be read as CSV ({type(e).__name__}: "
                             f"{' '.join(str(e).split())}); expected columns path,label") from e
        missing = {"path", "label"} - set(table.columns)
        if missing:
            raise ValueError(f"manifest {csv}: missing column(s) {sorted(missing)}; columns are {list(table.columns)}")
        if "split" in table.columns and split is not None:
            table = table[table["split"] == split]
            if table.empty:
                raise ValueError(f"manifest {csv}: no rows with split == {split!r}")
        if table.empty:
            raise ValueError(f"manifest {csv} has no rows")
        labels = table["label"].str.strip()
        classes_file = csv.with_name("classes.json")
        if classes_file.is_file():
            classes = read_json(classes_file, what="the manifest's class names")
            if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
                raise ValueError(f"{classes_file} must hold a JSON list of class names")
        elif labels.str.fullmatch(r"\d+").all():
            classes = [str(i) for i in range(int(labels.astype(int).max()) + 1)]
        else:
            classes = sorted(set(labels))
        index = {name: i for i, name in enumerate(classes)}
        ids = []
        for value in labels:
            if value in index:
                ids.append(index[value])
            elif value.isdigit() and int(value) < len(classes):
                ids.append(int(value))
            else:
                raise ValueError(f"manifest {csv}: label {value!r} is neither a class name "
                                 f"nor an integer label < {len(classes)}")
        paths = [p if Path(p).is_absolute() else str(csv.parent / p) for p in table["path"]]
        super().__init__(list(zip(paths, ids)), classes)
        self.csv = csv


def load_manifest(split: str = "train", root=None, profile: str = "paper", **_):
    """The manifest at ``root`` (a CSV file; CLI ``--data manifest --data-root list.csv``)."""
    if root is None:
        raise ValueError("dataset 'manifest' needs root=<path to the CSV> (CLI --data-root)")
    ds = ManifestDataset(root, split)
    return ds, ds.classes
