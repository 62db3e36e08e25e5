"""GIF-SD and SD on a prior-tuned Stable Diffusion (Table 9, the medical datasets): ``gifkit finetune`` first.

The paper fine-tunes SD on the target data with DreamBooth before expanding the medical sets
(:mod:`gifkit.train.finetune`); these methods are GIF-SD (:mod:`gifkit.methods.gif_sd`) and the SD baseline
(:mod:`gifkit.methods.sd`) on that tuned pipeline, whose folder ``model_id`` names (required). On the smoke
profile the tuned tiny pipeline runs with the smoke profile's settings.
"""
from __future__ import annotations

from gifkit.config import MODEL_IDS, get_profile
from gifkit.methods.base import register
from gifkit.methods.gif_sd import GifSD
from gifkit.methods.sd import SD
from gifkit.priors.sd import SDPrior

__all__ = ["GifSDTuned", "SDTuned"]


class _Tuned:
    """The prior of a tuned method: the ``gifkit finetune`` folder in ``model_id``."""

    def build_prior(self) -> SDPrior:
        from gifkit.models import hub

        cfg = self.config
        if not cfg.model_id or cfg.model_id == MODEL_IDS["sd"]:
            raise ValueError(f"{self.name} needs model_id: the folder written by `gifkit finetune` "
                             f"(Python: gifkit.train.finetune.finetune_sd)")
        if not get_profile(self.profile).tiny:
            return cfg.sd_prior(self.profile, self.device)
        return cfg.speed_up(SDPrior(hub.load_sd(str(cfg.model_id)), steps=cfg.steps, strength=cfg.strength,
                                    guidance_scale=cfg.guidance_scale, prompts=cfg.prompts, domain=cfg.domain,
                                    device=self.device, checkpointing=bool(cfg.grad_checkpointing)), self.profile)


@register("gif-sd-tuned")
class GifSDTuned(_Tuned, GifSD):
    summary = "GIF-SD on a prior-tuned SD (model_id: a `gifkit finetune` folder; Table 9)"


@register("sd-tuned")
class SDTuned(_Tuned, SD):
    summary = "unguided SD img2img on a prior-tuned SD (model_id: a `gifkit finetune` folder)"
