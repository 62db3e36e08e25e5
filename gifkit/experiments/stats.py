"""Statistics that can tell an effect from noise: paired differences over seeds with a Student-t interval.

Every arm of a study is trained with the same seeds, and seed ``s`` draws both the expansion and the training,
so arms are compared *paired by seed*: for an arm ``a`` and a control ``c``,

    d_s = value(a, s) - value(c, s),    mean d = (1/n) sum_s d_s,
    CI  = mean d -/+ t_{n-1, (1 + level)/2} * sd(d) / sqrt(n)     (sd with ddof = 1)

A difference is called an *effect* only when its interval excludes 0 and rests on at least 3 seeds with some
spread (docs/design.md §4); with one seed there is no interval. Each row also carries the two-sided paired
t-test's p-value, and :func:`compare` adds Holm's step-down adjustment over the whole table of comparisons
(``p_holm``): with m comparisons at 95 % each, about 0.05 m of them exclude 0 by chance alone, and a row whose
``p_holm`` is below 0.05 is an effect for the family.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

__all__ = ["t_interval", "t_p_value", "holm", "detectable_effect", "paired_differences", "compare", "verdict",
           "format_difference"]


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


def t_p_value(values: Sequence[float]) -> float:
    """The two-sided p-value of a one-sample Student t-test of mean 0 (the paired test of differences); NaN for
    fewer than 2 values, 0 or 1 when they do not vary (all equal and nonzero, or all 0)."""
    from scipy import stats

    x = np.asarray(list(values), dtype=float)
    x = x[~np.isnan(x)]
    if len(x) < 2:
        return math.nan
    sd = x.std(ddof=1)
    if sd == 0:
        return 1.0 if x.mean() == 0 else 0.0
    t = x.mean() / (sd / math.sqrt(len(x)))
    return float(2 * stats.t.sf(abs(t), len(x) - 1))


def detectable_effect(values: Sequence[float], level: float = 0.95, power: float = 0.8) -> float:
    """The smallest true mean difference the paired design of ``values`` (the per-seed differences) finds with
    probability ``power`` at ``level``: ``(t_{n-1, (1 + level)/2} + t_{n-1, power}) * sd / sqrt(n)`` (the usual
    approximation, with the observed sd standing in for the true one); NaN for fewer than 2 values."""
    from scipy import stats

    x = np.asarray(list(values), dtype=float)
    x = x[~np.isnan(x)]
    if len(x) < 2:
        return math.nan
    df = len(x) - 1
    return float((stats.t.ppf((1 + level) / 2, df) + stats.t.ppf(power, df)) * x.std(ddof=1) / math.sqrt(len(x)))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values of a family of ``m`` tests, in the input order: the k-th smallest
    ``p_(k)`` becomes ``max_{j <= k} min(1, (m - j + 1) p_(j))``. A NaN stays NaN and does not count in ``m``."""
    p = np.asarray(list(p_values), dtype=float)
    out = np.full(len(p), math.nan)
    idx = [i for i in np.argsort(p, kind="stable") if not math.isnan(p[i])]
    m, running = len(idx), 0.0
    for rank, i in enumerate(idx):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out.tolist()


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
    least 3 pairs) and ``p_value`` (:func:`t_p_value`). Seeds missing on either side are left out of the pairs.
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
            diffs = (other[common] - base[common]).tolist()
            mean, low, high = t_interval(diffs, level)
            rows.append({**dict(zip(by, key)), arm: name, "control": control, "n": len(common), "mean_diff": mean,
                         "ci_low": low, "ci_high": high, "level": level, "verdict": verdict(low, high, len(common)),
                         "p_value": t_p_value(diffs)})
    return pd.DataFrame(rows, columns=[*by, arm, "control", "n", "mean_diff", "ci_low", "ci_high", "level", "verdict",
                                       "p_value"])


def compare(runs: pd.DataFrame, controls: Sequence[str], **kwargs) -> pd.DataFrame:
    """:func:`paired_differences` against each of ``controls``, in one table, with ``p_holm``: Holm's adjustment
    (:func:`holm`) over all its rows, the family of comparisons the table reports."""
    table = pd.concat([paired_differences(runs, c, **kwargs) for c in controls], ignore_index=True)
    table["p_holm"] = holm(table["p_value"].tolist())
    return table


def format_difference(mean: float, low: float, high: float, digits: int = 2) -> str:
    """``"+1.23 [+0.40, +2.05]"`` (``"+1.23"`` without an interval)."""
    if math.isnan(mean):
        return "n/a"
    if math.isnan(low):
        return f"{mean:+.{digits}f}"
    return f"{mean:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"
