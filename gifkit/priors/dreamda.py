"""DreamDA: generative data augmentation by perturbing the diffusion U-Net's bottleneck (Fu et al., 2024,
arXiv 2403.12803).

DreamDA treats every training image as a seed: the seed is noised part of the way (the *strength*) and
denoised again, and at **every reverse step** Gaussian noise is added to the U-Net's bottleneck feature,
the output of its mid block: ``h <- h + sigma * n``, ``n ~ N(0, I)``. Small changes deep in the network
give variants that keep the seed's layout and look while varying its content; the labels of the created
images come later from AMST (:mod:`gifkit.train.amst`), since a variant may not keep its seed's class.

gifkit's reading and choices:

* the perturbation is a forward hook on the diffusers ``UNet2DConditionModel``'s ``mid_block`` of the
  pipeline in use (no copied or modified U-Net); it is registered only while :meth:`DreamDAPrior.prepare`
  runs, so the same pipeline serves other methods afterwards;
* ``noise_scale`` is the absolute standard deviation sigma (the official code adds N(0, 3^2) noise to the
  mid-block output; gifkit's default 3.0 follows it); ``noise_scale = 0`` is plain img2img;
* with classifier-free guidance the U-Net sees [unconditional; conditional] copies of every latent; both
  copies of a job get the *same* noise (the job's bottleneck is perturbed, not the guidance direction);
* the noise of a job comes from its own generator keyed by (seed, index, variant, "bottleneck"), drawn on
  the CPU step after step, so an image does not depend on batching, sharding or the device;
* sampler: SD img2img with DDIM (eta 0), strength 0.8 and guidance 7.5 (the official run used
  CycleDiffusion with these strength/guidance values, 100 steps); prompts "a photo of a {class}"
  (the official code used per-image captions refined by an LLM).
"""
from __future__ import annotations

import contextlib
from typing import Sequence

import torch

from gifkit.core.prior import Job, Latents
from gifkit.core.rng import generator
from gifkit.priors.sd import SDPrior

__all__ = ["BottleneckNoise", "DreamDAPrior", "DEFAULTS"]

DEFAULTS = dict(strength=0.8, guidance_scale=7.5, noise_scale=3.0)


class BottleneckNoise(contextlib.AbstractContextManager):
    """Adds ``scale * N(0, I)`` to the output of ``unet.mid_block`` on every U-Net call inside the ``with``.

    ``generators[j]`` draws the noise of job j (one draw of shape [C, h, w] per U-Net call, on the CPU).
    The U-Net batch holds ``r`` copies of the jobs, ``[copy 0 of jobs 0..n-1; copy 1; ...]`` as diffusers
    concatenates them for guidance (r = 1 without, 2 with classifier-free guidance, 3 for InstructPix2Pix);
    every copy of job j gets job j's noise. ``calls`` counts the perturbed U-Net evaluations.
    """

    def __init__(self, unet: torch.nn.Module, generators: Sequence[torch.Generator], scale: float):
        if getattr(unet, "mid_block", None) is None:
            raise ValueError(f"{type(unet).__name__} has no mid_block: DreamDA perturbs the U-Net's bottleneck")
        if scale < 0:
            raise ValueError(f"noise_scale must be >= 0, got {scale}")
        self.unet, self.generators, self.scale = unet, list(generators), float(scale)
        self.calls = 0
        self._handle = None

    def _hook(self, module, inputs, output):
        h = output[0] if isinstance(output, tuple) else output
        n = len(self.generators)
        if h.shape[0] % n:
            raise RuntimeError(f"U-Net batch of {h.shape[0]} is not a multiple of the {n} jobs")
        noise = torch.stack([torch.randn(tuple(h.shape[1:]), generator=g) for g in self.generators])  # [n, C, h, w]
        noise = (noise * self.scale).to(device=h.device, dtype=h.dtype).repeat(h.shape[0] // n, 1, 1, 1)
        self.calls += 1
        h = h + noise
        return (h, *output[1:]) if isinstance(output, tuple) else h

    def __enter__(self):
        self._handle = self.unet.mid_block.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc):
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        return False


class DreamDAPrior(SDPrior):
    """SD img2img from the seed with the bottleneck perturbed at every reverse step (DreamDA §3.2).

    Works with :func:`gifkit.models.hub.load_sd` and :func:`gifkit.models.tiny.tiny_sd`. Seeds are resized (bicubic) to
    the model's resolution, without random rotation or flips. ``prompt`` is a template with ``{}`` for the
    class name. The latent f is the denoised img2img latent; :func:`gifkit.core.imagine.expand` decodes it as it
    is (``guidance=None``).
    """

    name = "dreamda"

    def __init__(self, pipe, *, steps: int = 50, strength: float = DEFAULTS["strength"],
                 guidance_scale: float = DEFAULTS["guidance_scale"], noise_scale: float = DEFAULTS["noise_scale"],
                 prompt: str = "a photo of a {}", eta: float = 0.0, device: str | torch.device | None = None):
        super().__init__(pipe, steps=steps, strength=strength, guidance_scale=guidance_scale, eta=eta,
                         prompts="class", rotation=0.0, flip=False, device=device)
        if noise_scale < 0:
            raise ValueError(f"noise_scale must be >= 0, got {noise_scale}")
        if "{}" not in prompt:
            raise ValueError(f"prompt template {prompt!r} needs '{{}}' for the class name")
        self.noise_scale, self.prompt = float(noise_scale), prompt
        self.last_calls = 0  # perturbed U-Net calls of the last prepare()

    @property
    def params(self) -> dict:
        return {"steps": self.steps, "strength": self.strength, "guidance_scale": self.guidance_scale,
                "eta": self.eta, "noise_scale": self.noise_scale, "prompt_template": self.prompt}

    @torch.no_grad()
    def prepare(self, jobs: list[Job]) -> Latents:
        prompts = [self.prompt.format(j.class_name) for j in jobs]
        images = [self._transform(j) for j in jobs]
        gens = [generator(*j.key, "img2img") for j in jobs]
        with BottleneckNoise(self.pipe.unet, [generator(*j.key, "bottleneck") for j in jobs],
                             self.noise_scale) as hook:
            out = self.pipe(prompt=prompts, image=images, strength=self.strength, num_inference_steps=self.steps,
                            guidance_scale=self.guidance_scale, eta=self.eta, generator=gens, output_type="latent")
        self.last_calls = hook.calls
        return Latents(f=out.images, prompts=prompts)
