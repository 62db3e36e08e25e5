"""What a training run depends on: :class:`TrainConfig`, built from a preset by :func:`make_config`.

The presets are :data:`gifkit.config.TRAIN_PRESETS`: ``paper`` (the paper's protocol, App. D.4: ResNet-50
from scratch, 100 epochs, SGD with momentum 0.9 and weight decay 1e-4, cosine decay of lr 0.01 (0.1 for
CIFAR100-S and OrganSMNIST), 224 px with random rotation and flips), ``smoke`` (timm's tiny
``test_resnet`` at 32 px, seconds) and ``mini`` (a ResNet-18 adapted to 28 px, 300 steps on a CPU).
``official-original`` and ``official-expanded`` are the official training scripts of a dataset's two arms as their published commands run them
(:data:`gifkit.config.OFFICIAL_TRAINING`: optimiser, schedule, lr, transforms, normalisation).
Every field is a ``gifkit train`` flag.
"""
from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from typing import Sequence

from gifkit.config import (ARCHS, OFFICIAL_TRAINING, PAPER_LR, PROFILE_NAMES, PROFILES, TRAIN_PRESETS, Check,
                           check_fields, get_profile, option)

__all__ = ["TrainConfig", "make_config", "parse_kv", "VOLATILE", "KEY_IF_SET", "SCHEDULES", "TRANSFORM_NAMES",
           "NORMALIZE_NAMES", "settings_of"]

# fields that do not change what is trained (a run may resume with other values)
VOLATILE = ("out", "resume", "progress", "workers", "device", "download", "seeds")
# fields left out of a run's resume key while they hold these values (runs recorded before the fields existed
# keep matching)
KEY_IF_SET = {"schedule": "cosine", "milestones": [21, 31], "gamma": 0.1, "transforms": "gifkit", "normalize": "model",
              "deterministic": False}
SCHEDULES = ("cosine", "cosine-epoch", "step")
TRANSFORM_NAMES = ("gifkit", "official-cifar", "official-caltech", "official-crop256", "official-dtd")
NORMALIZE_NAMES = ("model", "imagenet", "cifar10", "cifar100", "dtd")


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


