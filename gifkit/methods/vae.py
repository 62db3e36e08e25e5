"""The mini profile's arms: GIF on a small VAE prior gifkit trains itself (``gif-vae``) and its unguided twin (``vae``).

Stable Diffusion cannot run on a 2-core CPU in minutes; the ``mini`` profile keeps GIF's mechanism with a prior of
the same *shape of latent* (:mod:`gifkit.priors.vae`: a convolutional VAE on 28 px Fashion-MNIST, f [4, 7, 7] with
unit variance, so channel-wise (z, b) of shape [K, 4, 1, 1] scale and shift whole feature maps as for SD, and eps
0.8 means a comparable change) and a guide that runs offline: ImageNet EfficientNet-Lite0 features with class
prototypes from the small labelled set (:mod:`gifkit.models.protoguide`; ``support`` is that set). The smoke
profile runs an untrained tiny VAE with the tiny CLIP.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gifkit.config import Check, get_profile, option
from gifkit.methods.base import MethodConfig, register
from gifkit.methods.gif import GIFConfig, Imagination
from gifkit.priors.vae import VAEPrior

__all__ = ["VAEConfig", "GifVAEConfig", "GifVAE", "VAE", "prototype_guide"]


def _logit_scale(text: str) -> float | str:
    return text if text == "fit" else float(text)


@dataclass
class VAEConfig(MethodConfig):
    """The mini VAE prior's and its prototype guide's settings."""

    model_id: str | None = option(None, "the cached VAE of this dataset name (default: the labelled set's, else "
                                        "fashion-mnist) or a folder with its config.json")
    rotation: float = option(15.0, "random rotation of the seed, degrees (SD prior's: 15)", check=Check(0, 180))
    flip: bool = option(True, "random horizontal flip of the seed (off for digits)")
    sample: bool = option(True, "f is a posterior sample (else the posterior mean)")
    temperature: float = option(1.0, "scale of the posterior sample's noise", check=Check(0))
    retrain: bool = option(False, "train the cached VAE again first", action="store_true")
    guide_size: int = option(112, "input size of the EfficientNet-Lite0 guide, px", check=Check(8, 1024, integer=True))
    logit_scale: float | str = option("fit", "the guide's logit scale: a number, or 'fit' (leave-one-out NLL on the "
                                             "labelled set)", convert=_logit_scale)
    support: Any = option(None, "the small labelled set the guide's class prototypes come from", cli=False)


@dataclass
class GifVAEConfig(GIFConfig, VAEConfig):
    """GIF-VAE's settings: GIF-SD's step (eps 0.8, one signed step of 0.1) and the VAE's."""


def prototype_guide(class_names, support, guide_size: int = VAEConfig.guide_size,
                    logit_scale: float | str = VAEConfig.logit_scale, device="cpu"):
    """The mini profile's guide: ImageNet EfficientNet-Lite0 features with class prototypes from ``support`` (the
    small labelled set), :class:`gifkit.models.protoguide.PrototypeClassifier`."""
    from gifkit.models.guides import prototype_classifier

    return prototype_classifier(class_names, support, guide_size, logit_scale).to(device)


@register("gif-vae")
class GifVAE(Imagination):
    """GIF on the mini VAE prior, guided by EfficientNet-Lite0 class prototypes."""

    summary = ("GIF on the mini profile's VAE prior (28 px), guided by EfficientNet-Lite0 class prototypes "
               "(channel-wise noise on the [4, 7, 7] latent)")
    Config = GifVAEConfig
    profiles = ("smoke", "mini")

    def build_prior(self) -> VAEPrior:
        from gifkit.priors.vae import get_vae, load_vae, tiny_vae

        cfg = self.config
        if get_profile(self.profile).tiny:
            vae = tiny_vae()
        else:
            name = cfg.model_id or getattr(cfg.support, "name", None) or "fashion-mnist"
            vae = load_vae(name)[0] if Path(name).is_dir() else get_vae(name, retrain=cfg.retrain)[0]
        return VAEPrior(vae, rotation=cfg.rotation, flip=cfg.flip, sample=cfg.sample, temperature=cfg.temperature,
                        device=self.device)

    def build_guide(self):
        """The ``guide`` option's, else EfficientNet-Lite0 features with class prototypes from ``support`` (the tiny
        CLIP on a tiny profile)."""
        if getattr(self.config, "guide", None) is not None:
            return self.chosen_guide()
        if get_profile(self.profile).tiny:
            from gifkit.models.guides import zero_shot_classifier

            return zero_shot_classifier(self.profile, self.class_names, self.device)
        return prototype_guide(self.class_names, self.config.support, self.config.guide_size,
                               self.config.logit_scale, self.device)


@register("vae")
class VAE(GifVAE):
    """The unguided mini VAE prior: posterior samples of the rotated/flipped seed, no perturbation."""

    summary = "unguided mini VAE prior: posterior samples of the rotated/flipped seed, no perturbation"
    Config = VAEConfig
    guided = False
