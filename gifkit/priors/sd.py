"""GIF-SD: the Stable Diffusion img2img prior (paper App. D.2; docs/design.md §1.7 and §3).

For each (seed, variant) job:
  1. the seed is resized to the prior's resolution (bicubic) and randomly
     rotated (up to 15 degrees) and flipped;
  2. a prompt "{domain} {adjective} {class}" is drawn (Eq. 7 of the appendix);
  3. img2img with DDIM (eta 0) denoises it; the *fully denoised* latent is f.
The guided loop then perturbs f channel-wise (Eq. 1), decodes the perturbed
latent with the VAE (with gradients) for the CLIP score, and decodes the
projected final latent without gradients. Gradients flow through the VAE
decoder and CLIP only, never through the sampler.

Memory: at 512 px the VAE decoder's activations dominate. With gradients they
are retained for the backward pass (about 6 GiB per image in float32, measured
on the CPU; README "Memory"); the loop therefore decodes one seed's K variants
per guidance pass, ``checkpointing=True`` recomputes the decoder's blocks in
the backward pass instead of keeping them (gradient checkpointing), and
:meth:`SDPrior.generate` decodes the final latents one seed at a time.

Speed levers (all off by default; :mod:`gifkit.methods.speed` switches them on): ``batched_encode`` encodes the
img2img seeds in one VAE batch and hands the pipeline the latents, each job's sample still drawn from its own
generator (diffusers encodes one image at a time when given a generator per image); ``guidance_vae`` decodes
the guidance pass with another autoencoder (e.g. the tiny TAESD, beyond the paper), the final decode staying
SD's VAE.
"""
from __future__ import annotations

import torch
from torchvision.transforms import InterpolationMode, v2

from gifkit.core.prior import Job, Latents, Prior
from gifkit.core.rng import derive_seed, generator, py_random

DOMAINS = ["an image of", "a real-world photo of", "a cartoon image of", "an oil painting of", "a sketch of"]
ADJECTIVES = ["", "colorful", "stylized", "high-contrast", "low-contrast", "posterized", "solarized",
              "sheared", "bright", "dark"]
PROMPT_MODES = ("designed", "class")


def make_prompt(class_name: str, key: tuple, mode: str = "designed", domain: str | None = None) -> str:
    """The prompt of one job.

    ``designed``: "{domain} {adjective} {class}", domain and adjective drawn from
    the paper's sets with a generator seeded by ``key`` (a fixed ``domain``, e.g. a
    medical modality, replaces the domain set). ``class``: "a photo of a {class}"
    (the unguided SD baseline without designed prompts, Table 21's first row).
    """
    if mode == "class":
        return f"a photo of a {class_name}"
    if mode != "designed":
        raise ValueError(f"prompt mode must be one of {PROMPT_MODES}, got {mode!r}")
    rng = py_random(*key, "prompt")
    dom = domain if domain is not None else rng.choice(DOMAINS)
    adj = rng.choice(ADJECTIVES)
    return " ".join(w for w in (dom, adj, class_name) if w)


