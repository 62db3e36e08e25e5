"""What a training run depends on: :class:`TrainConfig`, built from a preset by :func:`make_config`.

The presets are :data:`gifkit.config.TRAIN_PRESETS`: ``paper`` (the paper's protocol, App. D.4: ResNet-50
from scratch, 100 epochs, SGD with momentum 0.9 and weight decay 1e-4, cosine decay of lr 0.01 (0.1 for
CIFAR100-S and OrganSMNIST), 224 px with random rotation and flips), ``smoke`` (timm's tiny
``test_resnet`` at 32 px, seconds) and ``mini`` (a ResNet-18 adapted to 28 px, 300 steps on a CPU).
Every field is a ``gifkit train`` flag.
"""
from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from typing import Sequence

from gifkit.config import PAPER_LR, PROFILES, TRAIN_PRESETS, get_profile

__all__ = ["TrainConfig", "make_config", "parse_kv", "VOLATILE", "settings_of"]

# fields that do not change what is trained (a run may resume with other values)
VOLATILE = ("out", "resume", "progress", "workers", "device", "download", "seeds")


@dataclass
class TrainConfig:
    """Everything a training run depends on (defaults: the paper's protocol)."""

    data: str = "smoke"
    data_root: str | None = None
    train_split: str = "train"
    test_split: str = "test"
    data_kwargs: dict = field(default_factory=dict)
    expanded: list[str] = field(default_factory=list)
    profile: str = "paper"  # which models the run builds (smoke: the tiny CLIP for kd) and datasets load for
    arch: str = "resnet50"
    pretrained: bool = False
    epochs: int = 100
    steps: int | None = None  # equal-update-steps mode: total optimizer steps
    steps_ratio: float | None = None  # ... or the steps of a (1 + ratio)-times larger set in `epochs` epochs
    batch_size: int = 128
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    nesterov: bool = False
    image_size: int = 224
    rotation: float = 15.0
    hflip: bool = True
    vflip: bool = False
    loss: str = "ce"  # "ce" | "balanced_softmax"
    soft_labels: bool = True
    kd: str | None = None  # None | "clip"
    kd_alpha: float = 0.5
    kd_temperature: float = 4.0
    precision: str = "auto"  # auto | no | fp16 | bf16
    seed: int = 0
    long_tail: bool | None = None  # many/medium/few accuracy; None: when the dataset has class_counts
    workers: int = 8
    device: str | None = None
    out: str | None = None
    resume: bool = True
    progress: bool = True
    download: bool = False

    def __post_init__(self):
        if self.loss not in ("ce", "balanced_softmax"):
            raise ValueError(f"loss must be 'ce' or 'balanced_softmax', got {self.loss!r}")
        if self.kd not in (None, "clip"):
            raise ValueError(f"kd must be None or 'clip', got {self.kd!r}")
        if self.precision not in ("auto", "no", "fp16", "bf16"):
            raise ValueError(f"precision must be auto, no, fp16 or bf16, got {self.precision!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be >= 1")
        if self.steps is not None and self.steps_ratio is not None:
            raise ValueError("give steps or steps_ratio, not both")
        get_profile(self.profile)


def make_config(preset: str | None = None, **overrides) -> TrainConfig:
    """A :class:`TrainConfig` from a training preset (:data:`gifkit.config.TRAIN_PRESETS`), the paper's
    per-dataset lr (:data:`gifkit.config.PAPER_LR`, paper preset only), then ``overrides`` (``None`` = keep).

    ``preset`` defaults to the profile's (``overrides["profile"]``, default ``"paper"``); a preset named after a
    profile (``"smoke"``, ``"mini"``) also sets that profile unless ``profile`` is given.
    """
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if preset is None:
        preset = get_profile(overrides.get("profile", "paper")).train_preset
    if preset not in TRAIN_PRESETS:
        raise ValueError(f"preset must be one of {sorted(TRAIN_PRESETS)}, got {preset!r}")
    unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(TrainConfig)})
    if unknown:
        raise ValueError(f"unknown training option(s) {unknown}")
    values = dict(TRAIN_PRESETS[preset])
    if preset in PROFILES:
        values["profile"] = preset
    if preset == "paper" and str(overrides.get("data", "")).lower() in PAPER_LR:
        values["lr"] = PAPER_LR[str(overrides["data"]).lower()]
    values.update(overrides)
    return TrainConfig(**values)


def parse_kv(items: Sequence[str] | None) -> dict:
    """``["n_per_class=8", "size=64"]`` -> ``{"n_per_class": 8, "size": 64}`` (ints, floats, true/false, text)."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"expected KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        for cast in (int, float):
            try:
                out[k] = cast(v)
                break
            except ValueError:
                continue
        else:
            out[k] = {"true": True, "false": False}.get(v.lower(), v)
    return out



def settings_of(cfg: TrainConfig) -> dict:
    """The fields of ``cfg`` that decide what is trained (not :data:`VOLATILE`): a run's resume key."""
    return {k: v for k, v in asdict(cfg).items() if k not in VOLATILE}
