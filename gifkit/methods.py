"""Expansion methods by name, and how each profile builds their models.

``build_models(method, profile, class_names, **overrides)`` returns the prior,
the zero-shot classifier, the guidance config (``None`` for unguided
baselines) and the parameters recorded in metadata. Profiles:
``smoke`` = tiny random models of the real classes (seconds, CI);
``paper`` = the real checkpoints (GPU); ``mini`` = the offline CPU profile.
"""
from __future__ import annotations

from dataclasses import dataclass, field
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
    guidance_defaults: dict | None = field(default=None, hash=False)  # GuidanceConfig fields of this method (win over a preset's GIF-SD eps)


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


def _tuned_sd_prior(profile: str, device, **kw):
    from gifkit.finetune import tuned_sd_prior  # prior tuning (Table 9): `gifkit finetune` writes the folder

    return tuned_sd_prior(profile, device, **kw)


register_method(Method("gif-sd-tuned", lambda p, d, **kw: _tuned_sd_prior(p, d, **kw), True,
                       "GIF-SD on a prior-tuned SD (model_id: a `gifkit finetune` folder; Table 9)"))
register_method(Method("sd-tuned", lambda p, d, **kw: _tuned_sd_prior(p, d, **{"prompts": "class", **kw}), False,
                       "unguided SD img2img on a prior-tuned SD (model_id: a `gifkit finetune` folder)"))


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
    if profile == "mini" and method not in MINI_METHODS:
        raise NotImplementedError(f"the 'mini' profile (offline, CPU) runs the small VAE prior only: methods "
                                  f"{', '.join(MINI_METHODS)}; use --profile smoke or paper for {method!r}")
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
    if m.guided or m.guidance_defaults:
        fields = {"eps": eps} if eps is not None else {}
        fields.update(m.guidance_defaults or {})
        fields.update({k: v for k, v in (guidance or {}).items() if v is not None})
        g = GuidanceConfig(**fields)
    make = getattr(prior, "make_classifier", None)  # priors whose latent is a CLIP embedding bring their CLIP
    classifier = make(class_names) if make is not None else build_classifier(profile, class_names, device)
    params = dict(getattr(prior, "params", {}))
    return prior, classifier, g, params


# ----------------------------------------------------------------------------- GIF-MAE, GIF-DALLE (issue 4)
# Neither variant is in the official code; both follow the paper (App. D.1, D.3), see gifkit/priors/{mae,unclip}.py.
# eps: the paper's App. D.3 sets eps = 5 for GIF-MAE and App. D.1 eps = 0.1 for GIF-DALLE (arXiv 2211.13976,
# NeurIPS 2023 version; the values are in the typeset math, which shared/seeds/gif_paper.txt lost). The rest of
# the update (one signed step of 0.1, z ~ U[0,1), b ~ N(0,1)) is the GIF core's default. A preset's eps is GIF-SD's
# and is overridden by these; --eps etc. still win.
GIF_MAE_GUIDANCE = {"eps": 5.0}
GIF_DALLE_GUIDANCE = {"eps": 0.1}


def _half(fp16: bool | None, device) -> bool:
    return fp16 if fp16 is not None else torch.device(device).type == "cuda"


def _mae_prior(profile: str, device, *, model_id: str = "facebook/vit-mae-large", fp16: bool | None = None, **_):
    """MAE ViT-L/16 with masking ratio 0 (tiny random MAE for ``smoke``), fp16 on CUDA for ``paper``."""
    from gifkit.priors.mae import MAEPrior

    if profile == "smoke":
        model = hub.tiny_mae()
    else:
        model = hub.load_mae(model_id or "facebook/vit-mae-large")
        if _half(fp16, device):
            model = model.half()
    return MAEPrior(model, device=device)


def _unclip_prior(profile: str, device, *, model_id: str = "kakaobrain/karlo-v1-alpha-image-variations",
                  steps: int | None = None, super_res_steps: int | None = None, decoder_guidance_scale: float = 4.0,
                  super_res: bool = False, fp16: bool | None = None, **_):
    """Karlo unCLIP image variation (tiny for ``smoke``); ``steps`` = decoder steps (smoke 4, paper 100, App. D.1).

    SD settings a preset or the CLI may pass (strength, guidance_scale, prompts) do not apply and are ignored.
    """
    from gifkit.priors.unclip import UnCLIPPrior

    if profile == "smoke":
        pipe, steps, sr_steps = hub.tiny_unclip(), steps or 4, super_res_steps or 2
    else:
        dtype = torch.float16 if _half(fp16, device) else None
        pipe = hub.load_unclip(model_id or "kakaobrain/karlo-v1-alpha-image-variations", torch_dtype=dtype)
        steps, sr_steps = steps or 100, super_res_steps or 7
    return UnCLIPPrior(pipe, decoder_steps=steps, super_res_steps=sr_steps, guidance_scale=decoder_guidance_scale,
                       super_res=super_res, device=device)


