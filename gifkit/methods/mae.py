"""MAE: the unguided masked-autoencoder baseline of Table 1.

GIF-MAE's prior and perturbation (:mod:`gifkit.methods.gif_mae`: random channel-wise (z, b) on the token
features, projected into the same eps ball of 5) without the guidance step: what the perturbation alone does.
``eps=0`` gives plain reconstructions.
"""
from __future__ import annotations

from dataclasses import dataclass

from gifkit.config import Check, option
from gifkit.methods.base import register
from gifkit.methods.gif_mae import GifMAE, GifMAEConfig

__all__ = ["MAEConfig", "MAE"]


@dataclass
class MAEConfig(GifMAEConfig):
    """GIF-MAE's settings without the guidance step."""

    opt_steps: int = option(0, "guidance steps on (z, b) (the baseline: 0, a random perturbation only)",
                            check=Check(0, 10_000, integer=True))


@register("mae")
class MAE(GifMAE):
    """Unguided MAE: a random channel-wise perturbation of the tokens (Eq. 1, same eps), no guidance step."""

    summary = ("unguided MAE baseline: random channel-wise perturbation of the tokens (Eq. 1, same eps), no guidance "
               "step (--eps 0: plain reconstructions)")
    Config = MAEConfig
