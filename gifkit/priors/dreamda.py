"""DreamDA: generative data augmentation by perturbing the diffusion U-Net's bottleneck (Fu et al., 2024,
arXiv 2403.12803).

DreamDA treats every training image as a seed: the seed is noised part of the way (the *strength*) and
denoised again, and at **every reverse step** Gaussian noise is added to the U-Net's bottleneck feature,
the output of its mid block: ``h <- h + sigma * n``, ``n ~ N(0, I)``. Small changes deep in the network
give variants that keep the seed's layout and look while varying its content; the labels of the created
images come later from AMST (:mod:`gifkit.train.amst`), since a variant may not keep its seed's class.

Two samplers (``sampler=``):

* ``"cycle"`` (default, the official code): CycleDiffusion (diffusers ``CycleDiffusionPipeline``): the seed's
  latent is noised to the strength's step and a *source* branch follows the DDPM posterior of the seed
  (eta 1) while the *target* branch denoises; the official run uses 100 steps, strength 0.8, guidance 7.5, an
  empty source prompt with source guidance 1.5, and one noised x_t and one generator for all variants of an
  image (``shared_start``: gifkit draws x_t and the source branch's noise from the key (seed, index, "cycle"),
  the same for every variant of a seed, which then differ by their bottleneck noise only).
  The U-Net sees [source; target] rows (x 2 with classifier-free guidance: source-uncond, target-uncond,
  source-text, target-text) and the noise goes to the **target rows only**, an independent draw for each;
* ``"img2img"`` (gifkit's earlier reading): SD img2img with DDIM (eta 0); the U-Net sees [uncond; text]
  copies of every job and both copies get the *same* draw (the job's bottleneck is perturbed, not the
  guidance direction).

Common: the perturbation is a forward hook on the diffusers ``UNet2DConditionModel``'s ``mid_block``
(:class:`BottleneckNoise`; no copied or modified U-Net), registered only while :meth:`DreamDAPrior.prepare`
runs; ``noise_scale`` is the absolute standard deviation sigma (the official N(0, 3^2): 3.0), and
``noise_scale = 0`` is the plain sampler; the noise of a job comes from its own generator keyed by
(seed, index, variant, "bottleneck"), drawn on the CPU step after step, so an image does not depend on
batching, sharding or the device. Prompts: "a photo of a {class}" for both branches (the official code used
per-image captions refined by an LLM; docs/design.md §2).
"""
from __future__ import annotations

import contextlib
from typing import Sequence

import torch

from gifkit.core.prior import Job, Latents
from gifkit.core.rng import generator
from gifkit.priors.sd import SDPrior

__all__ = ["BottleneckNoise", "DreamDAPrior", "SAMPLERS"]

SAMPLERS = ("cycle", "img2img")
ROWS = ("copies", "target")


