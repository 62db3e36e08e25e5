"""Factories of the generative expansion methods' priors and guides, with their default settings beside them.

A prior factory is ``factory(profile, device, **options) -> Prior``: tiny random models of the real classes
under a ``tiny`` profile (smoke), real checkpoints otherwise (hub ids from :data:`gifkit.config.MODEL_IDS`,
or a local folder as ``model_id``). A guide factory is ``guide(profile, class_names, device, prior, **options)
-> FeatureClassifier`` for methods that do not guide with the profile's CLIP
(:func:`gifkit.models.guides.zero_shot_classifier`). Options a factory does not know (e.g. SD settings of a
dataset preset given to an MAE method) are ignored.
"""
from __future__ import annotations

from pathlib import Path

import torch

from gifkit.config import MODEL_IDS, get_profile
from gifkit.models import hub, tiny

__all__ = ["GIF_MAE_GUIDANCE", "GIF_DALLE_GUIDANCE", "sd_prior", "tuned_sd_prior", "mae_prior", "unclip_prior",
           "unclip_guide", "alia_prior", "dreamda_prior", "vae_prior", "vae_guide"]

# Neither GIF-MAE nor GIF-DALLE is in the official code; both follow the paper (App. D.1, D.3): eps = 5 for
# GIF-MAE (App. D.3) and eps = 0.1 for GIF-DALLE (App. D.1). The rest of the update (one signed step of 0.1,
# z ~ U[0,1), b ~ N(0,1)) is the GIF core's default. They win over a dataset preset's (GIF-SD) eps; --eps wins.
GIF_MAE_GUIDANCE = {"eps": 5.0}
GIF_DALLE_GUIDANCE = {"eps": 0.1}


def _dtype(profile: str, device, dtype: str | None) -> torch.dtype | None:
    """The precision of a real checkpoint: ``dtype`` (``--dtype``) or the profile's (``auto``: bf16 on CUDA GPUs
    of compute capability >= 8, fp16 on older ones, fp32 on a CPU; :func:`gifkit.models.hub.resolve_dtype`).
    Tiny models stay float32 unless ``dtype`` is given."""
    prof = get_profile(profile)
    if prof.tiny and dtype is None:
        return None
    return hub.resolve_dtype(dtype or prof.dtype, device)


def _tagged(prior, profile: str):
    """Record the profile on the prior (``run.json``'s provenance reads it)."""
    prior.profile = profile
    return prior


def sd_prior(profile: str, device, *, model_id: str | None = None, steps: int | None = None, strength: float = 0.9,
             guidance_scale: float = 50.0, prompts: str = "designed", domain: str | None = None,
             dtype: str | None = None, grad_checkpointing: bool | None = None, **_):
    """GIF-SD's prior: SD v1-4 img2img, DDIM (tiny SD under smoke); defaults: CIFAR100-S's official settings.
    ``dtype``: fp32 | fp16 | bf16 | auto (the profile's); ``grad_checkpointing``: recompute the VAE decoder's
    blocks in the guidance backward pass (less memory, more guidance time); default: on for a real checkpoint on
    a CUDA GPU with less than 24 GiB (a 16 GB T4 cannot hold one seed's K = 5 decoder activations at 512 px
    without it, README "Memory")."""
    from gifkit.priors.sd import SDPrior

    prof = get_profile(profile)
    torch_dtype = _dtype(profile, device, dtype)
    pipe = tiny.tiny_sd() if prof.tiny else hub.load_sd(model_id or MODEL_IDS["sd"], torch_dtype=torch_dtype)
    if prof.tiny and torch_dtype is not None:
        pipe = pipe.to(dtype=torch_dtype)
    if grad_checkpointing is None:
        dev = torch.device(device)
        grad_checkpointing = not prof.tiny and dev.type == "cuda" and \
            torch.cuda.get_device_properties(dev.index or 0).total_memory < 24 * 2 ** 30
    return _tagged(SDPrior(pipe, steps=steps or prof.sd_steps, strength=strength, guidance_scale=guidance_scale,
                           prompts=prompts, domain=domain, device=device,
                           checkpointing=bool(grad_checkpointing)), profile)


