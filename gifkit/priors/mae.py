"""GIF-MAE: the masked-autoencoder prior (paper §4 "Implementing GIF with different
prior models", App. B.2 and App. D.3; docs/design.md §1.7).

The official code never released GIF-MAE; this module implements the paper's
description:

  1. the seed is resized to the MAE's image size (224 for ViT-L/16, bicubic)
     and normalised with the MAE processor's ImageNet mean / std;
  2. the MAE encoder runs with masking ratio 0, so every patch is kept; its
     token features f [N, 1 + L, D] are the latent (L patches plus the CLS
     token, after the encoder's final LayerNorm);
  3. the guided loop perturbs f channel-wise, i.e. with noise of shape
     [K, 1, D] shared by all tokens (``channel_dim = -1``; App. B.2 shows that
     per-token "pixel" noise makes images noisy, and remains available as
     ``GuidanceConfig(noise="pixel")``);
  4. the MAE decoder maps the (perturbed) tokens back to patches, which are
     un-patchified to the image; CLIP scores that image.

Design decisions (not fixed by the paper):

* **CLS token included in f.** The MAE decoder consumes the encoder's whole
  output, CLS first; treating it as one more token lets the channel-wise
  noise act on exactly what the decoder reads, and keeps f a single tensor.
* **Patch order is the identity.** With ``mask_ratio = 0`` transformers still
  shuffles tokens by random ``noise`` and unshuffles them in the decoder via
  ``ids_restore``. We pass ``noise = arange(L)`` so the shuffle and
  ``ids_restore`` are the identity: f's token t is patch t (row-major), and
  decoding needs no per-seed permutation.
* **norm_pix_loss.** ``facebook/vit-mae-large`` declares ``norm_pix_loss:
  false`` in its config: its decoder predicts the (ImageNet-normalised)
  pixels themselves, and :meth:`MAEPrior.to_images` only undoes the ImageNet
  normalisation. A checkpoint trained with ``norm_pix_loss: true`` predicts
  each patch normalised by that patch's own mean and (unbiased) variance,
  ``(p - mean) / sqrt(var + 1e-6)`` (see ``ViTMAEForPreTraining.forward``);
  for such a checkpoint the prior undoes it with the *seed's* per-patch
  statistics. :meth:`MAEPrior.prepare` computes them and keeps them in
  ``self._patch_stats`` (and on the returned :class:`MAELatents`), row-aligned
  with f; the guidance pass decodes a slice of those rows at a time and says
  which (``rows``), and :meth:`MAEPrior.decode` applies row i's statistics to
  row i. Decoding a different number of rows without ``rows`` or
  ``patch_stats`` raises a ValueError.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image

from gifkit.core.prior import Job, Latents, Prior
from gifkit.io.images import stack01

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "MAELatents", "MAEPrior"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # the MAE image processor's (facebook/vit-mae-*) normalisation
IMAGENET_STD = (0.229, 0.224, 0.225)
NORM_PIX_EPS = 1.0e-6  # as in ViTMAEForPreTraining.forward


@dataclass
class MAELatents(Latents):
    """Latents of :meth:`MAEPrior.prepare`: f [N, 1 + L, D] and the seeds' per-patch statistics.

    ``patch_mean`` / ``patch_var``: [N, L, 1], mean and unbiased variance of
    each normalised seed patch (used to undo ``norm_pix_loss``).
    """

    patch_mean: torch.Tensor | None = None
    patch_var: torch.Tensor | None = None


class MAEPrior(Prior):
    """A transformers ``ViTMAEForPreTraining`` with masking ratio 0 as a GIF prior.

    Works with :func:`gifkit.models.hub.load_mae` and :func:`gifkit.models.tiny.tiny_mae`.
    f has shape [N, 1 + L, D] (CLS + L = (S / P)^2 patch tokens, encoder width
    D); images come out at the model's image size S.
    """

    name = "mae"
    guidance_seeds_per_pass = 1  # the guidance pass decodes one seed's K variants at a time (memory)
    channel_dim = -1  # channel-wise noise [K, 1, D], shared over tokens

    def __init__(self, model, *, mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD,
                 device: str | torch.device | None = None):
        cfg = model.config
        if float(cfg.mask_ratio) != 0.0:
            raise ValueError(f"MAEPrior needs an MAE with mask_ratio=0 (all patches kept), got {cfg.mask_ratio}; "
                             f"load it with gifkit.models.hub.load_mae or from_pretrained(..., mask_ratio=0.0)")
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f"mean and std need 3 values, got {mean}, {std}")
        self.model = self.weights = model.eval().requires_grad_(False)
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model.to(self.device)
        size = cfg.image_size
        self.resolution = int(size[0] if isinstance(size, (tuple, list)) else size)
        self.patch_size = int(cfg.patch_size)
        if self.resolution % self.patch_size:
            raise ValueError(f"image size {self.resolution} is not a multiple of the patch size {self.patch_size}")
        self.num_patches = (self.resolution // self.patch_size) ** 2
        self.norm_pix = bool(cfg.norm_pix_loss)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        self._patch_stats: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def params(self) -> dict:
        """The settings recorded in every metadata row."""
        return {"mask_ratio": 0.0, "norm_pix_loss": self.norm_pix, "resolution": self.resolution}

    @property
    def dtype(self) -> torch.dtype:
        """The precision the MAE runs in."""
        return next(self.model.parameters()).dtype

    def guidance_features(self, f: torch.Tensor, classifier, rows: slice | None = None) -> torch.Tensor:
        """The guide's representation (CLIP features) of the decoded tokens ``f`` (rows ``rows`` of the prepared
        batch), differentiable."""
        stats = None
        if rows is not None and self.norm_pix and self._patch_stats is not None:
            stats = (self._patch_stats[0][rows], self._patch_stats[1][rows])
        return classifier.representation(self.decode(f, grad=True, patch_stats=stats))

    # ------------------------------------------------------------------ encode

    def pixels(self, images: list[Image.Image]) -> torch.Tensor:
        """Seeds -> the MAE's input: bicubic resize to S x S, ImageNet-normalised, [N, 3, S, S] float32 (CPU)."""
        x = stack01(images, self.resolution)  # [N, 3, S, S] in [0, 1]
        return (x - self.mean) / self.std

    def _identity_noise(self, n: int) -> torch.Tensor:
        """``noise`` that makes transformers' random_masking keep the patches in their order (argsort = identity)."""
        return torch.arange(self.num_patches, dtype=torch.float32, device=self.device).expand(n, -1)  # [N, L]

    def _identity_restore(self, n: int) -> torch.Tensor:
        return torch.arange(self.num_patches, device=self.device).expand(n, -1)  # [N, L]

    @torch.no_grad()
    def encode(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Normalised pixels [N, 3, S, S] -> encoder token features [N, 1 + L, D] (CLS first, patches in order)."""
        x = pixel_values.to(device=self.device, dtype=self.dtype)
        out = self.model.vit(pixel_values=x, noise=self._identity_noise(x.shape[0]))
        return out.last_hidden_state  # [N, 1 + L, D]

    def patch_stats(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-patch mean and unbiased variance of normalised pixels, each [N, L, 1] float32 (norm_pix_loss targets)."""
        target = self.model.patchify(pixel_values.float())  # [N, L, P*P*3]
        return target.mean(dim=-1, keepdim=True), target.var(dim=-1, keepdim=True)

    @torch.no_grad()
    def prepare(self, jobs: list[Job]) -> MAELatents:
        """f = MAE encoder tokens of each job's seed (mask ratio 0), no gradients; keeps the patch statistics."""
        if not jobs:
            raise ValueError("MAEPrior.prepare: no jobs")
        pix = self.pixels([j.image for j in jobs])  # [N, 3, S, S]
        f = self.encode(pix)  # [N, 1 + L, D]
        mean, var = self.patch_stats(pix)  # [N, L, 1] each
        self._patch_stats = (mean.to(self.device), var.to(self.device))
        return MAELatents(f=f, patch_mean=self._patch_stats[0], patch_var=self._patch_stats[1])

    # ------------------------------------------------------------------ decode

    def predict(self, f: torch.Tensor, grad: bool = False) -> torch.Tensor:
        """MAE decoder on token features f [N, 1 + L, D] -> per-patch predictions [N, L, P*P*3] (float32)."""
        if f.ndim != 3 or f.shape[1] != self.num_patches + 1:
            raise ValueError(f"MAEPrior: f must be [N, 1 + {self.num_patches}, D] (CLS + patches), "
                             f"got {tuple(f.shape)}")
        with torch.set_grad_enabled(grad):
            out = self.model.decoder(f.to(device=self.device, dtype=self.dtype), self._identity_restore(f.shape[0]))
            return out.logits.float()  # [N, L, P*P*3]

    def to_images(self, patches: torch.Tensor,
                  patch_stats: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """Patch predictions [N, L, P*P*3] -> images [N, 3, S, S] in [0, 1].

        With ``norm_pix_loss`` the predictions are per-patch normalised: undo it
        with the seeds' statistics (``p * sqrt(var + 1e-6) + mean``), then undo
        the ImageNet normalisation and clamp.
        """
        if self.norm_pix:
            stats = patch_stats if patch_stats is not None else self._patch_stats
            if stats is None:
                raise ValueError("MAEPrior: this MAE predicts per-patch normalised pixels (norm_pix_loss=True); "
                                 "decode needs the seeds' patch statistics: call prepare() first or pass patch_stats")
            mean, var = stats
            if mean.shape[0] != patches.shape[0]:
                raise ValueError(f"MAEPrior: {patches.shape[0]} latents to decode but patch statistics for "
                                 f"{mean.shape[0]} rows (decode the rows prepare() returned, or pass patch_stats)")
            patches = patches * (var.to(patches) + NORM_PIX_EPS).sqrt() + mean.to(patches)
        x = self.model.unpatchify(patches)  # [N, 3, S, S], normalised
        x = x * self.std.to(x) + self.mean.to(x)
        return x.clamp(0, 1)

    def decode(self, f: torch.Tensor, grad: bool = False,
               patch_stats: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """Token features [N, 1 + L, D] -> reconstructed images [N, 3, S, S] in [0, 1]; differentiable when ``grad``.

        Row i is un-normalised with row i of the last :meth:`prepare` (or ``patch_stats``) when the MAE
        predicts normalised patches.
        """
        with torch.set_grad_enabled(grad):
            return self.to_images(self.predict(f, grad), patch_stats)
