"""The GIF paper's reported numbers (NeurIPS 2023), shipped as CSV for side-by-side tables.

``load_table("table1_main")`` returns a DataFrame; ``available_tables()`` lists them;
``paper_vs_run(paper, run, on)`` joins the paper's numbers with this run's.
Source and meaning of each file: ``gifkit/assets/paper/README.md``.
"""
from __future__ import annotations

from importlib import resources

import pandas as pd

__all__ = ["available_tables", "load_table", "paper_vs_run"]


def _dir():
    return resources.files("gifkit") / "assets" / "paper"


def available_tables() -> list[str]:
    return sorted(p.name[:-4] for p in _dir().iterdir() if p.name.endswith(".csv"))


def load_table(name: str) -> pd.DataFrame:
    """One of the paper's tables (accuracy in %, ResNet-50 from scratch unless the file says otherwise)."""
    path = _dir() / f"{name}.csv"
    if not path.is_file():
        raise ValueError(f"no paper table {name!r}; available: {', '.join(available_tables())}")
    with path.open() as f:
        return pd.read_csv(f)


def paper_vs_run(paper: pd.DataFrame, run: pd.DataFrame, on: str | list[str], value: str = "accuracy",
                 same_data: bool = True) -> pd.DataFrame:
    """Outer join of the paper's ``value`` column and this run's, with their difference ``run_minus_paper`` when
    the run used the paper's data (``same_data``); a run on other data (the mini or smoke profile's stand-ins)
    gets no difference column: numbers measured on different datasets are set side by side, not subtracted."""
    p = paper.rename(columns={value: f"paper_{value}"})
    r = run.rename(columns={value: f"run_{value}"})
    out = p.merge(r, on=on, how="outer")
    if same_data:
        out["run_minus_paper"] = out[f"run_{value}"] - out[f"paper_{value}"]
    return out