def tuned_sd_prior(profile: str, device, *, model_id: str | None = None, **options):
    """:func:`sd_prior` on the fine-tuned SD in ``model_id`` (required: a ``gifkit finetune`` folder), on every
    profile: the smoke profile keeps its own settings (10 DDIM steps, tiny CLIP guidance) with the tuned tiny
    pipeline."""
    from gifkit.priors.sd import SDPrior

    if not model_id or model_id == MODEL_IDS["sd"]:
        raise ValueError("the prior-tuned SD methods need model_id: the folder written by `gifkit finetune` "
                         "(Python: gifkit.train.finetune.finetune_sd)")
    if not get_profile(profile).tiny:
        return sd_prior(profile, device, model_id=model_id, **options)
    base = sd_prior(profile, device, **options)  # the smoke profile's settings, then the tuned pipeline
    return _tagged(SDPrior(hub.load_sd(str(model_id)), steps=base.steps, strength=base.strength,
                           guidance_scale=base.guidance_scale, eta=base.eta, prompts=base.prompt_mode,
                           domain=base.domain, device=base.device, checkpointing=base.checkpointing), profile)


def mae_prior(profile: str, device, *, model_id: str | None = None, dtype: str | None = None, **_):
    """GIF-MAE's prior: MAE ViT-L/16 with masking ratio 0 (tiny MAE under smoke)."""
    from gifkit.priors.mae import MAEPrior

    torch_dtype = _dtype(profile, device, dtype)
    if get_profile(profile).tiny:
        model = tiny.tiny_mae() if torch_dtype is None else tiny.tiny_mae().to(torch_dtype)
    else:
        model = hub.load_mae(model_id or MODEL_IDS["mae"], torch_dtype=torch_dtype)
    return _tagged(MAEPrior(model, device=device), profile)


def unclip_prior(profile: str, device, *, model_id: str | None = None, steps: int | None = None,
                 super_res_steps: int | None = None, decoder_guidance_scale: float = 4.0, super_res: bool = False,
                 dtype: str | None = None, **_):
    """GIF-DALLE's prior: Karlo's unCLIP image variation (tiny under smoke); ``steps`` = decoder steps (paper
    profile 100, App. D.1). SD settings a preset or the CLI may pass (strength, guidance_scale, prompts) do not
    apply and are ignored."""
    from gifkit.priors.unclip import UnCLIPPrior

    prof = get_profile(profile)
    pipe = tiny.tiny_unclip() if prof.tiny else hub.load_unclip(model_id or MODEL_IDS["unclip"],
                                                                torch_dtype=_dtype(profile, device, dtype))
    return _tagged(UnCLIPPrior(pipe, decoder_steps=steps or prof.unclip_steps[0],
                               super_res_steps=super_res_steps or prof.unclip_steps[1],
                               guidance_scale=decoder_guidance_scale, super_res=super_res, device=device), profile)


def unclip_guide(profile: str, class_names, device, prior, **_):
    """GIF-DALLE guides with the unCLIP pipeline's own CLIP: its latent *is* that CLIP's image embedding."""
    return prior.make_classifier(class_names)


