"""GIF-DALLE: the unCLIP (DALL-E2) prior on the CLIP image-embedding space
(paper §4 "Overall pipeline", Algorithm 1 and App. D.1; docs/design.md §1.7).

The official code never released GIF-DALLE, and the paper's DALL-E2 (trained
on LAION-400M) is not public; this module implements the paper's description
on the open stand-in, Karlo's unCLIP image-variation pipeline (diffusers
``UnCLIPImageVariationPipeline``):

  1. f is the seed's CLIP image embedding [N, E], as the pipeline computes it
     (``image_encoder(feature_extractor(seed)).image_embeds``, unnormalised);
  2. the guided loop perturbs f (Eq. 1) and scores the perturbed embedding
     *directly*: the zero-shot classifier is the text side of the *same* CLIP
     (:class:`gifkit.models.guides.TransformersCLIPZeroShot`), so no image is decoded for guidance
     (:meth:`UnCLIPPrior.guidance_features` returns ``normalize(f')``);
  3. the projected final embedding conditions the unCLIP decoder, which
     generates the image (``image_embeddings=`` of the pipeline, one seeded
     generator per job).

Design decisions:

* **Noise shape.** A vector embedding has no spatial / token axis, so
  "channel-wise" noise is per-dimension noise: z, b have shape [K, E]
  (``channel_dim = 1``), which is also what "pixel" noise means here. A single
  scalar (z, b) per embedding would only rescale it and shift it along the
  all-ones direction, which hardly changes the normalised embedding CLIP sees.
* **64 px output, no super-resolution.** The paper trains on the decoder's
  64 px images "without further super-resolution" (App. D.1). The diffusers
  pipeline always runs its two super-resolution U-Nets after the decoder, so
  :meth:`UnCLIPPrior.decode_embeddings` runs the decoder's loop itself on the
  pipeline's components (text encoder on empty prompts, ``text_proj``, the
  decoder U-Net and its scheduler, as the pipeline does) and stops after its
  last step, clamping to [-1, 1] as the pipeline does. ``super_res=True`` runs
  the whole pipeline (256 px for Karlo).
* **Sampler.** The paper used 100-step DDIM with guidance scale 4 on its
  DALL-E2; Karlo ships an ``UnCLIPScheduler`` (its default is 25 decoder
  steps, scale 8). We keep Karlo's scheduler with the paper's scale 4 and 100
  steps for the paper profile (both configurable).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from gifkit.core.prior import Job, Latents, Prior
from gifkit.core.rng import generator
from gifkit.models.guides import TransformersCLIPZeroShot

__all__ = ["UnCLIPPrior"]


class UnCLIPPrior(Prior):
    """An unCLIP image-variation pipeline (Karlo; :func:`gifkit.models.hub.load_unclip` / :func:`gifkit.models.tiny.tiny_unclip`).

    f: CLIP image embeddings [N, E]. Output: the decoder's r px images (64 for
    Karlo, 32 for the tiny pipeline), or the super-resolution output with
    ``super_res=True`` (256 / 64).
    """

    name = "unclip"
    channel_dim = 1  # per-dimension noise [K, E]

    def __init__(self, pipe, *, decoder_steps: int, guidance_scale: float, super_res_steps: int = 7,
                 super_res: bool = False, device: str | torch.device | None = None):
        if decoder_steps < 1 or super_res_steps < 1:
            raise ValueError(f"decoder_steps and super_res_steps must be >= 1, got {decoder_steps}, {super_res_steps}")
        self.pipe = self.weights = pipe
        self.device = torch.device(device) if device is not None else pipe.device
        if pipe.device != self.device:
            pipe.to(self.device)
        for m in (pipe.decoder, pipe.text_encoder, pipe.image_encoder, pipe.text_proj,
                  pipe.super_res_first, pipe.super_res_last):
            m.requires_grad_(False).eval()
        self.decoder_steps, self.super_res_steps = int(decoder_steps), int(super_res_steps)
        self.guidance_scale, self.super_res = float(guidance_scale), bool(super_res)
        unet = pipe.super_res_first if super_res else pipe.decoder
        self.resolution = int(unet.config.sample_size)

    @property
    def params(self) -> dict:
        """The settings recorded in every metadata row."""
        return {"decoder_steps": self.decoder_steps, "decoder_guidance_scale": self.guidance_scale,
                "super_res": self.super_res, **({"super_res_steps": self.super_res_steps} if self.super_res else {})}

    def make_classifier(self, class_names: Sequence[str]) -> TransformersCLIPZeroShot:
        """The zero-shot classifier of this pipeline's own CLIP (the latent f lives in its embedding space)."""
        return TransformersCLIPZeroShot.from_pipeline(self.pipe, class_names)

    @torch.no_grad()
    def embed(self, images: list[Image.Image]) -> torch.Tensor:
        """Seeds -> CLIP image embeddings [N, E] exactly as the pipeline computes them (feature_extractor + image_encoder)."""
        enc = self.pipe.image_encoder
        param = next(enc.parameters())
        pixels = self.pipe.feature_extractor(images=[im.convert("RGB") for im in images],
                                             return_tensors="pt").pixel_values  # [N, 3, s, s]
        return enc(pixel_values=pixels.to(device=param.device, dtype=param.dtype)).image_embeds  # [N, E]

    def prepare(self, jobs: list[Job]) -> Latents:
        """f = the seeds' CLIP image embeddings [N, E], no gradients."""
        if not jobs:
            raise ValueError("UnCLIPPrior.prepare: no jobs")
        return Latents(f=self.embed([j.image for j in jobs]))

    @property
    def dtype(self) -> torch.dtype:
        """The precision the decoder runs in."""
        return self.pipe.decoder.dtype

    def guidance_features(self, f: torch.Tensor, classifier, rows: slice | None = None) -> torch.Tensor:
        """normalize(f) [N, E]: the perturbed embedding *is* the CLIP feature; nothing is decoded (App. D.1)."""
        if f.ndim != 2:
            raise ValueError(f"UnCLIPPrior: f must be CLIP embeddings [N, E], got {tuple(f.shape)}")
        return F.normalize(f.float(), dim=-1)

    @torch.no_grad()
    def sample(self, f: torch.Tensor, generators: list[torch.Generator]) -> torch.Tensor:
        """Embeddings [N, E] -> images [N, 3, R, R] in [0, 1] with the unCLIP decoder (+ super-resolution if set)."""
        if f.ndim != 2:
            raise ValueError(f"UnCLIPPrior: f must be CLIP embeddings [N, E], got {tuple(f.shape)}")
        if len(generators) != f.shape[0]:
            raise ValueError(f"UnCLIPPrior: {f.shape[0]} embeddings but {len(generators)} generators")
        emb = f.to(device=self.device, dtype=self.pipe.decoder.dtype)  # [N, E]
        kwargs = dict(image_embeddings=emb, decoder_num_inference_steps=self.decoder_steps,
                      super_res_num_inference_steps=self.super_res_steps, decoder_guidance_scale=self.guidance_scale,
                      generator=list(generators))
        if self.super_res:
            arr = self.pipe(output_type="np", **kwargs).images  # [N, R, R, 3] in [0, 1]
            return torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).float()
        return (self.decode_embeddings(emb, list(generators)).float() * 0.5 + 0.5).clamp(0, 1)  # [N, 3, r, r]

    @torch.no_grad()
    def decode_embeddings(self, emb: torch.Tensor, generators: list[torch.Generator]) -> torch.Tensor:
        """The unCLIP decoder's loop on image embeddings [N, E]: its output [N, 3, r, r] in [-1, 1].

        As the pipeline: the text side is the empty prompt (the same for the unconditional half), ``text_proj``
        turns embeddings and text into the decoder's conditioning, the latents start from
        ``init_noise_sigma * N(0, I)`` (one generator per row), and with a guidance scale > 1 each step combines
        the unconditional and conditional noise predictions, keeping the conditional predicted variance.
        """
        pipe, device, n = self.pipe, self.device, emb.shape[0]
        cfg = self.guidance_scale > 1.0
        tok = pipe.tokenizer([""] * n, padding="max_length", max_length=pipe.tokenizer.model_max_length,
                             return_tensors="pt")
        text = pipe.text_encoder(tok.input_ids.to(device))
        prompt_embeds, hidden, mask = text.text_embeds, text.last_hidden_state, tok.attention_mask.bool().to(device)
        if cfg:  # the unconditional prompt is the same empty prompt
            prompt_embeds, hidden, mask = (torch.cat([x, x]) for x in (prompt_embeds, hidden, mask))
        hidden, time_embeddings = pipe.text_proj(image_embeddings=emb, prompt_embeds=prompt_embeds,
                                                 text_encoder_hidden_states=hidden, do_classifier_free_guidance=cfg)
        mask = F.pad(mask, (pipe.text_proj.clip_extra_context_tokens, 0), value=True)
        scheduler, decoder = pipe.decoder_scheduler, pipe.decoder
        scheduler.set_timesteps(self.decoder_steps, device=device)
        timesteps = scheduler.timesteps
        shape = (n, decoder.config.in_channels, decoder.config.sample_size, decoder.config.sample_size)
        from diffusers.utils.torch_utils import randn_tensor

        x = randn_tensor(shape, generator=generators, device=device, dtype=hidden.dtype) * scheduler.init_noise_sigma
        for i, t in enumerate(timesteps):
            pred = decoder(sample=torch.cat([x, x]) if cfg else x, timestep=t, encoder_hidden_states=hidden,
                           class_labels=time_embeddings, attention_mask=mask).sample
            if cfg:
                uncond, cond = pred.chunk(2)
                uncond, _ = uncond.split(x.shape[1], dim=1)
                cond, variance = cond.split(x.shape[1], dim=1)
                pred = torch.cat([uncond + self.guidance_scale * (cond - uncond), variance], dim=1)
            prev = None if i + 1 == len(timesteps) else timesteps[i + 1]
            x = scheduler.step(pred, t, x, prev_timestep=prev, generator=generators).prev_sample
        return x.clamp(-1, 1)

    def decode(self, f: torch.Tensor, grad: bool = False) -> torch.Tensor:
        """Embeddings -> images (generators seeded by row index); not differentiable: guidance needs no decode."""
        if grad:
            raise ValueError("UnCLIPPrior.decode is not differentiable (a diffusion sampler); "
                             "guidance scores the embedding directly (guidance_features)")
        return self.sample(f, [generator("unclip-decode", i) for i in range(f.shape[0])])

    def generate(self, f: torch.Tensor, jobs: list[Job]) -> torch.Tensor:
        """Final embeddings [N, E] -> images [N, 3, R, R]; job j's draws come from generator(*job.key, "decoder")."""
        return self.sample(f, [generator(*j.key, "decoder") for j in jobs])