@dataclass
class TrainConfig:
    """Everything a training run depends on (defaults: the paper's protocol); every field is a flag."""

    data: str = option("smoke", "dataset name or image folder", required=True)
    data_root: str | None = option(None, "where the dataset's files are")
    train_split: str = option("train", "training split", flag="--split")
    test_split: str | None = option("test", "test split; none: train without a test pass (e.g. ALIA's filter "
                                            "classifier, on a folder without a test split)")
    data_kwargs: dict = option(help="extra dataset argument, e.g. n_per_class=64 (repeatable)", flag="--data-arg",
                               action="append", convert=parse_kv, default_factory=dict)
    expanded: list[str] = option(help="expansion folder(s) added to the training data", default_factory=list)
    profile: str = option("paper", "which models the run builds (smoke: the tiny CLIP for --kd) and datasets load for",
                          choices=PROFILE_NAMES)
    arch: str = option("resnet50", f"{', '.join(ARCHS)} or any timm model name")
    pretrained: bool = option(False, "start from timm's pretrained weights", action="store_true")
    epochs: int = option(100, "epochs (evaluation rounds in the equal-steps mode)", check=Check(1, integer=True))
    steps: int | None = option(None, "equal-update-steps mode: total optimizer steps", check=Check(1, integer=True))
    steps_ratio: float | None = option(None, "equal-update-steps mode: as many steps as a set (1 + R) times the "
                                             "original takes", check=Check(0))
    batch_size: int = option(256, "images per step (per process)", check=Check(1, integer=True))
    lr: float = option(0.01, "peak learning rate", check=Check(0, lo_open=True))
    momentum: float = option(0.9, "SGD momentum", check=Check(0, 1))
    weight_decay: float = option(1e-4, "SGD weight decay", check=Check(0))
    nesterov: bool = option(False, "Nesterov momentum")
    schedule: str = option("cosine", "lr schedule: cosine per step without warm-up; cosine-epoch: per epoch "
                                     "(CosineAnnealingLR, the official scripts'); step: x gamma at each milestone "
                                     "epoch", choices=SCHEDULES)
    milestones: list[int] = option(help="epochs at whose start the step schedule multiplies the lr by gamma",
                                   default_factory=lambda: [21, 31])
    gamma: float = option(0.1, "the step schedule's factor", check=Check(0, 1, lo_open=True))
    transforms: str = option("gifkit", "transform recipe (gifkit.train.data.TRANSFORM_RECIPES): gifkit's square "
                                       "bicubic resize, or an official script's", choices=TRANSFORM_NAMES)
    normalize: str = option("model", "input mean/std: the model's (ImageNet unless pretrained) or an official "
                                     "script's", choices=NORMALIZE_NAMES)
    image_size: int = option(224, "training and test images are resized to this (bicubic)",
                             check=Check(1, 1 << 14, integer=True))
    rotation: float = option(15.0, "max random rotation in degrees (0: none)", check=Check(0, 180))
    hflip: bool = option(True, "random horizontal flips")
    vflip: bool = option(False, "random vertical flips")
    loss: str = option("ce", "cross-entropy or Balanced Softmax", choices=("ce", "balanced-softmax"),
                       convert=lambda v: v.replace("-", "_"))
    soft_labels: bool = option(True, "ignore the soft labels of mixup/cutmix expansions", flag="--hard-labels",
                               action="store_false")
    kd: str | None = option(None, "distil CLIP zero-shot probabilities (baseline)", choices=("clip",))
    kd_alpha: float = option(0.5, "weight of the distillation term", check=Check(0, 1))
    kd_temperature: float = option(4.0, "distillation temperature", check=Check(0, lo_open=True))
    deterministic: bool = option(False, "deterministic CUDA kernels (torch's deterministic algorithms, cuDNN "
                                        "without autotuning, CUBLAS_WORKSPACE_CONFIG); a CPU run is deterministic "
                                        "without it", action="store_true")
    precision: str = option("auto", "mixed precision (auto: bf16 or fp16 on a GPU, none on a CPU)",
                            choices=("auto", "no", "fp16", "bf16"))
    seed: int = option(0, cli=False)
    long_tail: bool | None = option(None, "report many/medium/few-shot accuracy (default: when the dataset has "
                                          "class counts)", action="store_true")
    workers: int = option(8, "data loader processes", check=Check(0, 1024, integer=True))
    device: str | None = option(None, "cpu to force the CPU")
    out: str | None = option(None, "run folder (seed_<n>/ per seed, aggregate.json); resumes", required=True)
    resume: bool = option(True, "start over instead of resuming", flag="--no-resume", action="store_false")
    progress: bool = option(True, "no progress bars", flag="--no-progress", action="store_false")
    download: bool = option(False, "allow downloading the dataset", action="store_true")

    def __post_init__(self):
        check_fields(self)
        if isinstance(self.test_split, str) and self.test_split.lower() == "none":
            self.test_split = None  # make_config keeps a field's value for None: "none" says no test pass
        if self.loss not in ("ce", "balanced_softmax"):
            raise ValueError(f"loss must be 'ce' or 'balanced_softmax', got {self.loss!r}")
        if self.kd not in (None, "clip"):
            raise ValueError(f"kd must be None or 'clip', got {self.kd!r}")
        for name, allowed in (("schedule", SCHEDULES), ("transforms", TRANSFORM_NAMES), ("normalize", NORMALIZE_NAMES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if self.precision not in ("auto", "no", "fp16", "bf16"):
            raise ValueError(f"precision must be auto, no, fp16 or bf16, got {self.precision!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be >= 1")
        if self.steps is not None and self.steps_ratio is not None:
            raise ValueError("give steps or steps_ratio, not both")
        get_profile(self.profile)


def make_config(preset: str | None = None, **overrides) -> TrainConfig:
    """A :class:`TrainConfig` from a training preset (:data:`gifkit.config.TRAIN_PRESETS`), the paper's
    per-dataset lr (:data:`gifkit.config.PAPER_LR`, paper preset only) or the official script's recipe of the
    dataset's arm (:data:`gifkit.config.OFFICIAL_TRAINING`, ``official-original`` / ``official-expanded``), then
    ``overrides`` (``None`` = keep).

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
    data = str(overrides.get("data", "")).lower()
    if preset == "paper" and data in PAPER_LR:
        values["lr"] = PAPER_LR[data]
    if preset.startswith("official-"):
        if data not in OFFICIAL_TRAINING:
            raise ValueError(f"preset {preset} has the official scripts' recipes of {', '.join(OFFICIAL_TRAINING)}; "
                             f"got data {overrides.get('data')!r} (use --preset paper)")
        values.update(OFFICIAL_TRAINING[data][preset.split("-", 1)[1]])
    values.update(overrides)
    return TrainConfig(**values)



def settings_of(cfg: TrainConfig) -> dict:
    """The fields of ``cfg`` that decide what is trained (not :data:`VOLATILE`): a run's resume key."""
    return {k: v for k, v in asdict(cfg).items()
            if k not in VOLATILE and not (k in KEY_IF_SET and v == KEY_IF_SET[k])}
