"""The interface every generative prior implements for :mod:`gifkit.core.imagine`.

A prior turns seed images into one latent per (seed, variant) job, decodes
latents to images in [0, 1] (with or without gradients), and tells the loop
how channel-wise noise broadcasts over its latent (``channel_dim``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from PIL import Image


@dataclass
class Job:
    """One image to create: seed ``index`` (in the dataset), ``variant`` in [0, K), and its seed image."""

    index: int
    variant: int
    image: Image.Image
    label: int
    class_name: str
    key: tuple = ()  # (global seed, index, variant): every random draw of this job derives from it


@dataclass
class Latents:
    """What :meth:`Prior.prepare` returns: f [N, ...] (one row per job) and per-job text."""

    f: torch.Tensor
    prompts: list[str] = field(default_factory=list)


class Prior:
    """Base class. Subclasses set ``name``, ``resolution``, ``channel_dim`` and implement the methods."""

    name: str = "prior"
    resolution: int = 0  # side of the images :meth:`decode` returns
    channel_dim: int = 1  # the dimension channel-wise noise varies along (1 for [N, C, H, W], -1 for tokens)
    device: torch.device = torch.device("cpu")

    def prepare(self, jobs: list[Job]) -> Latents:
        """The latent f of every job (for GIF-SD: the denoised img2img latent), no gradients."""
        raise NotImplementedError

    def decode(self, f: torch.Tensor, grad: bool = False) -> torch.Tensor:
        """Latents [N, ...] -> images [N, 3, R, R] in [0, 1]; differentiable when ``grad``."""
        raise NotImplementedError

    def guidance_features(self, f: torch.Tensor, classifier, rows: slice | None = None) -> torch.Tensor:
        """L2-normalised CLIP features [N, D] of the images latents ``f`` stand for (differentiable).

        ``rows``: the rows of the last :meth:`prepare`'s batch that ``f`` holds (the guidance pass runs seed by
        seed); ``None``: all of them. Default: decode with gradients, then the classifier's image encoder.
        Priors whose latent *is* a CLIP embedding (unCLIP) override this.
        """
        return classifier.image_features(self.decode(f, grad=True))

    def generate(self, f: torch.Tensor, jobs: list[Job]) -> torch.Tensor:
        """Final images [N, 3, R, R] in [0, 1] from the final latents, no gradients."""
        with torch.no_grad():
            return self.decode(f, grad=False)
