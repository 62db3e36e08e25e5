"""DreamDA (Fu et al., 2024, arXiv 2403.12803): every seed re-generated with Gaussian noise on the diffusion U-Net's
bottleneck at every reverse step (:class:`gifkit.priors.dreamda.DreamDAPrior`).

The defaults are the official run's: CycleDiffusion (DDPM inversion, eta 1) from SD v1.5, 100 steps (the smoke
profile's tiny SD runs 10), strength 0.8, guidance 7.5, an empty source prompt with source guidance 1.5, one x_t per
seed shared by its variants, N(0, 3^2) on the mid block's output of the target branch;
``sampler="img2img"`` is DDIM img2img with the same noise. The created images keep their seed's label in the
store; DreamDA's labels come later from AMST (``gifkit train --amst``). Not guided; CLIP scores the images for
the metadata.
"""
from __future__ import annotations

from dataclasses import dataclass

from gifkit.config import MODEL_IDS, Check, get_profile, option
from gifkit.methods.base import MethodConfig, register
from gifkit.methods.gif import CheckpointOptions, ClipGuideOptions, Imagination, checkpoint_dtype
from gifkit.priors.dreamda import SAMPLERS, DreamDAPrior

__all__ = ["DreamDAConfig", "DreamDA"]


@dataclass
class DreamDAConfig(MethodConfig, CheckpointOptions, ClipGuideOptions):
    """DreamDA's settings (the official run's)."""

    sampler: str = option("cycle", "CycleDiffusion (the official code) or DDIM img2img", choices=SAMPLERS)
    steps: int = option(100, "sampler steps (smoke profile 10)", check=Check(1, 10_000, integer=True))
    strength: float = option(0.8, "img2img strength", check=Check(0, 1, lo_open=True))
    guidance_scale: float = option(7.5, "classifier-free guidance scale", check=Check(0))
    noise_scale: float = option(3.0, "std of the noise added to the U-Net bottleneck at every step", check=Check(0))
    source_prompt: str = option("", "CycleDiffusion's source prompt (official: empty; 'class': the class prompt)")
    source_guidance_scale: float = option(1.5, "CycleDiffusion's source guidance scale (official 1.5)", check=Check(0))
    shared_start: bool = option(True, "draw x_t and the source branch's noise once per seed, shared by its variants "
                                      "(official); --no-shared-start: once per variant")

    profile_defaults = {"smoke": {"steps": 10}}


@register("dreamda")
class DreamDA(Imagination):
    """DreamDA: SD from the seed with Gaussian noise on the U-Net bottleneck at every reverse step."""

    summary = ("DreamDA: SD (CycleDiffusion, or DDIM img2img) from the seed with Gaussian noise on the U-Net "
               "bottleneck at every reverse step (pseudo-labels: `gifkit train --amst`)")
    Config = DreamDAConfig
    guided = False
    profiles = ("smoke", "paper", "colab")

    def build_prior(self) -> DreamDAPrior:
        from gifkit.models import hub, tiny

        cfg = self.config
        pipe = tiny.tiny_sd() if get_profile(self.profile).tiny else hub.load_sd(
            cfg.model_id or MODEL_IDS["sd15"], torch_dtype=checkpoint_dtype(self.profile, self.device, cfg.dtype))
        return DreamDAPrior(pipe, sampler=cfg.sampler, steps=cfg.steps, strength=cfg.strength,
                            guidance_scale=cfg.guidance_scale, noise_scale=cfg.noise_scale,
                            source_prompt=cfg.source_prompt, source_guidance_scale=cfg.source_guidance_scale,
                            shared_start=cfg.shared_start, device=self.device)
