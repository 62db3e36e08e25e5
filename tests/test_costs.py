"""Cost plans: the arithmetic of counts and hours, on figures chosen so that every result is checked by hand."""
import json

import pytest

from gifkit.experiments import costs
from gifkit.experiments.costs import estimate, grid_plan, measured_gpu_figures, train_passes


@pytest.fixture
def round_figures(monkeypatch):
    """Two device classes with round speeds: a V100 (SD speed 1, training 1000 images/s) and a T4 at half of both;
    GIF-SD 6 s per image (a diffusion method: scaled by the SD speed), Cutout 0.5 s (not scaled)."""
    monkeypatch.setattr(costs, "SD_SPEED", {"V100": 1.0, "T4": 0.5})
    monkeypatch.setattr(costs, "TRAIN_IMAGES_PER_S", {"V100": 1000.0, "T4": 500.0})
    monkeypatch.setattr(costs, "PAPER_SECONDS_PER_IMAGE", {"gif-sd": 6.0, "cutout": 0.5})
    monkeypatch.setattr(costs, "MEASURED_CPU", {"gif-vae": 0.5, "train_images_per_s_28px": 100.0,
                                                "smoke_seconds_per_image": 2.0, "smoke_train_images_per_s": 50.0})


def test_gpu_hours_add_generation_and_training_per_device(round_figures):
    # V100: 600 x 6 s + 3600 x 0.5 s = 5400 s generation, 3.6 M passes / 1000 = 3600 s training: 2.5 h
    # T4: 600 x 6 / 0.5 + 3600 x 0.5 = 9000 s, 3.6 M / 500 = 7200 s: 4.5 h
    plan = estimate("paper", {"gif-sd": 600, "cutout": 3600}, trainings=3, train_passes=3_600_000, measured={})
    assert plan.hours == {"V100": pytest.approx(2.5), "T4": pytest.approx(4.5)}
    assert plan.total_images == 4200 and plan.trainings == 3
    assert "Estimated time: V100 2.5 h; T4 4.5 h." in plan.summary()
    assert "4,200 in all); 3 classifier training(s), 3,600,000 image passes." in plan.summary()
    # 112 px images train (224 / 112)^2 = 4 times faster: V100 (5400 + 900) s = 1.75 h
    assert estimate("paper", {"gif-sd": 600, "cutout": 3600}, train_passes=3_600_000, image_size=112,
                    measured={}).hours["V100"] == pytest.approx(1.75)


def test_a_measured_figure_replaces_the_scaled_paper_one_on_its_device_only(round_figures):
    # a measured 1 s per GIF-SD image on a "Tesla V100-SXM2-16GB": V100 600 + 1800 s; the T4 keeps 7200 + 1800 s
    plan = estimate("paper", {"gif-sd": 600, "cutout": 3600}, measured={"Tesla V100-SXM2-16GB": {"gif-sd": 1.0}})
    assert plan.hours == {"V100": pytest.approx(2400 / 3600), "T4": pytest.approx(9000 / 3600)}
    assert "V100 40 min; T4 2.5 h" in plan.summary()


def test_cpu_profiles_use_the_measured_cpu_figures(round_figures):
    # mini: 3600 x 0.5 s + 180,000 passes / 100 per s = 1800 + 1800 s; smoke: 900 x 2 s + 9000 / 50 = 1980 s
    mini = estimate("mini", {"gif-vae": 3600}, trainings=2, train_passes=180_000)
    assert mini.hours == {"2-core CPU": pytest.approx(1.0)} and "2-core CPU 1.0 h" in mini.summary()
    smoke = estimate("smoke", {"gif-sd": 600, "cutout": 300}, train_passes=9000)
    assert smoke.hours == {"2-core CPU": pytest.approx(1980 / 3600)} and "2-core CPU 33 min" in smoke.summary()
    assert "2-core CPU 20 s" in estimate("smoke", {"cutout": 10}).summary()  # 10 x 2 s


def test_measured_gpu_figures_read_the_gpu_check_reports(tmp_path):
    (tmp_path / "h100.json").write_text(json.dumps({"gpu": "NVIDIA H100", "seconds_per_image": {"gif-sd": 1.5,
                                                                                                "note": "x"}}))
    (tmp_path / "broken.json").write_text("{")
    (tmp_path / "no_figures.json").write_text(json.dumps({"gpu": "T4"}))
    assert measured_gpu_figures(tmp_path) == {"NVIDIA H100": {"gif-sd": 1.5}}


def test_train_passes_follow_the_steps_or_the_epochs():
    assert train_passes("mini", 200, 1000, steps=60, batch_size=10) == 600  # fixed steps: steps x batch
    assert train_passes("paper", 100, 400, epochs=3) == 3 * 500  # epochs over original + expanded
    assert train_passes("paper", 100, epochs=3) == 300


def test_grid_plan_counts_images_trainings_and_passes(round_figures):
    # 2 datasets (100 and 10 training images), ratio 5 and 2, 3 seeds, the original arm and GIF-SD, 2 epochs
    plan = grid_plan("paper", ["a", "b"], ["original", ("gif-sd-inf", "gif-sd", {})], seeds=[0, 1, 2],
                     ratio={"a": 5, "b": 2}, sizes={"a": 100, "b": 10}, epochs=2, measured={})
    assert plan.images == {"gif-sd": 3 * (100 * 5 + 10 * 2)} and plan.trainings == 2 * 2 * 3
    # per seed: a original 2 x 100, a gif-sd 2 x 600, b original 2 x 10, b gif-sd 2 x 30
    assert plan.train_passes == 3 * (200 + 1200 + 20 + 60)
    assert plan.hours["V100"] == pytest.approx((1560 * 6.0 + 4440 / 1000) / 3600)
    # n_seeds caps the seeds expanded; archs multiplies the trainings; extras add images and original-size runs
    capped = grid_plan("paper", "a", ["gif-sd"], seeds=[0], ratio=5, sizes={"a": 100}, n_seeds=20, epochs=1,
                       archs=2, extra_images={"cutout": 7}, extra_trainings=2, measured={})
    assert capped.images == {"gif-sd": 20 * 5, "cutout": 7} and capped.trainings == 2 + 2
    assert capped.train_passes == 2 * (100 + 100) + 2 * 100
    assert grid_plan("paper", "b", ["gif-sd"], seeds=[0], ratio=5, sizes={"b": 10}, n_seeds=20,
                     measured={}).images == {"gif-sd": 10 * 5}  # a cap above the dataset's size: every image
    with pytest.raises(ValueError, match="size of 'mine'"):
        grid_plan("paper", "mine", ["original"], seeds=[0])


def test_the_shipped_figures_make_the_papers_table_1_a_study_of_thousands_of_gpu_hours():
    """What the notebooks warn about before starting: Table 1's nine datasets at the paper's ratios, 3 seeds."""
    ratios = {"cifar100s": 5, "pets": 30, "caltech101": 20, "cars": 20, "flowers": 20, "dtd": 20, "pathmnist": 5,
              "breastmnist": 5, "organsmnist": 5}
    t1 = grid_plan("paper", list(ratios), ["original", "sd", "gif-sd"], seeds=[0, 1, 2], ratio=ratios, measured={})
    assert t1.images["gif-sd"] == t1.images["sd"] == 3 * sum(costs.TRAIN_SIZES[d] * k for d, k in ratios.items())
    assert t1.hours["T4"] > t1.hours["V100"] > t1.hours["A100"] > t1.hours["H100"] > 1000
