"""pytest settings for ``pytest --nbval`` / ``--nbval-lax`` on these notebooks (``make nbval``).

With the environment variable ``GIFKIT_NBVAL_EXECUTED`` set to a folder, each notebook nbval ran is written there as
``<name>.ipynb`` with the outputs this run produced (nbval keeps them per cell but saves nothing), so that
``tests/test_notebooks.py -m nbval_executed`` can check what a lax run does not compare: the files each notebook
writes, and that the tables it shows hold the numbers of its CSV files. Each notebook is executed once.
"""
import copy
import os
from pathlib import Path

import nbformat


def _executed(items):
    """``{notebook path: {cell index: outputs}}`` of the nbval cell items that ran."""
    found = {}
    for item in items:
        outputs = getattr(item, "test_outputs", None)
        if outputs is None or not hasattr(item, "cell_num"):
            continue
        found.setdefault(Path(str(item.parent.path)), {})[item.cell_num] = outputs
    return found


def pytest_sessionfinish(session):
    folder = os.environ.get("GIFKIT_NBVAL_EXECUTED")
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    for path, cells in _executed(session.items).items():
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        for i, cell in enumerate(code):
            cell.outputs = copy.deepcopy(cells.get(i, []))
            cell.execution_count = i + 1 if i in cells else None
        tmp = Path(folder) / f".{path.name}.tmp"
        nbformat.write(nb, tmp)
        tmp.replace(Path(folder) / path.name)
