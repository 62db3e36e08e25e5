"""The interface every generative prior implements, everything the imagination step reads from one.

A prior turns seed images into one latent per (seed, variant) job (:meth:`Prior.prepare`), decodes latents to
images in [0, 1] with or without gradients (:meth:`Prior.decode`), and says how channel-wise noise broadcasts
over its latent (:attr:`Prior.channel_dim`). Every member the step (:class:`gifkit.methods.gif.Imagination`)
and the driver (:func:`gifkit.methods.driver.expand`) read is declared here; subclasses set the class
attributes, the instance attributes in ``__init__`` and implement the abstract members.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, ClassVar

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


class Prior(abc.ABC):
    """Base class of the generative priors.

    Class attributes: ``name``; ``channel_dim``, the dimension channel-wise noise varies along (1 for
    ``[N, C, H, W]`` and ``[N, E]``, -1 for tokens ``[N, T, D]``); ``guidance_seeds_per_pass``, how many seeds'
    variants one guidance pass decodes with gradients (``None``: the whole batch; 1 where the decoder's
    activations dominate memory). Instance attributes set by ``__init__``: ``device``, ``resolution`` (side of
    the images :meth:`decode` returns) and ``weights``, the pipeline or model the prior runs (what
    :mod:`gifkit.models.hub`'s loaders tag with their source, read by :attr:`provenance`).
    """

    name: ClassVar[str] = "prior"
    channel_dim: ClassVar[int] = 1
    guidance_seeds_per_pass: ClassVar[int | None] = None
    device: torch.device
    resolution: int
    weights: Any

    @property
    @abc.abstractmethod
    def params(self) -> dict:
        """The settings recorded in every metadata row and in ``run.json``."""

    @property
    @abc.abstractmethod
    def dtype(self) -> torch.dtype:
        """The precision the prior's networks run in."""

    @property
    def provenance(self) -> dict | None:
        """Where the weights came from (hub id and revision, or folder and weight sha256), as the loaders of
        :mod:`gifkit.models.hub` record it; ``None`` for tiny random models and gifkit's own."""
        return getattr(self.weights, "gifkit_source", None)

    def memory_per_image(self, grad: bool) -> float | None:
        """Bytes one image needs on the device (``grad``: in the guidance pass, with the decoder's activations;
        else in the sampler), for ``--batch-size auto``; ``None``: no estimate (the default batch size is used)."""
        return None

    @abc.abstractmethod
    def prepare(self, jobs: list[Job]) -> Latents:
        """The latent f of every job (for GIF-SD: the denoised img2img latent), no gradients."""

    @abc.abstractmethod
    def decode(self, f: torch.Tensor, grad: bool = False) -> torch.Tensor:
        """Latents [N, ...] -> images [N, 3, R, R] in [0, 1]; differentiable when ``grad``."""

    def guidance_features(self, f: torch.Tensor, classifier, rows: slice | None = None) -> torch.Tensor:
        """The guide's representation [N, D] of the images latents ``f`` stand for (differentiable): what its
        class head reads (``classifier.representation``; for CLIP the L2-normalised image features).

        ``rows``: the rows of the last :meth:`prepare`'s batch that ``f`` holds (the guidance pass runs seed by
        seed); ``None``: all of them. Default: decode with gradients, then the classifier's image encoder.
        Priors whose latent *is* a CLIP embedding (unCLIP) override this.
        """
        return classifier.representation(self.decode(f, grad=True))

    def generate(self, f: torch.Tensor, jobs: list[Job]) -> torch.Tensor:
        """Final images [N, 3, R, R] in [0, 1] from the final latents, no gradients."""
        with torch.no_grad():
            return self.decode(f, grad=False)
