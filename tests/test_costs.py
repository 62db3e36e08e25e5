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


def test_grid_plan_counts_images_and_trainings_by_hand():
    from gifkit.experiments.costs import grid_plan, train_passes

    # mini: 200 seeds x 5 variants x 2 seeds for gif-vae, none for original; every training 300 steps x 64
    plan = grid_plan("mini", "fashion-mnist", ["original", ("gif-vae-inf", "gif-vae", {})], seeds=[0, 1], ratio=5)
    assert plan.images == {"gif-vae": 2000} and plan.trainings == 4 and plan.train_passes == 4 * 300 * 64
    assert train_passes("mini", 200, 1000, steps=60) == 60 * 64
    # paper: the expanded arm trains 100 epochs over 10,000 + 1,000 images, the original 100 over 10,000
    paper = grid_plan("paper", "cifar100s", ["original", "gif-sd"], seeds=[0], ratio=5, n_seeds=200, measured={})
    assert paper.images == {"gif-sd": 1000} and paper.train_passes == 100 * 10_000 + 100 * 11_000
    assert paper.hours["V100"] == pytest.approx((1000 * 6.6 + 2_100_000 / 900) / 3600)
    # Table 1 of the paper profile: 2.1 million images per generative method, thousands of V100-hours
    ratios = {"cifar100s": 5, "pets": 30, "caltech101": 20, "cars": 20, "flowers": 20, "dtd": 20, "pathmnist": 5,
              "breastmnist": 5, "organsmnist": 5}
    t1 = grid_plan("paper", list(ratios), ["original", "sd", "gif-sd"], seeds=[0, 1, 2], ratio=ratios, measured={})
    assert t1.images["gif-sd"] == 3 * sum(n * ratios[d] for d, n in
                                          [("cifar100s", 10_000), ("pets", 3_842), ("caltech101", 3_060),
                                           ("cars", 8_144), ("flowers", 6_552), ("dtd", 3_760),
                                           ("pathmnist", 10_004), ("breastmnist", 78), ("organsmnist", 13_940)])
    assert t1.hours["V100"] > 8_000
    extra = grid_plan("smoke", "smoke", ["original"], seeds=[0], extra_images={"randaugment": 64}, extra_trainings=2)
    assert extra.images == {"randaugment": 64} and extra.trainings == 3
    with pytest.raises(ValueError, match="size of 'mine'"):
        grid_plan("paper", "mine", ["original"], seeds=[0])
