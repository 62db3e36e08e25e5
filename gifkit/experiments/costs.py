"""What a run will cost, said before it starts: images to generate, models to train, hours per device class.

:func:`estimate` turns counts (images per method, classifier trainings and the image passes they make) into
times per device class:

* generation: a figure *measured* for the method where gifkit has one (this machine's mini and smoke runs,
  ``results/gpu/<gpu>.json`` from ``make gpu-check``, or ``measured=``), else the paper's Table 6 figure on a
  V100 (GIF-SD 6.6 s per image) scaled by approximate public fp16 Stable Diffusion throughputs
  (:data:`SD_SPEED`, relative to a V100) and stated as such;
* training: image passes divided by approximate public ResNet-50 training throughputs at 224 px with mixed
  precision (:data:`TRAIN_IMAGES_PER_S`), scaled by ``(224 / image_size)^2`` for smaller images, or this
  machine's measured rate on the mini profile.

These are planning numbers (factor-of-two accuracy), printed so that nobody starts a 4,000-GPU-hour study
thinking it takes an afternoon; the measured times of a run are in its outputs. :func:`grid_plan` counts the
images and trainings of a :func:`gifkit.experiments.study.run_grid` study from its arguments (dataset sizes:
:data:`TRAIN_SIZES`); every numbered notebook prints its plan before doing any work.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["SD_SPEED", "TRAIN_IMAGES_PER_S", "PAPER_SECONDS_PER_IMAGE", "MEASURED_CPU", "CostPlan", "estimate",
           "measured_gpu_figures", "TRAIN_SIZES", "train_passes", "grid_plan"]

# throughput of fp16 SD v1 img2img relative to a V100 (approximate public figures, not measured by gifkit)
SD_SPEED = {"T4": 0.35, "V100": 1.0, "A100": 2.2, "H100": 3.5}
# ResNet-50 training images per second at 224 px, mixed precision (approximate public figures)
TRAIN_IMAGES_PER_S = {"T4": 250.0, "V100": 900.0, "A100": 2000.0, "H100": 3000.0}
# seconds per created image on one V100, the paper's Table 6 (GIF-DALLE is not reported; taken as GIF-SD's)
PAPER_SECONDS_PER_IMAGE = {"gif-sd": 6.6, "sd": 6.6, "gif-sd-tuned": 6.6, "sd-tuned": 6.6, "gif-dalle": 6.6,
                           "dalle": 6.6, "alia": 6.6, "dreamda": 13.2, "gif-mae": 0.008, "mae": 0.008,
                           "randaugment": 0.008, "cutout": 0.008, "gridmask": 0.007, "mixup": 0.008, "cutmix": 0.008}
# measured on a 2-core CPU (this project's machine, 2026-11): seconds per created image, and training passes/s
MEASURED_CPU = {"gif-vae": 0.016, "vae": 0.008, "randaugment": 0.0012, "cutout": 0.0012, "gridmask": 0.0012,
                "mixup": 0.0015, "cutmix": 0.0015, "train_images_per_s_28px": 300.0,
                "smoke_seconds_per_image": 0.05, "smoke_train_images_per_s": 600.0}


def measured_gpu_figures(folder: str | Path = "results/gpu") -> dict[str, dict]:
    """``{gpu name: {method: seconds per image}}`` from the ``make gpu-check`` reports in ``folder`` (a smoke run's
    report, tiny checkpoints on a CPU, is no GPU figure and is left out)."""
    out = {}
    for f in sorted(Path(folder).glob("*.json")):
        try:
            report = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(report, dict) or report.get("smoke"):
            continue
        per_image = report.get("seconds_per_image") or {}
        if isinstance(per_image, dict) and per_image:
            out[report.get("gpu", f.stem)] = {k: float(v) for k, v in per_image.items() if isinstance(v, (int, float))}
    return out


@dataclass
class CostPlan:
    """Counts and estimated hours; :meth:`summary` is what a notebook prints before it starts."""

    profile: str
    images: dict[str, int]
    trainings: int
    train_passes: int
    hours: dict[str, float] = field(default_factory=dict)  # device class -> estimated hours (generation + training)
    sources: list[str] = field(default_factory=list)

    @property
    def total_images(self) -> int:
        return sum(self.images.values())

    def summary(self) -> str:
        gen = ", ".join(f"{n:,} {m}" for m, n in self.images.items() if n) or "none"
        lines = [f"Cost plan ({self.profile} profile): images to generate: {gen} ({self.total_images:,} in all); "
                 f"{self.trainings} classifier training(s), {self.train_passes:,} image passes."]
        lines.append("Estimated time: " + "; ".join(f"{d} {_fmt_hours(h)}" for d, h in self.hours.items()) + ".")
        lines += [f"  ({s})" for s in self.sources]
        return "\n".join(lines)


def _fmt_hours(h: float) -> str:
    if h < 1 / 60:
        return f"{h * 3600:.0f} s"
    if h < 1:
        return f"{h * 60:.0f} min"
    return f"{h:,.1f} h"


def estimate(profile: str, images: dict[str, int], *, trainings: int = 0, train_passes: int = 0,
             image_size: int = 224, measured: dict[str, dict] | None = None) -> CostPlan:
    """A :class:`CostPlan`: ``images`` (method -> created images), ``trainings`` (classifier runs) and
    ``train_passes`` (their steps x batch size, summed) on ``profile``; ``measured``: ``{device: {method:
    seconds per image}}`` that win over the scaled paper figures (default: ``results/gpu/*.json``)."""
    plan = CostPlan(profile, {m: int(n) for m, n in images.items()}, int(trainings), int(train_passes))
    if profile in ("smoke", "mini"):
        if profile == "smoke":
            gen = plan.total_images * MEASURED_CPU["smoke_seconds_per_image"]
            train = train_passes / MEASURED_CPU["smoke_train_images_per_s"]
        else:
            gen = sum(n * MEASURED_CPU.get(m, 0.016) for m, n in plan.images.items())
            train = train_passes / MEASURED_CPU["train_images_per_s_28px"]
        plan.hours = {"2-core CPU": (gen + train) / 3600}
        plan.sources.append(f"measured on a 2-core CPU with the {profile} profile's models")
        return plan
    measured = measured if measured is not None else measured_gpu_figures()
    scale = (224 / image_size) ** 2
    for device, speed in SD_SPEED.items():
        own = next((v for k, v in measured.items() if device.lower() in k.lower()), {})
        gen = sum(n * own.get(m, PAPER_SECONDS_PER_IMAGE.get(m, 6.6) / (speed if m in _SD_LIKE else 1.0))
                  for m, n in plan.images.items())
        train = train_passes / (TRAIN_IMAGES_PER_S[device] * scale)
        plan.hours[device] = (gen + train) / 3600
    plan.sources.append("generation: the paper's Table 6 seconds per image on a V100 (GIF-SD 6.6 s), scaled by "
                        "approximate public fp16 SD throughputs (T4 0.35x, A100 2.2x, H100 3.5x), or gifkit's "
                        "own `make gpu-check` figures where they exist")
    plan.sources.append("training: approximate public ResNet-50 throughputs at 224 px (T4 250, V100 900, A100 2000, "
                        "H100 3000 images/s)")
    return plan


_SD_LIKE = {m for m, s in PAPER_SECONDS_PER_IMAGE.items() if s > 1}

# images of each dataset's training split as gifkit loads it (docs/design.md §4; mini: the small labelled set)
TRAIN_SIZES = {"cifar100s": 10_000, "caltech101": 3_060, "cars": 8_144, "stanford_cars": 8_144, "flowers": 6_552,
               "flowers102": 6_552, "dtd": 3_760, "pets": 3_842, "oxford_pets": 3_842, "pathmnist": 10_004,
               "breastmnist": 78, "organsmnist": 13_940, "cifar100lt": 10_847, "fashion-mnist": 200, "mnist": 200,
               "fashion-mnist-lt": 676, "smoke": 16, "smoke-lt": 174}


def train_passes(profile: str, n_original: int, n_expanded: int = 0, *, epochs: int | None = None,
                 steps: int | None = None, batch_size: int | None = None) -> int:
    """Image passes of one training run under ``profile``'s preset (:data:`gifkit.config.TRAIN_PRESETS`):
    ``steps x batch_size`` where the preset fixes the steps (mini: 300 x 64), else
    ``epochs x (n_original + n_expanded)`` (the expanded set's epochs; the original arm: ``n_expanded = 0``)."""
    from gifkit.config import TRAIN_PRESETS, get_profile

    preset = TRAIN_PRESETS[get_profile(profile).train_preset]
    steps = steps if steps is not None else preset.get("steps")
    if steps is not None:
        return int(steps) * int(batch_size or preset["batch_size"])
    return int(epochs or preset["epochs"]) * (int(n_original) + int(n_expanded))


def grid_plan(profile: str, datasets, methods, *, seeds, ratio=5, n_seeds: int | None = None,
              epochs: int | None = None, steps: int | None = None, batch_size: int | None = None, archs: int = 1,
              sizes: dict | None = None, extra_images: dict | None = None, extra_trainings: int = 0,
              image_size: int = 224, measured: dict | None = None) -> CostPlan:
    """The :class:`CostPlan` of a ``run_grid`` study: for each dataset x method x seed, ``n x ratio`` created images
    (``n`` = the dataset's training images (:data:`TRAIN_SIZES` or ``sizes``), at most ``n_seeds``; method
    ``original``: none) and ``archs`` trainings of :func:`train_passes` each. ``ratio`` may be ``{dataset: K}``;
    ``methods`` are names or ``run_grid`` entries ``(label, method, ...)``; ``extra_images`` (method -> images)
    and ``extra_trainings`` (of the first dataset's size, unexpanded) add what a notebook runs besides the grid.
    Finished cells of a resumed grid cost nothing; the plan counts them all."""
    datasets = [datasets] if isinstance(datasets, str) else list(datasets)
    images: dict[str, int] = {}
    trainings, passes = 0, 0
    for ds in datasets:
        n = (sizes or {}).get(ds, TRAIN_SIZES.get(str(ds).lower()))
        if n is None:
            raise ValueError(f"grid_plan: the size of {ds!r} is unknown; pass sizes={{{ds!r}: <training images>}}")
        k = ratio.get(ds, 5) if isinstance(ratio, dict) else int(ratio)
        seeded = min(int(n_seeds), n) if n_seeds else n
        for entry in methods:
            method = entry if isinstance(entry, str) else entry[1]
            made = 0 if method == "original" else seeded * k
            if made:
                images[method] = images.get(method, 0) + made * len(seeds)
            trainings += archs * len(seeds)
            passes += archs * len(seeds) * train_passes(profile, n, made, epochs=epochs, steps=steps,
                                                        batch_size=batch_size)
    for method, n in (extra_images or {}).items():
        images[method] = images.get(method, 0) + int(n)
    if extra_trainings:
        n0 = (sizes or {}).get(datasets[0], TRAIN_SIZES.get(str(datasets[0]).lower(), 0))
        trainings += extra_trainings
        passes += extra_trainings * train_passes(profile, n0, epochs=epochs, steps=steps, batch_size=batch_size)
    return estimate(profile, images, trainings=trainings, train_passes=passes, image_size=image_size,
                    measured=measured)