def alia_prior(profile: str, device, *, descriptions=None, editor: str = "img2img", template: str | None = None,
               model_id: str | None = None, steps: int | None = None, strength: float | None = None,
               guidance_scale: float | None = None, image_guidance_scale: float | None = None,
               dtype: str | None = None, **_):
    """ALIA's editor (tiny under smoke): SD v1.5 img2img (strength 0.6, guidance 7.5) or InstructPix2Pix
    (image guidance 1.2, text guidance 5): ALIA's official defaults. ``descriptions`` are required."""
    from gifkit.priors.alia import EDITOR_DEFAULTS, EDITORS, ALIAPrior

    if descriptions is None:
        raise ValueError("method 'alia' needs domain descriptions: run it with gifkit.experiments.alia.run_alia / "
                         "`gifkit expand --method alia` (which captions and summarises), or pass descriptions=[...]")
    if editor not in EDITORS:
        raise ValueError(f"editor must be one of {EDITORS}, got {editor!r}")
    prof = get_profile(profile)
    d = EDITOR_DEFAULTS[editor]
    dtype = _dtype(profile, device, dtype)
    if editor == "instruct":
        pipe = tiny.tiny_instruct_pix2pix() if prof.tiny else hub.load_instruct_pix2pix(
            model_id or MODEL_IDS["ip2p"], torch_dtype=dtype)
    else:
        pipe = tiny.tiny_sd() if prof.tiny else hub.load_sd(model_id or MODEL_IDS["sd15"], torch_dtype=dtype)
    return _tagged(ALIAPrior(pipe, descriptions, editor=editor, template=template, steps=steps or prof.sd_steps,
                     strength=strength if strength is not None else d.get("strength", 1.0),
                     guidance_scale=guidance_scale if guidance_scale is not None else d["guidance_scale"],
                     image_guidance_scale=image_guidance_scale if image_guidance_scale is not None
                     else EDITOR_DEFAULTS["instruct"]["image_guidance_scale"], device=device), profile)


def dreamda_prior(profile: str, device, *, model_id: str | None = None, steps: int | None = None,
                  strength: float | None = None, guidance_scale: float | None = None,
                  noise_scale: float | None = None, sampler: str | None = None, dtype: str | None = None, **_):
    """DreamDA (tiny SD under smoke, SD v1.5 otherwise): the seed re-generated with bottleneck noise at every
    step; the official CycleDiffusion sampler with 100 steps on real profiles, ``sampler="img2img"`` the other."""
    from gifkit.priors.dreamda import DEFAULTS, DreamDAPrior

    prof = get_profile(profile)
    pipe = tiny.tiny_sd() if prof.tiny else hub.load_sd(model_id or MODEL_IDS["sd15"],
                                                        torch_dtype=_dtype(profile, device, dtype))
    return _tagged(DreamDAPrior(pipe, sampler=sampler or DEFAULTS["sampler"],
                                steps=steps or (prof.sd_steps if prof.tiny else DEFAULTS["steps"]),
                                strength=strength if strength is not None else DEFAULTS["strength"],
                                guidance_scale=guidance_scale if guidance_scale is not None
                                else DEFAULTS["guidance_scale"],
                                noise_scale=noise_scale if noise_scale is not None else DEFAULTS["noise_scale"],
                                device=device), profile)


def vae_prior(profile: str, device, *, model_id: str | None = None, support=None, rotation: float = 15.0,
              flip: bool = True, sample: bool = True, temperature: float = 1.0, retrain: bool = False, **_):
    """The mini profile's prior: an untrained tiny VAE under smoke; the cached VAE of the dataset otherwise
    (``model_id``: a dataset name, default the support set's, else fashion-mnist; or a folder with config.json)."""
    from gifkit.priors.vae import VAEPrior, get_vae, load_vae, tiny_vae

    if get_profile(profile).tiny:
        vae = tiny_vae()
    else:
        name = model_id or getattr(support, "name", None) or "fashion-mnist"
        vae = load_vae(name)[0] if Path(name).is_dir() else get_vae(name, retrain=retrain)[0]
    return _tagged(VAEPrior(vae, rotation=rotation, flip=flip, sample=sample, temperature=temperature, device=device),
                   profile)


def vae_guide(profile: str, class_names, device, prior, *, support=None, guide_size: int = 112,
              logit_scale: float | str = "fit", **_):
    """The mini profile's guide: ImageNet EfficientNet-Lite0 features with class prototypes from ``support``
    (the small labelled set); the tiny CLIP under smoke."""
    if get_profile(profile).tiny:
        from gifkit.models.guides import zero_shot_classifier

        return zero_shot_classifier(profile, class_names, device)
    if support is None:
        raise ValueError("the mini profile's guidance needs the small labelled set (support=dataset) for its "
                         "class prototypes")
    from gifkit.models.protoguide import PrototypeClassifier, load_lite0

    return PrototypeClassifier(load_lite0(), support, class_names, image_size=guide_size,
                               logit_scale=logit_scale).to(device)
