"""GIF-SD: guided imagination on Stable Diffusion img2img, the official code's method (paper §4, App. D.2).

Prior: SD v1-4 img2img with DDIM (eta 0); the seed is resized to 512 (bicubic), randomly rotated (up to 15
degrees) and flipped; the prompt is "{domain} {adjective} {class}" (:func:`gifkit.priors.sd.make_prompt`); the
*fully denoised* latent [4, 64, 64] is f. Guide: CLIP ViT-B/32 zero-shot (OpenAI weights, QuickGELU). Step: one
signed step of 0.1 on channel-wise (z, b), eps 0.8 (:class:`gifkit.methods.gif.Imagination`).

Every default of GIF-SD is defined here: the official settings of CIFAR100-S (CFG 50, strength 0.9, eps 0.8), 50
DDIM steps (the smoke profile's tiny SD runs 10, the colab profile 20), and :data:`PRESETS`, the official
settings per dataset, whose ``ratio`` is the paper's Table 1 expansion ratio.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from gifkit.config import DEFAULT_RATIO, MODEL_IDS, Check, get_profile, option
from gifkit.methods.base import MethodConfig, register
from gifkit.methods.gif import CheckpointOptions, ClipGuideOptions, GIFConfig, Imagination, checkpoint_dtype
from gifkit.methods.speed import SpeedOptions
from gifkit.priors.sd import PROMPT_MODES, SDPrior

__all__ = ["PRESETS", "PRESET_OF", "SDConfig", "GifSDConfig", "GifSD"]

# The official GIF-SD settings per dataset (the official run scripts); ratio = the paper's Table 1 ratio;
# domain = the medical modality that replaces the designed prompts' domain.
PRESETS: dict[str, dict] = {
    "cifar100s": dict(guidance_scale=50, strength=0.9, eps=0.8, ratio=5),
    "caltech101": dict(guidance_scale=5, strength=0.9, eps=4.0, ratio=20),
    "cars": dict(guidance_scale=50, strength=0.9, eps=0.8, ratio=20),
    "dtd": dict(guidance_scale=50, strength=0.5, eps=0.8, ratio=20),
    "flowers": dict(guidance_scale=8, strength=0.5, eps=0.8, ratio=20),
    "pets": dict(guidance_scale=50, strength=0.7, eps=0.8, ratio=30),
    "organsmnist": dict(guidance_scale=5, strength=0.4, eps=0.5, ratio=5, domain="Abdominal CT image of"),
    "pathmnist": dict(guidance_scale=5, strength=0.9, eps=0.1, ratio=5, domain="Colon pathological image of"),
    "breastmnist": dict(guidance_scale=5, strength=0.9, eps=0.1, ratio=5, domain="Ultrasound image of"),
}
# the preset of a dataset name (the study grid uses it under the paper profile when none is given)
PRESET_OF: dict[str, str] = {
    "cifar100s": "cifar100s", "caltech101": "caltech101", "cars": "cars", "stanford_cars": "cars", "dtd": "dtd",
    "flowers": "flowers", "flowers102": "flowers", "flowers102-official": "flowers", "pets": "pets",
    "oxford_pets": "pets", "pets-official": "pets", "organsmnist": "organsmnist", "pathmnist": "pathmnist",
    "breastmnist": "breastmnist"}


@dataclass
class SDConfig(MethodConfig, CheckpointOptions, ClipGuideOptions, SpeedOptions):
    """The SD img2img prior's settings (GIF-SD's and the unguided SD baseline's)."""

    steps: int = option(50, "DDIM steps of SD img2img (smoke profile 10, colab 20)", check=Check(1, 10_000, integer=True))
    strength: float = option(0.9, "img2img strength", check=Check(0, 1, lo_open=True))
    guidance_scale: float = option(50.0, "classifier-free guidance scale of SD", check=Check(0))
    prompts: str = option("designed", "GIF-SD's designed prompts or 'a photo of a {class}'", choices=PROMPT_MODES)
    domain: str | None = option(None, "a fixed prompt domain, e.g. a medical modality (a medical preset sets it)")
    grad_checkpointing: bool | None = option(None, "recompute the VAE decoder's blocks in the guidance backward "
                                                   "pass (less memory, more time; default: on for a real checkpoint "
                                                   "on a CUDA GPU under 24 GiB)", action="store_true")
    preset: str | None = option(None, "the official per-dataset settings (CFG, strength, eps, ratio, domain)",
                                choices=tuple(PRESETS))

    profile_defaults = {"smoke": {"steps": 10}, "colab": {"steps": 20}}
    presets = PRESETS

    def sd_prior(self, profile: str, device: torch.device) -> SDPrior:
        """SD img2img (tiny random SD on a tiny profile, ``model_id`` or SD v1-4 otherwise) with these settings."""
        from gifkit.models import hub, tiny

        prof = get_profile(profile)
        torch_dtype = checkpoint_dtype(profile, device, self.dtype)
        pipe = tiny.tiny_sd() if prof.tiny else hub.load_sd(self.model_id or MODEL_IDS["sd"], torch_dtype=torch_dtype)
        if prof.tiny and torch_dtype is not None:
            pipe = pipe.to(dtype=torch_dtype)
        checkpointing = self.grad_checkpointing
        if checkpointing is None:  # a 16 GB T4 cannot hold one seed's K = 5 decoder activations at 512 px without
            checkpointing = not prof.tiny and device.type == "cuda" and \
                torch.cuda.get_device_properties(device.index or 0).total_memory < 24 * 2 ** 30
        return self.speed_up(SDPrior(pipe, steps=self.steps, strength=self.strength, guidance_scale=self.guidance_scale,
                                     prompts=self.prompts, domain=self.domain, device=device,
                                     checkpointing=bool(checkpointing)), profile)


@dataclass
class GifSDConfig(GIFConfig, SDConfig):
    """GIF-SD's settings: the guided step's (eps 0.8, one signed step of 0.1) and SD img2img's."""


@register("gif-sd")
class GifSD(Imagination):
    """GIF-SD: SD img2img with designed prompts + CLIP-guided channel-wise latent perturbation."""

    summary = "GIF-SD: SD img2img with designed prompts + CLIP-guided channel-wise latent perturbation"
    Config = GifSDConfig
    profiles = ("smoke", "paper", "colab")

    @property
    def default_ratio(self) -> int:
        preset = self.config.preset
        return PRESETS[preset]["ratio"] if preset else DEFAULT_RATIO

    def __init__(self, config, class_names, **kwargs):
        if not self.guided and getattr(config, "guidance_vae", None):
            raise ValueError(f"{self.name}: guidance_vae decodes the guidance pass, which {self.name} does not run "
                             f"(gif-sd and gif-sd-tuned do)")
        super().__init__(config, class_names, **kwargs)

    def build_prior(self) -> SDPrior:
        return self.config.sd_prior(self.profile, self.device)

    def environment(self) -> dict:
        env = super().environment()  # + the speed levers that can change the bytes (gifkit.methods.speed)
        return {**env, "speed": dict(self.prior.levers)} if self.prior.levers else env