register_method(Method("gif-mae", lambda p, d, **kw: _mae_prior(p, d, **kw), True,
                       "GIF-MAE: MAE (mask ratio 0) token features, CLIP-guided channel-wise perturbation "
                       "(paper-described, no official code)", guidance_defaults=GIF_MAE_GUIDANCE))
register_method(Method("mae", lambda p, d, **kw: _mae_prior(p, d, **kw), False,
                       "unguided MAE baseline: random channel-wise perturbation of the tokens (Eq. 1, same eps), "
                       "no guidance step (--eps 0: plain reconstructions)",
                       guidance_defaults={**GIF_MAE_GUIDANCE, "opt_steps": 0}))
register_method(Method("gif-dalle", lambda p, d, **kw: _unclip_prior(p, d, **kw), True,
                       "GIF-DALLE: unCLIP (Karlo) on the CLIP image embedding, guided by the same CLIP, 64 px "
                       "(paper-described, no official code)", guidance_defaults=GIF_DALLE_GUIDANCE))
register_method(Method("dalle", lambda p, d, **kw: _unclip_prior(p, d, **kw), False,
                       "unguided unCLIP (Karlo) image variations of the seed embedding, no perturbation, 64 px"))


# ----------------------------------------------------------------------------- ALIA, DreamDA (issue 8)
# ALIA (arXiv 2305.16289) edits seeds with language-guided SD img2img / InstructPix2Pix; its captioning,
# description and filtering steps run around `expand` in gifkit.alia.run_alia (`gifkit expand --method alia`).
# DreamDA (arXiv 2403.12803) perturbs the U-Net bottleneck during img2img (gifkit.dreamda); AMST is gifkit.amst.


def _alia_prior(profile: str, device, *, descriptions=None, editor: str = "img2img", template: str | None = None,
                model_id: str | None = None, steps: int | None = None, strength: float | None = None,
                guidance_scale: float | None = None, image_guidance_scale: float | None = None,
                fp16: bool | None = None, **_):
    """ALIA's editor (tiny for ``smoke``): SD v1.5 img2img (strength 0.6, guidance 7.5) or InstructPix2Pix
    (image guidance 1.2, guidance 7.5). ``descriptions`` (the domain descriptions) are required."""
    from gifkit.alia import EDITOR_DEFAULTS, EDITORS, ALIAPrior

    if descriptions is None:
        raise ValueError("method 'alia' needs domain descriptions: run it with gifkit.alia.run_alia / "
                         "`gifkit expand --method alia` (which captions and summarises), or pass descriptions=[...]")
    if editor not in EDITORS:
        raise ValueError(f"editor must be one of {EDITORS}, got {editor!r}")
    d = EDITOR_DEFAULTS[editor]
    dtype = torch.float16 if _half(fp16, device) and profile != "smoke" else None
    if editor == "instruct":
        pipe = hub.tiny_instruct_pix2pix() if profile == "smoke" else hub.load_instruct_pix2pix(
            model_id or hub.INSTRUCT_PIX2PIX_ID, torch_dtype=dtype)
    else:
        pipe = hub.tiny_sd() if profile == "smoke" else hub.load_sd(model_id or hub.SD15_ID, torch_dtype=dtype)
    return ALIAPrior(pipe, descriptions, editor=editor, template=template,
                     steps=steps or (10 if profile == "smoke" else 50),
                     strength=strength if strength is not None else d.get("strength", 1.0),
                     guidance_scale=guidance_scale if guidance_scale is not None else d["guidance_scale"],
                     image_guidance_scale=image_guidance_scale if image_guidance_scale is not None
                     else EDITOR_DEFAULTS["instruct"]["image_guidance_scale"], device=device)


