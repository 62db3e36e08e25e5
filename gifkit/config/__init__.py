"""The settings gifkit shares across layers, each table under a name that says what it is.

* :data:`PROFILES`: what each profile (``smoke``, ``mini``, ``colab``, ``paper``) builds: tiny random models or
  real checkpoints, the precision, training and fine-tuning presets (:func:`get_profile` validates a name);
* :data:`MODEL_IDS`, :data:`GUIDANCE_CLIP`, :data:`ALIA_SEMANTIC_CLIP`: the checkpoints of the real profiles (hub
  ids; every loader also takes a local folder);
* :data:`EXPAND_CHECKS`: the checks of every expansion's run arguments (ratio, batch size, ...);
* :data:`TRAIN_PRESETS`, :data:`PAPER_LR`, :data:`OFFICIAL_TRAINING`, :data:`MACRO_DATASETS`: the classifier training
  protocols;
* :data:`FINETUNE_PRESETS`: prior tuning (DreamBooth-style SD fine-tuning);
* :data:`PAPER_DATASET`, :data:`PAPER_METHOD`: the names the paper's tables use for gifkit's datasets and methods.

Each expansion method's own settings (GIF-SD's CFG scale, strength, eps, sampler steps, its per-dataset presets,
...) live beside the method, in its file of :mod:`gifkit.methods`.
This module imports nothing from gifkit: every other layer may read it. Where each number comes from is
said beside it and in ``docs/design.md``.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["Check", "option", "check_fields", "EXPAND_CHECKS", "MAX_RATIO", "check_expand_args", "Profile",
           "PROFILES", "PROFILE_NAMES", "get_profile", "MODEL_IDS", "GUIDANCE_CLIP", "GUIDANCE_CLIP_REPO",
           "ALIA_SEMANTIC_CLIP", "ALIA_SEMANTIC_CLIP_REPO", "DTYPES",
           "DEFAULT_RATIO", "TRAIN_PRESETS", "PAPER_LR", "OFFICIAL_TRAINING", "NO_HFLIP", "ARCHS", "MACRO_DATASETS",
           "FINETUNE_PRESETS",
           "PAPER_DATASET", "PAPER_METHOD"]


# ----------------------------------------------------------------------------- how settings are declared


@dataclass(frozen=True)
class Check:
    """The one numeric check of gifkit's settings, shared by the command line and the Python API.

    A value passes when it is a real number (not a bool), finite, ``lo <= value`` (``lo < value`` with
    ``lo_open``), ``value <= hi``, and a whole number when ``integer``; ``None`` passes (an unset optional).
    :func:`option` attaches a check to a dataclass field (its ``__post_init__`` calls :func:`check_fields`,
    the generated flag applies it when parsing); :data:`EXPAND_CHECKS` holds those of the expansion arguments.
    """

    lo: float | None = None
    hi: float | None = None
    integer: bool = False
    lo_open: bool = False

    def describe(self) -> str:
        """What the check asks for, e.g. ``"an integer >= 1"`` or ``"a finite number in (0, 1]"``."""
        kind = "an integer" if self.integer else "a finite number"
        if self.lo is not None and self.hi is not None:
            return f"{kind} in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}]"
        if self.lo is not None:
            return f"{kind} {'>' if self.lo_open else '>='} {self.lo:g}"
        if self.hi is not None:
            return f"{kind} <= {self.hi:g}"
        return kind

    def __call__(self, name: str, value: Any) -> Any:
        """``value`` if it passes (an integral float becomes an int when ``integer``); else ``ValueError``
        naming ``name``, what is asked for and the value given."""
        if value is None:
            return None
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))
        if ok and self.integer:
            ok = float(value) == int(value)
        if ok:
            v = float(value)
            ok = (self.lo is None or (v > self.lo if self.lo_open else v >= self.lo)) and \
                (self.hi is None or v <= self.hi)
        if not ok:
            raise ValueError(f"{name} must be {self.describe()}, got {value!r}")
        return int(value) if self.integer else value


def option(default: Any = None, help: str = "", *, flag: str | None = None, choices=None, action: str | None = None,
           required: bool = False, convert: Callable | None = None, cli: bool = True, check: Check | None = None,
           **field_kwargs):
    """A dataclass field that is also a command-line flag (:mod:`gifkit.config.flags` generates the flag).

    ``flag``: the flag's name (default ``--`` + the field name with ``-``); ``choices``; ``action``:
    ``"store_true"`` / ``"store_false"`` (a flag that sets True / False) or ``"append"`` (repeatable, gathered
    into a list); ``required``: required on the command line; ``convert``: applied to the parsed value
    (e.g. ``balanced-softmax`` -> ``balanced_softmax``); ``cli=False``: no flag; ``check``: a :class:`Check`
    of the value, applied by the flag and by :func:`check_fields`. A ``list``/``dict``/``set`` default is given
    through ``default_factory`` (in ``field_kwargs``).
    """
    meta = {"help": help, "flag": flag, "choices": choices, "action": action, "required": required,
            "convert": convert, "cli": cli, "check": check}
    if "default_factory" in field_kwargs:
        return dataclasses.field(metadata=meta, **field_kwargs)
    return dataclasses.field(default=default, metadata=meta, **field_kwargs)


def check_fields(obj: Any) -> None:
    """Apply the :class:`Check` of every field of the dataclass instance ``obj`` (its ``__post_init__`` calls
    this); a value that fails raises ``ValueError`` naming the field."""
    for f in dataclasses.fields(obj):
        check = f.metadata.get("check")
        if check is not None:
            object.__setattr__(obj, f.name, check(f.name, getattr(obj, f.name)))


MAX_RATIO = 1000  # K images per seed: the paper uses at most 30; more is a typo, refused before any work
# the run arguments of every expansion (gifkit expand, gifkit.methods.expand)
EXPAND_CHECKS: dict[str, Check] = {
    "ratio": Check(1, MAX_RATIO, integer=True),
    "batch_size": Check(1, 1 << 16, integer=True),
    "limit": Check(1, integer=True),
    "output_size": Check(1, 1 << 14, integer=True),
    "seed": Check(0, (1 << 63) - 1, integer=True),
}


def check_expand_args(**values: Any) -> dict:
    """``values`` (``ratio``, ``batch_size``, ``limit``, ``output_size``, ``seed``) checked by
    :data:`EXPAND_CHECKS` and returned (integral floats as ints); ``None`` passes."""
    return {k: EXPAND_CHECKS[k](k, v) for k, v in values.items()}


# ----------------------------------------------------------------------------- profiles


DTYPES = ("auto", "fp32", "fp16", "bf16")  # --dtype; auto: bf16 on a CUDA GPU of compute capability >= 8, fp16 on
# older CUDA GPUs (T4, V100), fp32 on a CPU or MPS (gifkit.models.hub.resolve_dtype)


@dataclass(frozen=True)
class Profile:
    """What a profile builds. ``tiny``: tiny randomly initialised models of the real classes (no checkpoint);
    ``train_preset`` / ``finetune_preset``: entries of :data:`TRAIN_PRESETS` /
    :data:`FINETUNE_PRESETS`; ``dtype``: the precision of real checkpoints (one of :data:`DTYPES`; ``--dtype``
    overrides it); ``ratio``: the profile's K where it fixes one (the colab profile). Which methods run on which
    profile, and with which sampler steps, each method says in its file (:mod:`gifkit.methods`)."""

    name: str
    summary: str
    tiny: bool
    train_preset: str
    finetune_preset: str | None
    dtype: str = "auto"
    ratio: int | None = None


PROFILES: dict[str, Profile] = {p.name: p for p in [
    Profile("smoke", "tiny random models of the real classes and built-in synthetic data; seconds; what CI runs",
            tiny=True, train_preset="smoke", finetune_preset="smoke"),
    Profile("mini", "real Fashion-MNIST, a small VAE prior gifkit trains itself and an ImageNet EfficientNet-Lite0 "
                    "guide; offline on a 2-core CPU; minutes",
            tiny=False, train_preset="mini", finetune_preset=None, dtype="fp32"),
    Profile("paper", "the real checkpoints (SD v1-4, CLIP ViT-B/32, MAE ViT-L/16, Karlo unCLIP) and datasets; GPU",
            tiny=False, train_preset="paper", finetune_preset="paper"),
    # colab: real GIF-SD on a free Colab T4 (16 GB): 10 CIFAR-100 classes x 5 seeds, K = 5, the cifar100s preset
    # (CFG 50, strength 0.9, eps 0.8) at 20 DDIM steps instead of 50 (gifkit.experiments.colab; docs/colab.md);
    # its time on a T4 is estimated at 52-85 minutes (docs/gpu.md), not measured
    Profile("colab", "real SD v1-4 + CLIP ViT-B/32 on 10 CIFAR-100 classes x 5 seeds, K = 5, 20 DDIM steps; a free "
                     "Colab T4 (estimated 52-85 minutes, not measured)",
            tiny=False, train_preset="paper", finetune_preset=None, ratio=5),
]}
PROFILE_NAMES = tuple(PROFILES)


def get_profile(name: str) -> Profile:
    """The :class:`Profile` called ``name``; a clear error for an unknown one."""
    try:
        return PROFILES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown profile {name!r}; known: {', '.join(PROFILES)}") from None


# ----------------------------------------------------------------------------- checkpoints of the paper profile

MODEL_IDS: dict[str, str] = {
    "sd": "CompVis/stable-diffusion-v1-4",  # GIF-SD (the official code's prior)
    "sd15": "stable-diffusion-v1-5/stable-diffusion-v1-5",  # ALIA's img2img editor and DreamDA's base model
    "sd_vae": "stabilityai/sd-vae-ft-mse",  # the VAE of the paper's prior tuning (medical sets)
    "mae": "facebook/vit-mae-large",  # GIF-MAE
    "unclip": "kakaobrain/karlo-v1-alpha-image-variations",  # GIF-DALLE's open stand-in for DALL-E2
    "blip": "Salesforce/blip-image-captioning-large",  # ALIA step (a): captions
    "llm": "Qwen/Qwen2.5-1.5B-Instruct",  # ALIA step (b): an open instruction-tuned LM (ALIA used GPT-4 / Vicuna)
    "ip2p": "timbrooks/instruct-pix2pix",  # ALIA's InstructPix2Pix editor
    "taesd": "madebyollin/taesd",  # beyond the paper: a tiny autoencoder for GIF-SD's guidance decode (optional)
}
# open_clip (architecture, pretrained tag) of GIF's zero-shot guidance: OpenAI's CLIP ViT-B/32, which uses QuickGELU
# (open_clip 3.x builds plain "ViT-B-32" with GELU); the tag's weights live in GUIDANCE_CLIP_REPO on the Hub
GUIDANCE_CLIP = ("ViT-B-32-quickgelu", "openai")
GUIDANCE_CLIP_REPO = "timm/vit_base_patch32_clip_224.openai"
# the CLIP of ALIA's semantic filter: the official code's OpenAI ViT-L/14, also a QuickGELU model
ALIA_SEMANTIC_CLIP = ("ViT-L-14-quickgelu", "openai")
ALIA_SEMANTIC_CLIP_REPO = "timm/vit_large_patch14_clip_224.openai"


DEFAULT_RATIO = 5  # K, images per seed, when neither the caller nor the method (a preset) sets it


# ----------------------------------------------------------------------------- classifier training

# paper: the paper's protocol (App. D.4: ResNet-50 from scratch, 100 epochs, SGD momentum 0.9 without Nesterov,
#   cosine decay of lr 0.01, PAPER_LR per dataset, 224 px bicubic, rotation 15 degrees and flips), with what the
#   paper does not state taken from the official commands: batch 256 (every official command passes
#   --train-batch 256) and weight decay 1e-4. One recipe for every arm (the official scripts are not consistent:
#   docs/design.md §2);
# official-original / official-expanded: the official training script of the dataset's original-data / expanded-data
#   arm, exactly as its published command runs it (OFFICIAL_TRAINING, resolved per dataset by make_config);
# smoke: timm's tiny test_resnet at 32 px for 2 epochs (seconds on a CPU);
# mini: the mini experiment's classifier: ResNet-18 adapted to 28 px (mini_resnet18), 300 SGD steps on a CPU.
_PAPER_TRAINING = dict(arch="resnet50", epochs=100, batch_size=256, lr=0.01, momentum=0.9, weight_decay=1e-4,
                       nesterov=False, image_size=224, rotation=15.0, hflip=True, workers=8)
TRAIN_PRESETS: dict[str, dict] = {
    "paper": _PAPER_TRAINING,
    "official-original": _PAPER_TRAINING,  # + OFFICIAL_TRAINING[dataset]["original"]
    "official-expanded": _PAPER_TRAINING,  # + OFFICIAL_TRAINING[dataset]["expanded"]
    "smoke": dict(arch="test_resnet", epochs=2, batch_size=16, lr=0.05, momentum=0.9, weight_decay=1e-4,
                  image_size=32, rotation=15.0, hflip=True, workers=0),
    "mini": dict(arch="mini_resnet18", epochs=2, steps=300, batch_size=64, lr=0.05, momentum=0.9, weight_decay=5e-4,
                 image_size=28, rotation=15.0, hflip=True, workers=0, precision="no", device="cpu"),
}
PAPER_LR = {"cifar100s": 0.1, "organsmnist": 0.1}  # App. D.4
# The official GIF-SD training scripts (<dataset>.py: original arm; <dataset>_expanded_data_concat[_original].py:
# expanded arm) with the lr of their published commands (all pass --train-batch 256 --epochs 100). "cosine-epoch":
# Nesterov SGD with CosineAnnealingLR(T_max=epochs) stepped once per epoch; "step": plain SGD, lr x 0.1 at the
# start of epochs 21 and 31 (the scripts' --schedule/--gamma defaults; no command overrides them). The transform
# recipes and normalisations are gifkit.train.data.TRANSFORM_RECIPES / NORMALIZATIONS.
_COSINE = dict(nesterov=True, schedule="cosine-epoch")
_STEP = dict(nesterov=False, schedule="step", milestones=[21, 31], gamma=0.1)


def _official(lr, transforms, normalize, original, expanded, rotation=15.0):
    base = dict(lr=lr, transforms=transforms, normalize=normalize, rotation=rotation)
    return {"original": {**base, **original}, "expanded": {**base, **expanded}}


OFFICIAL_TRAINING: dict[str, dict[str, dict]] = {
    "cifar100s": _official(0.1, "official-cifar", "cifar10", _COSINE, _COSINE),
    "caltech101": _official(0.01, "official-caltech", "cifar100", _STEP, _STEP, rotation=0.0),
    "cars": _official(0.01, "official-crop256", "cifar100", _COSINE, _STEP),
    "flowers102": _official(0.1, "official-crop256", "cifar100", _COSINE, _STEP),
    "pets": _official(0.01, "official-crop256", "imagenet", _COSINE, _STEP),
    "dtd": _official(0.01, "official-dtd", "dtd", _COSINE, _STEP, rotation=0.0),
    "organsmnist": _official(0.1, "official-cifar", "cifar10", _COSINE, _COSINE),
    "pathmnist": _official(0.01, "official-cifar", "cifar10", _COSINE, _COSINE),
    "breastmnist": _official(0.01, "official-cifar", "cifar10", _COSINE, _COSINE),
}
OFFICIAL_TRAINING.update({"flowers102-official": OFFICIAL_TRAINING["flowers102"],
                          "pets-official": OFFICIAL_TRAINING["pets"]})
NO_HFLIP = ("mnist",)  # datasets whose class a horizontal flip can change (a digit's, not a garment's)
# architecture aliases of `gifkit train --arch` -> timm model names (any other timm name works too);
# resnext50 / wideresnet50 / mobilenetv2: the paper's Table 4; mini_resnet18: gifkit.models.mininet
ARCHS = {"resnet50": "resnet50", "resnext50": "resnext50_32x4d", "wideresnet50": "wide_resnet50_2",
         "wide_resnet50": "wide_resnet50_2", "mobilenetv2": "mobilenetv2_100", "tiny": "test_resnet",
         "mini_resnet18": "mini_resnet18"}
MACRO_DATASETS = ("pathmnist", "breastmnist", "organsmnist")  # the paper reports macro accuracy on these


# ----------------------------------------------------------------------------- prior tuning

# smoke: tiny random SD, a few steps at a large learning rate (the random U-Net has far to go);
# paper: the official medical setting (SD v1-4 with sd-vae-ft-mse, lr 2e-6, 400 steps, text encoder trained).
# The batch size of the official runs is not stated: 1 is diffusers' DreamBooth example's.
FINETUNE_PRESETS: dict[str, dict] = {
    "smoke": dict(steps=20, lr=1e-3, batch_size=4),
    "paper": dict(steps=400, lr=2e-6, batch_size=1, train_text_encoder=True, vae_id=MODEL_IDS["sd_vae"]),
}


# ----------------------------------------------------------------------------- names in the paper's tables

PAPER_DATASET = {"caltech101": "Caltech101", "cars": "Cars", "stanford_cars": "Cars", "flowers": "Flowers",
                 "flowers102": "Flowers", "dtd": "DTD", "cifar100s": "CIFAR100-S", "pets": "Pets",
                 "oxford_pets": "Pets", "pathmnist": "PathMNIST", "breastmnist": "BreastMNIST",
                 "organsmnist": "OrganSMNIST"}
PAPER_METHOD = {"original": "Original", "cutout": "Cutout", "gridmask": "GridMask", "randaugment": "RandAugment",
                "mixup": "Mixup", "cutmix": "CutMix", "mae": "MAE (unguided)", "dalle": "DALL-E2 (unguided)",
                "sd": "SD (unguided)", "gif-mae": "GIF-MAE", "gif-dalle": "GIF-DALLE", "gif-sd": "GIF-SD"}
