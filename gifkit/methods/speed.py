"""Speed levers of the SD img2img methods (GIF-SD, SD and their tuned variants): each an option, all off by default.

:class:`SpeedOptions` is a base of :class:`gifkit.methods.gif_sd.SDConfig`, so every lever is a ``gifkit expand``
flag of those methods; :meth:`SpeedOptions.speed_up` applies the ones that are on to a built
:class:`~gifkit.priors.sd.SDPrior`, in place:

* ``torch_compile``: ``torch.compile`` of the U-Net and of the VAE decoder the guidance pass runs (TAESD's when
  ``guidance_vae`` is set), with the given backend (``inductor``: generated fused kernels; ``aot_eager`` and
  ``eager`` only trace, a check that the models compile). The compilation happens in the first batch; the GPU
  check reports it apart from the steady-state time (docs/gpu.md);
* ``channels_last``: the U-Net's and the VAEs' weights in channels-last memory format (NHWC convolutions);
* ``fuse_qkv``: diffusers' ``fuse_qkv_projections`` on the U-Net and SD's VAE: one matrix product for the query,
  key and value projections of self-attention (key and value for cross-attention). Present in every diffusers
  of the tested range, 0.35-0.42;
* ``batched_encode``: the img2img VAE encode in one batch instead of one image at a time, each job's sample still
  drawn from its own generator (:meth:`gifkit.priors.sd.SDPrior.encode`);
* ``guidance_vae`` (beyond the paper): the guidance pass decodes with this autoencoder, a hub id or a local
  folder (``madebyollin/taesd``: TAESD, about 1.2 M decoder parameters against SD's 49 M); the final decode stays
  SD's VAE. It changes the images by design (the step's signs follow another decoder's gradient), so it is a
  setting of the method (in every metadata row and ``run.json``'s ``params``);
  :func:`sign_agreement` measures how often the step's signs agree with the full decode's.

The other levers keep the algorithm but may change the floating-point result in the last bits, so the levers
that are on are recorded in ``run.json``'s environment (``speed``): a resume under other levers is refused, as
under another thread count. With every lever off nothing changes (``scripts/smoke_hashes.py``). Writing the PNGs
on a thread of its own is the driver's (``expand(..., overlap_io=True)``, ``gifkit expand --overlap-io``): it
never changes a byte.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from gifkit.config import get_profile, option
from gifkit.core.prior import Job
from gifkit.methods.callbacks import Callback
from gifkit.priors.sd import SDPrior

__all__ = ["COMPILE_BACKENDS", "SpeedOptions", "sign_agreement"]

COMPILE_BACKENDS = ("inductor", "aot_eager", "eager")


@dataclass
class SpeedOptions:
    """The speed levers of the SD img2img prior (module docstring); all off by default: no GPU has measured them
    yet (docs/gpu.md names the rows of the GPU check that decide their defaults)."""

    torch_compile: str | None = option(None, "torch.compile the U-Net and the guidance pass's VAE decoder with this "
                                             "backend (inductor: fused GPU kernels; aot_eager / eager: trace only)",
                                       choices=COMPILE_BACKENDS)
    channels_last: bool = option(False, "U-Net and VAE weights in channels-last memory format", action="store_true")
    fuse_qkv: bool = option(False, "fused query/key/value projections in the U-Net's and the VAE's attention "
                                   "(diffusers' fuse_qkv_projections)", action="store_true")
    batched_encode: bool = option(False, "encode the img2img seeds in one VAE batch (each job's sample still drawn "
                                         "from its own generator)", action="store_true")
    guidance_vae: str | None = option(None, "beyond the paper, guided methods only: decode the guidance pass with "
                                            "this autoencoder, a hub id or local folder (madebyollin/taesd); the "
                                            "final decode stays SD's VAE")

    def speed_up(self, prior: SDPrior, profile: str) -> SDPrior:
        """Apply the levers that are on to ``prior`` (its pipeline's modules, in place) and return it. On a tiny
        profile ``guidance_vae`` is a tiny random TAESD (:func:`gifkit.models.tiny.tiny_taesd`), whatever its id."""
        from gifkit.models import hub, tiny

        pipe, levers = prior.pipe, {}
        if self.guidance_vae:
            vae = tiny.tiny_taesd() if get_profile(profile).tiny else hub.load_tiny_vae(self.guidance_vae, prior.dtype)
            vae = vae.to(device=prior.device, dtype=prior.dtype).eval().requires_grad_(False)
            if prior.checkpointing:
                vae.enable_gradient_checkpointing()
            prior.guidance_vae, prior.guidance_vae_id = vae, str(self.guidance_vae)
        decoders = [pipe.vae] + ([prior.guidance_vae] if prior.guidance_vae is not None else [])
        if self.batched_encode:
            prior.batched_encode = levers["batched_encode"] = True
        if self.fuse_qkv:  # before compiling: the compiled graph holds the fused projections
            pipe.unet.fuse_qkv_projections()
            pipe.vae.fuse_qkv_projections()
            levers["fuse_qkv"] = True
        if self.channels_last:
            for module in (pipe.unet, *decoders):
                module.to(memory_format=torch.channels_last)
            levers["channels_last"] = True
        if self.torch_compile:
            pipe.unet.compile(backend=self.torch_compile)
            decoders[-1].decoder.compile(backend=self.torch_compile)  # the guidance pass's decoder
            levers["torch_compile"] = self.torch_compile
        prior.levers = levers
        return prior


class _StepRecord(Callback):
    """Keeps the step's first gradient of (z, b) and the latents f of the batch it sees."""

    def __init__(self):
        self.grads, self.f = None, None

    def before_step(self, state, z, b) -> None:
        if self.grads is None:
            self.grads = (z.grad.detach().clone(), b.grad.detach().clone())

    def on_final(self, state, f, final):
        self.f = f.detach().clone()
        return final


def sign_agreement(method, jobs: list[Job]) -> dict:
    """How often the signed step agrees between the guidance decoder ``method`` runs (its prior's
    ``guidance_vae``, e.g. TAESD) and SD's own VAE, on ``jobs``: the method runs twice on the same prior, once as
    it is and once with the guidance decoder switched back to SD's VAE, and the signs of the first gradient of
    every (z, b) entry are compared. Returns ``agree`` / ``entries`` (and their ``fraction``), ``images_same``
    (the images whose every sign agrees, so whose step is the same) of ``images``, and ``max_f_difference``
    (0 when both runs started from the same latents, as they should)."""
    prior = method.prior
    if prior.guidance_vae is None:
        raise ValueError("sign_agreement compares a guidance_vae with SD's VAE: the method has no guidance_vae")
    records = []
    for use_own in (True, False):
        record, saved = _StepRecord(), prior.guidance_vae
        prior.guidance_vae = saved if use_own else None
        method.callbacks.append(record)
        try:
            method(jobs)
        finally:
            method.callbacks.remove(record)
            prior.guidance_vae = saved
        records.append(record)
    (zt, bt), (zf, bf) = records[0].grads, records[1].grads
    same = torch.cat([(torch.sign(zt) == torch.sign(zf)).flatten(1), (torch.sign(bt) == torch.sign(bf)).flatten(1)], 1)
    agree, entries = int(same.sum()), same.numel()
    return {"agree": agree, "entries": entries, "fraction": round(agree / entries, 4),
            "images_same": int(same.all(1).sum()), "images": len(jobs),
            "max_f_difference": float((records[0].f - records[1].f).abs().max())}
