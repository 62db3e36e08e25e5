"""Paired differences over seeds with Student-t intervals: numbers by hand, pairing, verdicts."""
import math

import pandas as pd
import pytest

from gifkit.experiments.stats import format_difference, paired_differences, t_interval, verdict


def test_t_interval_by_hand():
    mean, low, high = t_interval([1.0, 2.0, 3.0])
    half = 4.302652729911275 * 1.0 / math.sqrt(3)  # t_{2, 0.975} * sd / sqrt(n)
    assert mean == 2.0 and low == pytest.approx(2 - half) and high == pytest.approx(2 + half)
    assert math.isnan(t_interval([5.0])[1]) and t_interval([5.0])[0] == 5.0


def test_paired_differences_pair_by_seed_and_call_effects_only_outside_zero():
    runs = pd.DataFrame({"method": ["orig"] * 3 + ["a"] * 3 + ["b"] * 3,
                         "seed": [0, 1, 2] * 3,
                         "accuracy": [70, 60, 80, 71, 61, 81.2, 72, 58, 80]})
    d = paired_differences(runs, "orig").set_index("method")
    assert d.loc["a", "n"] == 3 and d.loc["a", "mean_diff"] == pytest.approx((1 + 1 + 1.2) / 3)
    assert d.loc["a", "verdict"] == "higher"  # +1, +1, +1.2: a small but consistent paired gain
    assert d.loc["b", "verdict"] == "no effect"  # +2, -2, 0
    # unpaired, the seeds' spread (sd 10) would swamp a's gain: pairing is what makes it visible
    shuffled = runs.assign(seed=[0, 1, 2, 2, 0, 1, 0, 1, 2])
    assert paired_differences(shuffled, "orig").set_index("method").loc["a", "verdict"] == "no effect"
    with pytest.raises(ValueError, match="control"):
        paired_differences(runs, "nope")


def test_verdict_and_formatting():
    assert verdict(0.1, 2.0) == "higher" and verdict(-2.0, -0.1) == "lower" and verdict(-1.0, 1.0) == "no effect"
    assert verdict(math.nan, math.nan) == "n/a"
    assert verdict(9.0, 9.0) == "n/a" and verdict(0.0, 0.0) == "no effect"  # no spread: no effect is claimed
    assert verdict(0.1, 2.0, n=2) == "n/a" and verdict(0.1, 2.0, n=3) == "higher"  # at least 3 pairs


def test_constant_differences_over_two_seeds_are_not_an_effect():
    runs = pd.DataFrame({"method": ["a", "a", "c", "c"], "seed": [0, 1, 0, 1], "accuracy": [59.0, 60.0, 50.0, 51.0]})
    row = paired_differences(runs, "c").iloc[0]
    assert row.mean_diff == 9.0 and row.ci_low == row.ci_high == 9.0 and row.verdict == "n/a"
    assert format_difference(1.234, 0.4, 2.05) == "+1.23 [+0.40, +2.05]"
    assert format_difference(-0.5, math.nan, math.nan) == "-0.50"