class SDPrior(Prior):
    """Stable Diffusion img2img through a diffusers ``StableDiffusionImg2ImgPipeline``.

    Works with :func:`gifkit.models.hub.load_sd` and :func:`gifkit.models.tiny.tiny_sd`. The method's settings
    (``steps``, ``strength``, ``guidance_scale``) come from the method's config (:mod:`gifkit.methods.gif_sd`);
    ``eta`` 0 (DDIM), the seed transform (rotation up to 15 degrees, flip) and the prompts are GIF-SD's.
    The latent f has shape [N, 4, R/8, R/8] (R/2 for the tiny VAE) and lives in
    the VAE's *scaled* latent space, as the U-Net sees it.
    """

    name = "sd"
    channel_dim = 1
    guidance_seeds_per_pass = 1  # the guidance pass decodes one seed's K variants at a time (memory)

    def __init__(self, pipe, *, steps: int, strength: float, guidance_scale: float, eta: float = 0.0,
                 prompts: str = "designed", domain: str | None = None, rotation: float = 15.0, flip: bool = True,
                 device: str | torch.device | None = None, checkpointing: bool = False):
        if not 0.0 < strength <= 1.0:
            raise ValueError(f"strength must be in (0, 1], got {strength}")
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        if prompts not in PROMPT_MODES:
            raise ValueError(f"prompts must be one of {PROMPT_MODES}, got {prompts!r}")
        self.pipe = self.weights = pipe
        self.device = torch.device(device) if device is not None else pipe.device
        if pipe.device != self.device:
            pipe.to(self.device)
        for m in (pipe.vae, pipe.unet, pipe.text_encoder):
            m.requires_grad_(False).eval()
        self.checkpointing = bool(checkpointing)
        if self.checkpointing:  # recompute the VAE's blocks in the backward pass (only the decoder runs with grad)
            pipe.vae.enable_gradient_checkpointing()
        elif getattr(pipe.vae.decoder, "gradient_checkpointing", False):
            pipe.vae.disable_gradient_checkpointing()
        self.steps, self.strength, self.guidance_scale, self.eta = steps, strength, guidance_scale, eta
        self.prompt_mode, self.domain = prompts, domain
        self.batched_encode = False  # the speed levers (module docstring), set by gifkit.methods.speed
        self.guidance_vae, self.guidance_vae_id = None, None  # the guidance pass's decoder when not SD's VAE
        self.levers: dict = {}  # the levers applied that can change the bytes (run.json's environment records them)
        self.resolution = pipe.unet.config.sample_size * pipe.vae_scale_factor
        self.seed_transform = v2.Compose([
            v2.Resize((self.resolution, self.resolution), interpolation=InterpolationMode.BICUBIC, antialias=True),
            v2.RandomRotation(rotation),
            v2.RandomHorizontalFlip(0.5 if flip else 0.0),
        ])

    @property
    def params(self) -> dict:
        """The settings recorded in every metadata row (``guidance_vae`` only when the guidance pass has its own)."""
        params = {"steps": self.steps, "strength": self.strength, "guidance_scale": self.guidance_scale,
                  "eta": self.eta, "prompts": self.prompt_mode}
        if self.guidance_vae_id is not None:
            params["guidance_vae"] = self.guidance_vae_id
        return params

    @property
    def provenance(self) -> dict | None:
        """The pipeline's source, and the guidance decoder's when it has its own."""
        from gifkit.models.hub import source_of

        src = super().provenance
        if self.guidance_vae is not None and src is not None:
            src = {**src, "guidance_vae": source_of(self.guidance_vae)}
        return src

    @property
    def dtype(self) -> torch.dtype:
        """The precision the pipeline runs in (the VAE's)."""
        return self.pipe.vae.dtype

    def memory_per_image(self, grad: bool) -> float:
        """Bytes one image needs at this resolution and dtype, for ``--batch-size auto``: the guidance pass
        (``grad``: VAE decoder activations kept for the backward pass, 6.1 GiB at 512 px in float32 measured on the
        CPU, 3.3 GiB with ``checkpointing``: the slope over 1-3 variants, docs/gpu.md) or the img2img pass (no
        gradients: ~0.6 GiB at 512 px in float32, U-Net at batch 2 for classifier-free guidance plus the VAE
        encoder), scaled by (resolution / 512)^2 and the element size."""
        scale = (self.resolution / 512) ** 2 * self.dtype.itemsize / 4
        gib = (3.3 if self.checkpointing else 6.1) if grad else 0.6
        return gib * 2 ** 30 * scale

    def _transform(self, job: Job):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(*job.key, "seed-transform"))
            return self.seed_transform(job.image)

    @torch.no_grad()
    def prepare(self, jobs: list[Job]) -> Latents:
        prompts = [make_prompt(j.class_name, j.key, self.prompt_mode, self.domain) for j in jobs]
        images = [self._transform(j) for j in jobs]
        gens = [generator(*j.key, "img2img") for j in jobs]  # CPU generators: same draws on any device
        if self.batched_encode:
            images = self.encode(images, gens)
        out = self.pipe(prompt=prompts, image=images, strength=self.strength, num_inference_steps=self.steps,
                        guidance_scale=self.guidance_scale, eta=self.eta, generator=gens, output_type="latent")
        return Latents(f=out.images, prompts=prompts)  # [N, 4, h, w], scaled latent space

    @torch.no_grad()
    def encode(self, images: list, gens: list[torch.Generator]) -> torch.Tensor:
        """The img2img start latents of ``images`` (PIL, at the prior's resolution) in one VAE batch: each row's
        sample drawn from its own generator, as the pipeline draws it when it encodes image by image (the same
        diffusers code, ``latent_dist.sample``, on that row's moments), times the VAE's scaling factor. Handed to
        the pipeline as ``image``, 4-channel latents are used as they are."""
        vae = self.pipe.vae
        x = self.pipe.image_processor.preprocess(images).to(device=self.device, dtype=vae.dtype)  # [N, 3, R, R]
        dist = vae.encode(x).latent_dist
        rows = [type(dist)(dist.parameters[j:j + 1]).sample(gens[j]) for j in range(len(gens))]
        return vae.config.scaling_factor * torch.cat(rows)  # [N, 4, h, w], the scaled latent space

    def guidance_features(self, f: torch.Tensor, classifier, rows: slice | None = None) -> torch.Tensor:
        """The guide's representation (``classifier.representation``) of ``f`` decoded with gradients, by
        ``guidance_vae`` when set (else SD's VAE)."""
        return classifier.representation(self.decode(f, grad=True, vae=self.guidance_vae))

    def decode(self, f: torch.Tensor, grad: bool = False, vae=None) -> torch.Tensor:
        """Scaled latents [N, 4, h, w] -> images [N, 3, R, R] in [0, 1]: ``clamp(D(f / s) / 2 + 0.5, 0, 1)``, with
        ``vae``'s decoder D and scaling factor s (default SD's VAE)."""
        vae = self.pipe.vae if vae is None else vae
        with torch.set_grad_enabled(grad):
            x = vae.decode(f.to(device=self.device, dtype=vae.dtype) / vae.config.scaling_factor, return_dict=False)[0]
            return (x.float() / 2 + 0.5).clamp(0, 1)  # [N, 3, R, R]

    def generate(self, f: torch.Tensor, jobs: list[Job]) -> torch.Tensor:
        """Final latents -> images, decoded one seed's variants at a time (bounded memory), no gradients."""
        with torch.no_grad():
            starts = [j for j in range(len(jobs)) if j == 0 or jobs[j].index != jobs[j - 1].index] + [len(jobs)]
            return torch.cat([self.decode(f[a:b]) for a, b in zip(starts[:-1], starts[1:])])
