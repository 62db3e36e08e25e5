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
thinking it takes an afternoon; the measured times of a run are in its outputs.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["SD_SPEED", "TRAIN_IMAGES_PER_S", "PAPER_SECONDS_PER_IMAGE", "MEASURED_CPU", "CostPlan", "estimate",
           "measured_gpu_figures"]

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
    """``{gpu name: {method: seconds per image}}`` from the ``make gpu-check`` reports in ``folder``."""
    out = {}
    for f in sorted(Path(folder).glob("*.json")):
        try:
            report = json.loads(f.read_text())
        except (OSError, ValueError):
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
