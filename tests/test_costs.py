"""Cost plans: counts and hours per device class, against hand-computed figures."""
import pytest

from gifkit.experiments.costs import estimate


def test_the_papers_table_1_costs_thousands_of_v100_hours():
    plan = estimate("paper", {"gif-sd": 716_000 * 3}, measured={})  # notebook 05's paper parameters, 3 seeds
    assert plan.hours["V100"] == pytest.approx(716_000 * 3 * 6.6 / 3600)  # ~3,900 V100-hours
    assert plan.hours["T4"] == pytest.approx(plan.hours["V100"] / 0.35)
    assert plan.hours["H100"] < plan.hours["A100"] < plan.hours["V100"]
    assert "V100 3,938.0 h" in plan.summary()


def test_training_passes_and_measured_figures():
    plan = estimate("paper", {"randaugment": 10_000}, trainings=3, train_passes=3 * 100 * 10_000, measured={})
    assert plan.hours["V100"] == pytest.approx((10_000 * 0.008 + 3e6 / 900) / 3600)
    measured = estimate("paper", {"gif-sd": 3600}, measured={"NVIDIA A100-SXM4-40GB": {"gif-sd": 0.5}})
    assert measured.hours["A100"] == pytest.approx(0.5)  # gifkit's own figure wins over the scaled paper's
    mini = estimate("mini", {"gif-vae": 1000}, trainings=2, train_passes=2 * 300 * 64)
    assert list(mini.hours) == ["2-core CPU"] and mini.hours["2-core CPU"] == pytest.approx(
        (1000 * 0.016 + 38_400 / 300) / 3600)
    assert "2 classifier training(s)" in mini.summary()
