"""Expansion methods by name: the registry every entry point (``gifkit expand``, the study grid, the
notebooks, ``--help``) reads.

A :class:`Method` is a generative prior (``kind="prior"``: built by a factory of :mod:`gifkit.methods.priors`,
run by :func:`gifkit.core.imagine.expand`, guided or not), an augmentation baseline (``kind="augment"``:
:func:`gifkit.methods.augment.expand_augment`) or a pipeline around a prior (``kind="pipeline"``: ALIA,
:func:`gifkit.experiments.alia.run_alia`). :func:`build_models` builds a prior method's models for a profile.
All built-in methods are registered below, in one table; :func:`register_method` adds one and refuses a
name that is taken.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable

import torch

from gifkit.config import DTYPES, GIF_SD_PRESETS, Check, check_fields, get_profile, option
from gifkit.core.imagine import GuidanceConfig
from gifkit.methods import augment, priors

__all__ = ["Method", "METHODS", "KINDS", "PriorOptions", "register_method", "get_method", "method_names",
           "build_models"]

KINDS = ("prior", "augment", "pipeline")


@dataclass(frozen=True)
class Method:
    """An expansion method. ``build_prior(profile, device, **options)``: the prior of a ``prior`` (or
    ``pipeline``) method; ``guided``: whether the GIF guidance step runs; ``guidance_defaults``:
    :class:`GuidanceConfig` fields of the method (they win over a dataset preset's GIF-SD eps);
    ``guide(profile, class_names, device, prior, **options)``: the guiding classifier when it is not the
    profile's CLIP; ``profiles``: the profiles it runs on (``None``: every one)."""

    name: str
    kind: str
    summary: str
    build_prior: Callable | None = None
    guided: bool = False
    guidance_defaults: dict = field(default_factory=dict, hash=False)
    guide: Callable | None = None
    profiles: tuple[str, ...] | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"method {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind != "augment" and self.build_prior is None:
            raise ValueError(f"method {self.name!r}: a {self.kind} method needs build_prior")


METHODS: dict[str, Method] = {}


@dataclass
class PriorOptions:
    """The options a generative method's factory takes (``None``: the method's default, or the dataset preset's);
    ``gifkit expand`` has a flag for each. A factory ignores the options that are not its own."""

    model_id: str | None = option(None, "hub id or local directory of the prior's checkpoint (SD, MAE, Karlo, "
                                        "InstructPix2Pix with --editor instruct)")
    clip_model: str | None = option(None, "open_clip architecture of the guiding CLIP (default ViT-B-32-quickgelu; "
                                          "alia: of its semantic filter, default ViT-L-14-quickgelu)")
    clip_pretrained: str | None = option(None, "the guiding CLIP's weights: an open_clip tag (default openai) or a "
                                               "local file / folder (e.g. a download of "
                                               "timm/vit_base_patch32_clip_224.openai)")
    dtype: str | None = option(None, "precision of the real checkpoints (default auto: bf16 on CUDA GPUs of compute "
                                     "capability >= 8, fp16 on older ones, fp32 on a CPU)", choices=DTYPES)
    grad_checkpointing: bool | None = option(None, "recompute the VAE decoder's blocks in the guidance backward "
                                                   "pass (GIF-SD: less memory, more time)", action="store_true")
    captioner_id: str | None = option(None, "ALIA: hub id or local directory of the BLIP captioner")
    llm_id: str | None = option(None, "ALIA: hub id or local directory of the text-generation model")
    steps: int | None = option(None, "sampler steps: SD's DDIM (smoke 10, paper 50) or the unCLIP decoder's "
                                     "(smoke 4, paper 100)", check=Check(1, 10_000, integer=True))
    strength: float | None = option(None, "img2img strength (SD, ALIA, DreamDA)", check=Check(0, 1, lo_open=True))
    guidance_scale: float | None = option(None, "classifier-free guidance scale of SD", check=Check(0))
    prompts: str | None = option(None, "GIF-SD's designed prompts or 'a photo of a {class}'",
                                 choices=("designed", "class"))
    noise_scale: float | None = option(None, "DreamDA: std of the noise added to the U-Net bottleneck at every "
                                             "step (default 3)", check=Check(0))
    sampler: str | None = option(None, "DreamDA: CycleDiffusion (default, the official code) or DDIM img2img",
                                 choices=("cycle", "img2img"))
    descriptions: list[str] | None = option(None, "ALIA: domain descriptions (default: BLIP captions summarised by "
                                                  "a text-generation model)")
    descriptions_file: str | None = option(None, "ALIA: descriptions, one per line (or a JSON list)")
    editor: str | None = option(None, "ALIA: SD img2img (default) or InstructPix2Pix", choices=("img2img", "instruct"))
    image_guidance_scale: float | None = option(None, "ALIA InstructPix2Pix (default 1.2)", check=Check(0))
    filter: str | None = option(None, "ALIA: filters applied to the edits (default both)", flag="--alia-filter",
                                choices=("both", "semantic", "confidence", "none"))
    filter_classifier: str | None = option(None, "ALIA: a finished `gifkit train` run for the confidence filter "
                                                 "(default: train one)")
    threshold_by: str | None = option(None, "ALIA: the confidence filter's threshold, the edit's label's (default, "
                                            "the official filter) or its predicted class's",
                                      flag="--alia-threshold-by", choices=("label", "prediction"))

    def __post_init__(self):
        check_fields(self)


def register_method(m: Method) -> Method:
    """Add ``m`` to :data:`METHODS`; a name that is taken raises ``ValueError``."""
    if m.name in METHODS or m.name == "original":
        raise ValueError(f"method name {m.name!r} is taken; register under another name")
    METHODS[m.name] = m
    return m


def get_method(name: str) -> Method:
    """The registered method ``name``; a clear error listing the known ones otherwise."""
    if name == "original":
        raise ValueError("method 'original' means no expansion; nothing to expand")
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; known: {', '.join(METHODS)}") from None


def method_names(kind: str | None = None) -> list[str]:
    """Registered method names (of one ``kind``), in registration order."""
    return [n for n, m in METHODS.items() if kind is None or m.kind == kind]


def build_models(method: str, profile: str, class_names: list[str], *, preset: str | None = None,
                 device: torch.device | str | None = None, guidance: dict | None = None, **overrides):
    """Prior, classifier, guidance config and metadata params of the prior method ``method`` under ``profile``.

    ``preset`` (e.g. ``"cifar100s"``) fills the paper's per-dataset GIF-SD settings
    (:data:`gifkit.config.GIF_SD_PRESETS`); explicit ``overrides`` (strength, guidance_scale, steps, dtype, ...)
    and ``guidance`` fields (eps, noise, update, ...) win over it. ``clip_model`` / ``clip_pretrained`` choose the
    guiding CLIP (:func:`gifkit.models.guides.guide_clip`; a local folder or file works).
    """
    from gifkit.models.guides import zero_shot_classifier
    from gifkit.models.hub import best_device

    m = get_method(method)
    if m.kind == "augment":
        raise ValueError(f"{method} is an augmentation baseline: it has no models (use expand_augment)")
    known = {f.name for f in dataclasses.fields(PriorOptions)}
    PriorOptions(**{k: v for k, v in overrides.items() if k in known})  # the numeric checks of the flags
    get_profile(profile)
    if m.profiles is not None and profile not in m.profiles:
        raise ValueError(f"method {method!r} runs on the {' and '.join(m.profiles)} profile(s), not {profile!r}")
    device = torch.device(device) if device is not None else best_device()
    if preset and preset not in GIF_SD_PRESETS:
        raise ValueError(f"unknown preset {preset!r}; known: {', '.join(GIF_SD_PRESETS)}")
    settings = dict(GIF_SD_PRESETS[preset]) if preset else {}
    settings.pop("ratio", None)
    eps = settings.pop("eps", None)
    settings.update({k: v for k, v in overrides.items() if v is not None})
    clip = {"name": settings.pop("clip_model", None), "pretrained": settings.pop("clip_pretrained", None)}
    prior = m.build_prior(profile, device, **settings)
    g = None
    if m.guided or m.guidance_defaults:
        fields = {"eps": eps} if eps is not None else {}
        fields.update(m.guidance_defaults)
        fields.update({k: v for k, v in (guidance or {}).items() if v is not None})
        g = GuidanceConfig(**fields)
    if m.guide is not None:
        classifier = m.guide(profile, list(class_names), device, prior, **settings)
    else:
        classifier = zero_shot_classifier(profile, class_names, device, **clip)
    params = dict(getattr(prior, "params", {}))
    return prior, classifier, g, params


def _sd(prompts: str) -> Callable:
    return lambda profile, device, **kw: priors.sd_prior(profile, device, **{"prompts": prompts, **kw})


def _tuned(prompts: str) -> Callable:
    return lambda profile, device, **kw: priors.tuned_sd_prior(profile, device, **{"prompts": prompts, **kw})


_NOT_MINI = ("smoke", "paper", "colab")
_MINI = ("smoke", "mini")
for _m in [
    # GIF with its three priors (the official code: SD), and their unguided baselines
    Method("gif-sd", "prior", "GIF-SD: SD img2img with designed prompts + CLIP-guided channel-wise latent "
           "perturbation", _sd("designed"), guided=True, profiles=_NOT_MINI),
    Method("sd", "prior", "unguided SD img2img baseline ('a photo of a {class}' prompts, no perturbation)",
           _sd("class"), profiles=_NOT_MINI),
    Method("gif-sd-tuned", "prior", "GIF-SD on a prior-tuned SD (model_id: a `gifkit finetune` folder; Table 9)",
           _tuned("designed"), guided=True, profiles=_NOT_MINI),
    Method("sd-tuned", "prior", "unguided SD img2img on a prior-tuned SD (model_id: a `gifkit finetune` folder)",
           _tuned("class"), profiles=_NOT_MINI),
    Method("gif-mae", "prior", "GIF-MAE: MAE (mask ratio 0) token features, CLIP-guided channel-wise perturbation "
           "(paper-described, no official code)", priors.mae_prior, guided=True,
           guidance_defaults=priors.GIF_MAE_GUIDANCE, profiles=_NOT_MINI),
    Method("mae", "prior", "unguided MAE baseline: random channel-wise perturbation of the tokens (Eq. 1, same eps), "
           "no guidance step (--eps 0: plain reconstructions)", priors.mae_prior,
           guidance_defaults={**priors.GIF_MAE_GUIDANCE, "opt_steps": 0}, profiles=_NOT_MINI),
    Method("gif-dalle", "prior", "GIF-DALLE: unCLIP (Karlo) on the CLIP image embedding, guided by the same CLIP, "
           "64 px (paper-described, no official code)", priors.unclip_prior, guided=True,
           guidance_defaults=priors.GIF_DALLE_GUIDANCE, guide=priors.unclip_guide, profiles=_NOT_MINI),
    Method("dalle", "prior", "unguided unCLIP (Karlo) image variations of the seed embedding, no perturbation, 64 px",
           priors.unclip_prior, guide=priors.unclip_guide, profiles=_NOT_MINI),
    # the mini profile's prior: a small VAE gifkit trains itself, guided by EfficientNet-Lite0 prototypes
    Method("gif-vae", "prior", "GIF on the mini profile's VAE prior (28 px), guided by EfficientNet-Lite0 class "
           "prototypes (channel-wise noise on the [4, 7, 7] latent)", priors.vae_prior, guided=True,
           guide=priors.vae_guide, profiles=_MINI),
    Method("vae", "prior", "unguided mini VAE prior: posterior samples of the rotated/flipped seed, no perturbation",
           priors.vae_prior, guide=priors.vae_guide, profiles=_MINI),
    # related methods
    Method("alia", "pipeline", "ALIA: captions -> LLM domain descriptions -> SD img2img / InstructPix2Pix edits -> "
           "semantic + confidence filters", priors.alia_prior, profiles=_NOT_MINI),
    Method("dreamda", "prior", "DreamDA: SD img2img from the seed with Gaussian noise on the U-Net bottleneck at "
           "every reverse step (pseudo-labels: `gifkit train --amst`)", priors.dreamda_prior, profiles=_NOT_MINI),
    # augmentation baselines (Table 1)
    *[Method(name, "augment", summary) for name, summary in augment.SUMMARIES.items()],
]:
    register_method(_m)
