"""GIF-DALLE: guided imagination in the CLIP image-embedding space of an unCLIP prior (paper §4, App. D.1).

The paper's DALL-E2 (trained on LAION-400M) is not public; the open stand-in is Karlo's unCLIP image variation
(``kakaobrain/karlo-v1-alpha-image-variations``, :class:`gifkit.priors.unclip.UnCLIPPrior`). The latent f is the
seed's CLIP image embedding; the guide is the zero-shot classifier of the *same* CLIP, which scores the perturbed
embedding directly (nothing is decoded for guidance); the unCLIP decoder turns the projected embedding into a
64 px image (no super-resolution, as the paper trains on the decoder's output). The paper's eps for GIF-DALLE is
0.1 (App. D.1), its decoder 100 DDIM steps at guidance scale 4 (the smoke profile's tiny decoder runs 4, the
colab profile 25).
"""
from __future__ import annotations

from dataclasses import dataclass

from gifkit.config import MODEL_IDS, Check, get_profile, option
from gifkit.methods.base import MethodConfig, register
from gifkit.methods.gif import CheckpointOptions, GIFConfig, Imagination, checkpoint_dtype
from gifkit.priors.unclip import UnCLIPPrior

__all__ = ["UnCLIPConfig", "GifDalleConfig", "GifDalle"]


@dataclass
class UnCLIPConfig(MethodConfig, CheckpointOptions):
    """The unCLIP prior's settings."""

    steps: int = option(100, "decoder steps of the unCLIP prior (smoke profile 4, colab 25)",
                        check=Check(1, 10_000, integer=True))
    decoder_guidance_scale: float = option(4.0, "classifier-free guidance scale of the unCLIP decoder (paper: 4)",
                                           check=Check(0))
    super_res: bool = option(False, "run unCLIP's super-resolution stage too (256 px; the paper uses the decoder's "
                                    "64 px images)", action="store_true")
    super_res_steps: int = option(7, "super-resolution steps (with --super-res; smoke profile 2)",
                                  check=Check(1, 10_000, integer=True))

    profile_defaults = {"smoke": {"steps": 4, "super_res_steps": 2}, "colab": {"steps": 25}}


@dataclass
class GifDalleConfig(GIFConfig, UnCLIPConfig):
    """GIF-DALLE's settings: eps 0.1 (App. D.1), the GIF step's defaults, the unCLIP prior's."""

    eps: float = option(0.1, "L-inf radius of the projection of the CLIP embedding (App. D.1: 0.1)", check=Check(0))


@register("gif-dalle")
class GifDalle(Imagination):
    """GIF-DALLE: unCLIP on the CLIP image embedding, guided by the same CLIP, 64 px."""

    summary = ("GIF-DALLE: unCLIP (Karlo) on the CLIP image embedding, guided by the same CLIP, 64 px "
               "(paper-described, no official code)")
    Config = GifDalleConfig
    profiles = ("smoke", "paper", "colab")

    def build_prior(self) -> UnCLIPPrior:
        from gifkit.models import hub, tiny

        cfg = self.config
        pipe = tiny.tiny_unclip() if get_profile(self.profile).tiny else hub.load_unclip(
            cfg.model_id or MODEL_IDS["unclip"], torch_dtype=checkpoint_dtype(self.profile, self.device, cfg.dtype))
        return UnCLIPPrior(pipe, decoder_steps=cfg.steps, super_res_steps=cfg.super_res_steps,
                           guidance_scale=cfg.decoder_guidance_scale, super_res=cfg.super_res, device=self.device)

    def build_guide(self):
        """The unCLIP pipeline's own CLIP: the latent *is* that CLIP's image embedding (no other guide)."""
        if getattr(self.config, "guide", None) is not None:  # dalle (unguided) has no guide option at all
            raise ValueError("gif-dalle guides with its unCLIP pipeline's own CLIP (its latent is that CLIP's image "
                             "embedding): it takes no guide option")
        return self.prior.make_classifier(self.class_names)
