"""Expansion methods by name, and how each profile builds their models.

``build_models(method, profile, class_names, **overrides)`` returns the prior,
the zero-shot classifier, the guidance config (``None`` for unguided
baselines) and the parameters recorded in metadata. Profiles:
``smoke`` = tiny random models of the real classes (seconds, CI);
``paper`` = the real checkpoints (GPU); ``mini`` = the offline CPU profile.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from gifkit import hub
from gifkit.guidance import ZeroShotClassifier
from gifkit.imagine import PRESETS, GuidanceConfig

__all__ = ["METHODS", "Method", "build_models", "build_classifier", "register_method", "PRIOR_METHODS"]


@dataclass(frozen=True)
class Method:
    """A generative expansion method: which prior it builds, and whether guidance is on."""

    name: str
    build_prior: Callable[..., object]  # (profile, device, **overrides) -> Prior
    guided: bool
    doc: str = ""


METHODS: dict[str, Method] = {}


def register_method(m: Method) -> Method:
    METHODS[m.name] = m
    return m


def build_classifier(profile: str, class_names: list[str], device: torch.device | str = "cpu",
                     clip_name: str = "ViT-B-32", clip_pretrained: str = "openai") -> ZeroShotClassifier:
    """CLIP zero-shot classifier: tiny random CLIP for ``smoke``, the real one for ``paper``."""
    bundle = hub.tiny_clip() if profile == "smoke" else hub.load_clip(clip_name, clip_pretrained, device=device)
    return ZeroShotClassifier(bundle.model.to(device), bundle.tokenizer, class_names).to(device)


def _sd_prior(profile: str, device, *, model_id: str = "CompVis/stable-diffusion-v1-4", steps: int | None = None,
              strength: float = 0.9, guidance_scale: float = 50.0, prompts: str = "designed",
              domain: str | None = None, fp16: bool | None = None, **_):
    from gifkit.priors.sd import SDPrior

    if profile == "smoke":
        pipe, steps = hub.tiny_sd(), steps or 10
    else:
        half = fp16 if fp16 is not None else torch.device(device).type == "cuda"
        pipe, steps = hub.load_sd(model_id, torch_dtype=torch.float16 if half else None), steps or 50
    return SDPrior(pipe, steps=steps, strength=strength, guidance_scale=guidance_scale, prompts=prompts,
                   domain=domain, device=device)


register_method(Method("gif-sd", lambda p, d, **kw: _sd_prior(p, d, **kw), True,
                       "GIF-SD: SD img2img with designed prompts + CLIP-guided channel-wise latent perturbation"))
register_method(Method("sd", lambda p, d, **kw: _sd_prior(p, d, **{"prompts": "class", **kw}), False,
                       "unguided SD img2img baseline ('a photo of a {class}' prompts, no perturbation)"))

PRIOR_METHODS = METHODS  # the generative ones; augmentation baselines live in gifkit.augment


def build_models(method: str, profile: str, class_names: list[str], *, preset: str | None = None,
                 device: torch.device | str | None = None, guidance: dict | None = None, **overrides):
    """Prior, classifier, guidance config and metadata params for ``method`` under ``profile``.

    ``preset`` (e.g. ``"cifar100s"``) fills the paper's per-dataset settings;
    explicit ``overrides`` (strength, guidance_scale, steps, ...) and
    ``guidance`` fields (eps, noise, update, ...) win over it.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; known: {', '.join(sorted(METHODS))}")
    if profile == "mini":
        raise NotImplementedError("the 'mini' profile (offline CPU prior on Fashion-MNIST) is not available yet; "
                                  "use --profile smoke or paper")
    m = METHODS[method]
    device = torch.device(device) if device is not None else hub.best_device()
    if preset and preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    settings = dict(PRESETS[preset]) if preset else {}
    settings.pop("ratio", None)
    eps = settings.pop("eps", None)
    settings.update({k: v for k, v in overrides.items() if v is not None})
    prior = m.build_prior(profile, device, **settings)
    g = None
    if m.guided:
        fields = {"eps": eps} if eps is not None else {}
        fields.update({k: v for k, v in (guidance or {}).items() if v is not None})
        g = GuidanceConfig(**fields)
    classifier = build_classifier(profile, class_names, device)
    params = dict(getattr(prior, "params", {}))
    return prior, classifier, g, params
