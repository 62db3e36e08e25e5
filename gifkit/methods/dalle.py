"""DALLE: the unguided unCLIP baseline of Table 1 (the DALL-E2 rows).

GIF-DALLE's prior (:mod:`gifkit.methods.gif_dalle`: Karlo's unCLIP decoder on the seed's CLIP image embedding)
without perturbation: each variant is one decoder sample of the seed's embedding (its own generator), 64 px.
"""
from __future__ import annotations

from gifkit.methods.base import register
from gifkit.methods.gif_dalle import GifDalle, UnCLIPConfig

__all__ = ["Dalle"]


@register("dalle")
class Dalle(GifDalle):
    """Unguided unCLIP image variations of the seed embedding."""

    summary = "unguided unCLIP (Karlo) image variations of the seed embedding, no perturbation, 64 px"
    Config = UnCLIPConfig
    guided = False
