"""Generative priors: Stable Diffusion img2img (GIF-SD), MAE (GIF-MAE), unCLIP (GIF-DALLE)."""
from gifkit.priors.base import Job, Latents, Prior

__all__ = ["Job", "Latents", "Prior"]
