"""GIF-MAE: guided imagination on a masked autoencoder (paper §4 and App. D.3; no official code).

Prior: MAE ViT-L/16 (``facebook/vit-mae-large``) with masking ratio 0: the encoder's token features f
[1 + 196, 1024] (CLS first) are the latent, channel-wise noise (z, b) of shape [K, 1, 1024] is shared by all
tokens, and the MAE decoder reconstructs the image CLIP scores (:class:`gifkit.priors.mae.MAEPrior`). The paper's
eps for GIF-MAE is 5 (App. D.3); the rest of the step is GIF's default (one signed step of 0.1).
"""
from __future__ import annotations

from dataclasses import dataclass

from gifkit.config import MODEL_IDS, Check, get_profile, option
from gifkit.methods.base import register
from gifkit.methods.gif import CheckpointOptions, ClipGuideOptions, GIFConfig, Imagination, checkpoint_dtype
from gifkit.priors.mae import MAEPrior

__all__ = ["GifMAEConfig", "GifMAE"]


@dataclass
class GifMAEConfig(GIFConfig, CheckpointOptions, ClipGuideOptions):
    """GIF-MAE's settings: eps 5 (App. D.3), the GIF step's defaults, the MAE checkpoint."""

    eps: float = option(5.0, "L-inf radius of the projection of the token features (App. D.3: 5)", check=Check(0))


@register("gif-mae")
class GifMAE(Imagination):
    """GIF-MAE: MAE (mask ratio 0) token features, CLIP-guided channel-wise perturbation."""

    summary = ("GIF-MAE: MAE (mask ratio 0) token features, CLIP-guided channel-wise perturbation "
               "(paper-described, no official code)")
    Config = GifMAEConfig
    profiles = ("smoke", "paper", "colab")

    def build_prior(self) -> MAEPrior:
        from gifkit.models import hub, tiny

        torch_dtype = checkpoint_dtype(self.profile, self.device, self.config.dtype)
        if get_profile(self.profile).tiny:
            model = tiny.tiny_mae() if torch_dtype is None else tiny.tiny_mae().to(torch_dtype)
        else:
            model = hub.load_mae(self.config.model_id or MODEL_IDS["mae"], torch_dtype=torch_dtype)
        return MAEPrior(model, device=self.device)
