"""Statistics that can tell an effect from noise: paired differences over seeds with a Student-t interval.

Every arm of a study is trained with the same seeds, and seed ``s`` draws both the expansion and the training,
so arms are compared *paired by seed*: for an arm ``a`` and a control ``c``,

    d_s = value(a, s) - value(c, s),    mean d = (1/n) sum_s d_s,
    CI  = mean d -/+ t_{n-1, (1 + level)/2} * sd(d) / sqrt(n)     (sd with ddof = 1)

A difference is called an *effect* only when its interval excludes 0 and rests on at least 3 seeds with some
spread (docs/design.md §4); with one seed there is no interval.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

__all__ = ["t_interval", "paired_differences", "verdict", "format_difference"]


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean of ``values`` and its Student-t interval (NaN bounds for fewer than 2)."""
    from scipy import stats

    x = np.asarray(list(values), dtype=float)
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if len(x) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf((1 + level) / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return mean, mean - half, mean + half


def verdict(low: float, high: float, n: int | None = None) -> str:
    """"higher" / "lower" when the interval ``[low, high]`` excludes 0, "no effect" when it holds 0, "n/a" without
    one. An interval of zero width away from 0 (every pair differs by the same amount) or one from fewer than 3
    pairs (``n``) is not called an effect: "n/a"."""
    if math.isnan(low) or math.isnan(high):
        return "n/a"
    if low <= 0 <= high:
        return "no effect"
    if high == low or (n is not None and n < 3):
        return "n/a"
    return "higher" if low > 0 else "lower"


def paired_differences(runs: pd.DataFrame, control: str, *, value: str = "accuracy", arm: str = "method",
                       pair: str = "seed", by: Sequence[str] = (), level: float = 0.95) -> pd.DataFrame:
    """Each arm's difference to ``control``, paired by ``pair`` (the seed), within each group of ``by``.

    ``runs`` has one row per arm x seed (e.g. :func:`gifkit.experiments.study.run_grid`'s). Returns one row per
    (group, arm other than the control): ``control``, ``n`` (pairs), ``mean_diff``, ``ci_low``, ``ci_high``
    (the Student-t interval at ``level``), ``level`` and ``verdict`` (:func:`verdict`: an effect needs at
    least 3 pairs). Seeds missing on either
    side are left out of the pairs.
    """
    by = list(by)
    if control not in set(runs[arm]):
        raise ValueError(f"control {control!r} is not among the arms {sorted(set(runs[arm]))}")
    rows = []
    groups = runs.groupby(by, sort=False) if by else [((), runs)]
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        base = g[g[arm] == control].set_index(pair)[value]
        for name in dict.fromkeys(g[arm]):
            if name == control:
                continue
            other = g[g[arm] == name].set_index(pair)[value]
            common = base.index.intersection(other.index)
            mean, low, high = t_interval((other[common] - base[common]).tolist(), level)
            rows.append({**dict(zip(by, key)), arm: name, "control": control, "n": len(common), "mean_diff": mean,
                         "ci_low": low, "ci_high": high, "level": level, "verdict": verdict(low, high, len(common))})
    return pd.DataFrame(rows, columns=[*by, arm, "control", "n", "mean_diff", "ci_low", "ci_high", "level", "verdict"])


def format_difference(mean: float, low: float, high: float, digits: int = 2) -> str:
    """``"+1.23 [+0.40, +2.05]"`` (``"+1.23"`` without an interval)."""
    if math.isnan(mean):
        return "n/a"
    if math.isnan(low):
        return f"{mean:+.{digits}f}"
    return f"{mean:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"
