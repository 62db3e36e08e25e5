"""SD: the unguided Stable Diffusion img2img baseline of Table 1 (the SD rows of the paper's tables).

The same prior as GIF-SD (:mod:`gifkit.methods.gif_sd`: SD v1-4 img2img, the same presets and sampler settings)
with the prompt "a photo of a {class}" and no perturbation: each variant is one img2img sample of the seed,
decoded as it is. The guide (CLIP) only scores the images for the metadata.
"""
from __future__ import annotations

from dataclasses import dataclass

from gifkit.config import option
from gifkit.methods.base import register
from gifkit.methods.gif_sd import SDConfig, GifSD
from gifkit.priors.sd import PROMPT_MODES

__all__ = ["SDBaselineConfig", "SD"]


@dataclass
class SDBaselineConfig(SDConfig):
    """SD img2img's settings with the baseline's prompt."""

    prompts: str = option("class", "'a photo of a {class}' (the baseline) or GIF-SD's designed prompts",
                          choices=PROMPT_MODES)


@register("sd")
class SD(GifSD):
    """Unguided SD img2img: one sample per variant, no perturbation."""

    summary = "unguided SD img2img baseline ('a photo of a {class}' prompts, no perturbation)"
    Config = SDBaselineConfig
    guided = False