class BottleneckNoise(contextlib.AbstractContextManager):
    """Adds ``scale * N(0, I)`` to the output of ``unet.mid_block`` on every U-Net call inside the ``with``.

    ``generators[j]`` draws the noise of job j (one draw of shape [C, h, w] per perturbed row and U-Net call,
    on the CPU). ``rows`` says how the U-Net batch holds the jobs:

    * ``"copies"`` (img2img): ``r`` copies of the jobs, ``[copy 0 of jobs 0..n-1; copy 1; ...]`` as diffusers
      concatenates them for guidance (r = 1 without, 2 with classifier-free guidance, 3 for InstructPix2Pix);
      every copy of job j gets job j's one draw;
    * ``"target"`` (CycleDiffusion, one job per call): rows alternate source and target branches, ``[source,
      target]`` or ``[source-uncond, target-uncond, source-text, target-text]``; each target row (odd index)
      gets its own independent draw, the source rows none.

    ``calls`` counts the perturbed U-Net evaluations.
    """

    def __init__(self, unet: torch.nn.Module, generators: Sequence[torch.Generator], scale: float,
                 rows: str = "copies"):
        if getattr(unet, "mid_block", None) is None:
            raise ValueError(f"{type(unet).__name__} has no mid_block: DreamDA perturbs the U-Net's bottleneck")
        if scale < 0:
            raise ValueError(f"noise_scale must be >= 0, got {scale}")
        if rows not in ROWS:
            raise ValueError(f"rows must be one of {ROWS}, got {rows!r}")
        if rows == "target" and len(generators) != 1:
            raise ValueError("rows='target' perturbs one job per U-Net call: give one generator")
        self.unet, self.generators, self.scale, self.rows = unet, list(generators), float(scale), rows
        self.calls = 0
        self._handle = None

    def _noise(self, h: torch.Tensor) -> torch.Tensor:
        shape = tuple(h.shape[1:])
        if self.rows == "target":
            g = self.generators[0]
            noise = torch.zeros(h.shape)
            for r in range(1, h.shape[0], 2):  # the target rows, each its own draw
                noise[r] = torch.randn(shape, generator=g)
            return noise
        n = len(self.generators)
        if h.shape[0] % n:
            raise RuntimeError(f"U-Net batch of {h.shape[0]} is not a multiple of the {n} jobs")
        noise = torch.stack([torch.randn(shape, generator=g) for g in self.generators])  # [n, C, h, w]
        return noise.repeat(h.shape[0] // n, 1, 1, 1)

    def _hook(self, module, inputs, output):
        h = output[0] if isinstance(output, tuple) else output
        noise = (self._noise(h) * self.scale).to(device=h.device, dtype=h.dtype)
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
    """The seed re-generated with the bottleneck perturbed at every reverse step (DreamDA §3.2).

    Works with :func:`gifkit.models.hub.load_sd` and :func:`gifkit.models.tiny.tiny_sd` (a DDIM scheduler).
    Seeds are resized (bicubic) to the model's resolution, without random rotation or flips. ``sampler``:
    ``"cycle"`` (the official CycleDiffusion, ``eta`` 1 by default) or ``"img2img"`` (DDIM, ``eta`` 0);
    ``prompt``: a template with ``{}`` for the class name. The latent f is the final latent;
    :class:`gifkit.methods.dreamda.DreamDA` decodes it as it is (no guidance).
    """

    name = "dreamda"

    def __init__(self, pipe, *, sampler: str, steps: int, strength: float, guidance_scale: float,
                 noise_scale: float, prompt: str = "a photo of a {}", eta: float | None = None,
                 source_prompt: str = "", source_guidance_scale: float = 1.5, shared_start: bool = True,
                 device: str | torch.device | None = None):
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        eta = (1.0 if sampler == "cycle" else 0.0) if eta is None else float(eta)
        super().__init__(pipe, steps=steps, strength=strength, guidance_scale=guidance_scale, eta=eta,
                         prompts="class", rotation=0.0, flip=False, device=device)
        if noise_scale < 0:
            raise ValueError(f"noise_scale must be >= 0, got {noise_scale}")
        if "{}" not in prompt:
            raise ValueError(f"prompt template {prompt!r} needs '{{}}' for the class name")
        self.sampler, self.noise_scale, self.prompt = sampler, float(noise_scale), prompt
        # CycleDiffusion's source branch: its prompt ("class": the target's class prompt) and guidance scale, and
        # whether the variants of a seed share x_t and the source branch's draws (official) or draw their own
        self.source_prompt, self.source_guidance_scale = source_prompt, float(source_guidance_scale)
        self.shared_start = bool(shared_start)
        self.last_calls = 0  # perturbed U-Net calls of the last prepare()
        self._cycle = None

    @property
    def params(self) -> dict:
        params = {"sampler": self.sampler, "steps": self.steps, "strength": self.strength,
                  "guidance_scale": self.guidance_scale, "eta": self.eta, "noise_scale": self.noise_scale,
                  "prompt_template": self.prompt}
        if self.sampler == "cycle":
            params.update(source_prompt=self.source_prompt, source_guidance_scale=self.source_guidance_scale,
                          shared_start=self.shared_start)
        return params

    def cycle_pipeline(self):
        """The ``CycleDiffusionPipeline`` on this prior's components (built once; the scheduler is DDIM)."""
        if self._cycle is None:
            from diffusers import CycleDiffusionPipeline, DDIMScheduler
            from diffusers.utils import logging as dlog

            verbosity = dlog.get_verbosity()
            dlog.set_verbosity_error()  # its deprecation notice, once per construction
            try:
                p = self.pipe
                self._cycle = CycleDiffusionPipeline(
                    vae=p.vae, text_encoder=p.text_encoder, tokenizer=p.tokenizer, unet=p.unet,
                    scheduler=DDIMScheduler.from_config(p.scheduler.config), safety_checker=None,
                    feature_extractor=None, requires_safety_checker=False)
            finally:
                dlog.set_verbosity(verbosity)
            self._cycle.set_progress_bar_config(disable=True)
        return self._cycle

    @torch.no_grad()
    def prepare(self, jobs: list[Job]) -> Latents:
        prompts = [self.prompt.format(j.class_name) for j in jobs]
        images = [self._transform(j) for j in jobs]
        if self.sampler == "img2img":
            gens = [generator(*j.key, "img2img") for j in jobs]
            with BottleneckNoise(self.pipe.unet, [generator(*j.key, "bottleneck") for j in jobs],
                                 self.noise_scale) as hook:
                out = self.pipe(prompt=prompts, image=images, strength=self.strength, num_inference_steps=self.steps,
                                guidance_scale=self.guidance_scale, eta=self.eta, generator=gens, output_type="latent")
            self.last_calls = hook.calls
            return Latents(f=out.images, prompts=prompts)
        cycle, latents, calls = self.cycle_pipeline(), [], 0
        for job, prompt, image in zip(jobs, prompts, images):  # the pipeline takes one image at a time
            start = generator(*job.key[:-1], "cycle") if self.shared_start else generator(*job.key, "cycle")
            source = prompt if self.source_prompt == "class" else self.source_prompt
            with BottleneckNoise(cycle.unet, [generator(*job.key, "bottleneck")], self.noise_scale,
                                 rows="target") as hook:
                out = cycle(prompt=prompt, source_prompt=source, image=image, strength=self.strength,
                            num_inference_steps=self.steps, guidance_scale=self.guidance_scale,
                            source_guidance_scale=self.source_guidance_scale, eta=self.eta, generator=start,
                            output_type="latent")
            latents.append(out.images)
            calls += hook.calls
        self.last_calls = calls
        return Latents(f=torch.cat(latents), prompts=prompts)