def _dreamda_prior(profile: str, device, *, model_id: str | None = None, steps: int | None = None,
                   strength: float | None = None, guidance_scale: float | None = None,
                   noise_scale: float | None = None, fp16: bool | None = None, **_):
    """DreamDA (tiny SD for ``smoke``, SD v1.5 for ``paper``): img2img with bottleneck noise at every step."""
    from gifkit.dreamda import DEFAULTS, DreamDAPrior

    if profile == "smoke":
        pipe, steps = hub.tiny_sd(), steps or 10
    else:
        dtype = torch.float16 if _half(fp16, device) else None
        pipe, steps = hub.load_sd(model_id or hub.SD15_ID, torch_dtype=dtype), steps or 50
    return DreamDAPrior(pipe, steps=steps, strength=strength if strength is not None else DEFAULTS["strength"],
                        guidance_scale=guidance_scale if guidance_scale is not None else DEFAULTS["guidance_scale"],
                        noise_scale=noise_scale if noise_scale is not None else DEFAULTS["noise_scale"],
                        device=device)


register_method(Method("alia", lambda p, d, **kw: _alia_prior(p, d, **kw), False,
                       "ALIA: captions -> LLM domain descriptions -> SD img2img / InstructPix2Pix edits -> "
                       "semantic + confidence filters (run through gifkit.alia.run_alia)"))
register_method(Method("dreamda", lambda p, d, **kw: _dreamda_prior(p, d, **kw), False,
                       "DreamDA: SD img2img from the seed with Gaussian noise on the U-Net bottleneck at every "
                       "reverse step (pseudo-labels: `gifkit train --amst`)"))


# ----------------------------------------------------------------------------- the mini profile (issue 6)
# A small conv VAE that gifkit trains itself (gifkit/priors/vae.py) replaces SD, and an ImageNet EfficientNet-Lite0
# with class prototypes from the small labelled set (gifkit/protoguide.py) replaces CLIP's zero-shot classifier.
# The guidance settings are GIF-SD's official ones (eps 0.8, one signed step of 0.1, channel-wise noise).
MINI_METHODS = ("gif-vae", "vae")


def _vae_prior(profile: str, device, *, model_id: str | None = None, support=None, rotation: float = 15.0,
               flip: bool = True, sample: bool = True, temperature: float = 1.0, guide_size: int = 112,
               logit_scale: float | str = "fit", retrain: bool = False, **_):
    """The mini VAE prior: untrained tiny VAE + tiny CLIP for ``smoke``; for ``mini`` the cached VAE of the dataset
    (``model_id``: a dataset name, default the support set's, else fashion-mnist; or a folder with config.json)
    and the EfficientNet-Lite0 prototype classifier built from ``support`` (the small labelled set)."""
    from pathlib import Path

    from gifkit.priors.vae import VAEPrior, get_vae, load_vae, tiny_vae

    if profile == "smoke":
        return VAEPrior(tiny_vae(), rotation=rotation, flip=flip, sample=sample, temperature=temperature,
                        device=device)
    if profile != "mini":
        raise NotImplementedError("the VAE prior is the mini profile's (28 px grey images); use --profile mini")
    if support is None:
        raise ValueError("the mini profile's guidance needs the small labelled set (support=dataset) for its "
                         "class prototypes")
    name = model_id or getattr(support, "name", None) or "fashion-mnist"
    vae = load_vae(name)[0] if Path(name).is_dir() else get_vae(name, retrain=retrain)[0]

    def make_classifier(class_names):
        from gifkit.protoguide import PrototypeClassifier, load_lite0

        return PrototypeClassifier(load_lite0(), support, class_names, image_size=guide_size,
                                   logit_scale=logit_scale).to(device)

    prior = VAEPrior(vae, rotation=rotation, flip=flip, sample=sample, temperature=temperature, device=device)
    prior.make_classifier = make_classifier  # build_models asks the prior for its classifier
    return prior


register_method(Method("gif-vae", lambda p, d, **kw: _vae_prior(p, d, **kw), True,
                       "GIF on the mini profile's VAE prior (28 px), guided by EfficientNet-Lite0 class prototypes "
                       "(channel-wise noise on the [4, 7, 7] latent; profiles mini and smoke)"))
register_method(Method("vae", lambda p, d, **kw: _vae_prior(p, d, **kw), False,
                       "unguided mini VAE prior: posterior samples of the rotated/flipped seed, no perturbation"))
