"""The paired t-test's p-value and Holm's adjustment by hand-computed values; the mini table's Holm column."""
import math
from pathlib import Path

import pandas as pd
import pytest

from gifkit.experiments.stats import compare, holm, paired_differences, t_p_value

RESULTS = Path(__file__).resolve().parents[1] / "results" / "mini"


def test_t_p_value_by_hand():
    # d = (1, 2, 3): mean 2, sd 1, t = 2 sqrt(3) on 2 df; the t(2) CDF is 1/2 + t / (2 sqrt(2 + t^2))
    t = 2 * math.sqrt(3)
    assert t_p_value([1, 2, 3]) == pytest.approx(2 * (0.5 - t / (2 * math.sqrt(2 + t * t))), rel=1e-9)
    assert t_p_value([1.0]) != t_p_value([1.0])  # NaN without a spread estimate
    assert t_p_value([2, 2, 2]) == 0.0 and t_p_value([0, 0]) == 1.0


def test_holm_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.02, 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]) == [1.0, 1.0]  # capped at 1
    out = holm([0.01, float("nan"), 0.02])  # NaN is not a test: m = 2
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.02)


def test_compare_adds_holm_over_every_row():
    runs = pd.DataFrame({"arm": ["a"] * 3 + ["b"] * 3 + ["c"] * 3, "seed": [0, 1, 2] * 3,
                         "accuracy": [10, 11, 12, 11, 13, 15, 10, 10.5, 12.5]})
    table = compare(runs, ["a", "c"], arm="arm")
    assert len(table) == 4 and table["p_holm"].tolist() == pytest.approx(holm(table["p_value"].tolist()))
    b_vs_a = table[(table["arm"] == "b") & (table["control"] == "a")].iloc[0]
    assert b_vs_a["p_value"] == pytest.approx(t_p_value([1, 2, 3]))
    assert list(paired_differences(runs, "a", arm="arm").columns)[-1] == "p_value"


def test_mini_table_holm_column_matches_its_runs():
    """results/mini/paired.csv's p-values and Holm column come from runs.csv: of its 14 comparisons, the two whose
    95 % interval excludes 0 are not effects once the family is accounted for."""
    paired = pd.read_csv(RESULTS / "paired.csv")
    runs = pd.read_csv(RESULTS / "runs.csv")
    again = compare(runs, ["original", "vae-random"], arm="arm")
    assert len(paired) == 14
    assert paired["p_value"].tolist() == pytest.approx(again["p_value"].tolist(), abs=6e-5)
    assert paired["p_holm"].tolist() == pytest.approx(again["p_holm"].tolist(), abs=6e-5)
    called = paired[paired["verdict"].isin(["higher", "lower"])]
    assert len(called) == 2 and (called["p_value"] < 0.05).all() and (paired["p_holm"] > 0.05).all()


DOCS = Path(__file__).resolve().parents[1] / "docs"
GUIDED = {"gif-vae": "vae-random", "gif-vae-sign3": "vae-random", "gif-vae-adam5": "vae-random",
          "gif-vae-eps2": "vae-random-eps2"}


def _prose():
    return " ".join((DOCS / "results.md").read_text().split())


def test_results_claims_are_the_committed_data():
    import re

    from gifkit.experiments.stats import detectable_effect

    text = _prose()
    # the Holm note: the two called effects' p-values and Holm-adjusted values
    paired = pd.read_csv(RESULTS / "paired.csv")
    called = paired[paired["verdict"].isin(["higher", "lower"])].sort_values("p_value")
    said = re.search(r"have p = (\S+) and (\S+) and Holm-adjusted p = (\S+) and (\S+):", text)
    assert [float(x) for x in said.groups()] == pytest.approx(
        [*called["p_value"].round(3), *called["p_holm"].round(2)], abs=1e-9)
    # the guidance study: smallest detectable gains and the highest upper end, per guided arm vs its control
    runs = pd.read_csv(RESULTS / "06_ablations" / "guidance_study" / "runs.csv").pivot(
        index="seed", columns="method", values="accuracy")
    mde = [detectable_effect((runs[a] - runs[c]).tolist()) for a, c in GUIDED.items()]
    said = re.search(r"only when it is at least (\S+) to (\S+) points", text)
    assert [float(x) for x in said.groups()] == pytest.approx([min(mde), max(mde)], abs=0.006)
    study = pd.read_csv(RESULTS / "06_ablations" / "guidance_study" / "paired.csv")
    top = max(study[(study.method == a) & (study.control == c)].ci_high.iloc[0] for a, c in GUIDED.items())
    assert float(re.search(r"The upper ends reach \+(\S+) points", text).group(1)) == pytest.approx(top, abs=0.006)
    # the guide's view quoted in prose is diagnostics.csv's (control, then the official step)
    diag = pd.read_csv(RESULTS / "diagnostics.csv").set_index("arm")
    said = re.search(r"entropy from (\S+) to (\S+), label agreement from (\S+) to (\S+) and the variants' feature "
                     r"diversity from (\S+) to (\S+)\)", text)
    expect = [diag.loc[arm, col] for col in ("entropy", "label_agreement", "feature_diversity")
              for arm in ("vae-random", "gif-vae")]
    assert [float(x) for x in said.groups()] == pytest.approx(expect, abs=0.0006)
    # S_div against S_inf at the paper's temperature, as guidance_metadata.csv has them
    meta = pd.read_csv(RESULTS / "guidance_metadata.csv").set_index("arm")
    said = re.search(r"S_div is (\S+) against S_inf (\S+) \(`guidance_metadata.csv`\)", text)
    assert float(said.group(1)) == meta.loc["gif-vae", "s_div"]
    assert float(said.group(2)) == pytest.approx(meta.loc["gif-vae", "s_inf"], abs=0.006)
