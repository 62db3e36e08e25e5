"""ALIA's editor (Dunlap et al., NeurIPS 2023, arXiv 2305.16289, step (c)): language-guided edits of the seeds.

Each seed is edited K times (K = the expansion ratio) with prompts such as "a photo of a {class}
{description}": SD img2img or InstructPix2Pix (ALIA's settings: :mod:`gifkit.methods.alia`). Variant v of seed i takes description ``(o_i + v) mod D`` with an offset ``o_i`` drawn from (seed, i), so
every seed gets distinct descriptions when K <= D and usage stays balanced. The rest of ALIA (captions,
descriptions, filters) is the method :mod:`gifkit.methods.alia`.
"""
from __future__ import annotations

import hashlib
from typing import Sequence

import torch

from gifkit.core.prior import Job, Latents
from gifkit.core.rng import generator, py_random
from gifkit.priors.sd import SDPrior

__all__ = ["EDITORS", "TEMPLATES", "check_descriptions", "descriptions_digest", "ALIAPrior"]

EDITORS = ("img2img", "instruct")
TEMPLATES = {"img2img": "a photo of a {class} {description}", "instruct": "put the {class} {description}"}


def check_descriptions(descriptions: Sequence[str]) -> list[str]:
    """Stripped, unique, non-empty descriptions; a clear error for none."""
    if isinstance(descriptions, str):
        raise ValueError("descriptions must be a list of strings, not one string")
    out = list(dict.fromkeys(" ".join(str(d).split()) for d in descriptions if str(d).strip()))
    if not out:
        raise ValueError("no domain descriptions: pass at least one (e.g. 'in the snow')")
    return out


def descriptions_digest(descriptions: Sequence[str]) -> str:
    """A short hash of the description list (recorded in run.json and every metadata row)."""
    return hashlib.blake2b("\n".join(descriptions).encode(), digest_size=4).hexdigest()


class ALIAPrior(SDPrior):
    """Language-guided edits of the seeds (step c) through SD img2img or InstructPix2Pix.

    ``pipe``: a ``StableDiffusionImg2ImgPipeline`` (``editor="img2img"``, :func:`gifkit.models.hub.load_sd` /
    ``tiny_sd``) or a ``StableDiffusionInstructPix2PixPipeline`` (``editor="instruct"``,
    :func:`gifkit.models.hub.load_instruct_pix2pix` / ``tiny_instruct_pix2pix``). Seeds are resized (bicubic) to the
    model's resolution, without random rotation or flips (ALIA edits the training images as they are).
    The prompt of a job is ``template`` filled with the class name and its description (module docstring).
    """

    name = "alia"

    def __init__(self, pipe, descriptions: Sequence[str], *, steps: int, guidance_scale: float,
                 editor: str = "img2img", template: str | None = None, strength: float = 1.0,
                 image_guidance_scale: float = 1.0, device: str | torch.device | None = None):
        if editor not in EDITORS:
            raise ValueError(f"editor must be one of {EDITORS}, got {editor!r}")
        in_ch = pipe.unet.config.in_channels
        if (editor == "instruct") != (in_ch == 8):
            raise ValueError(f"editor {editor!r} does not match the pipeline {type(pipe).__name__} "
                             f"(U-Net with {in_ch} input channels; InstructPix2Pix has 8)")
        super().__init__(pipe, steps=steps, strength=strength if editor == "img2img" else 1.0,
                         guidance_scale=guidance_scale, prompts="class", rotation=0.0, flip=False, device=device)
        self.editor, self.descriptions = editor, check_descriptions(descriptions)
        self.template = template or TEMPLATES[editor]
        if "{class}" not in self.template or "{description}" not in self.template:
            raise ValueError(f"template {self.template!r} needs '{{class}}' and '{{description}}'")
        self.image_guidance_scale = image_guidance_scale

    @property
    def params(self) -> dict:
        p = {"editor": self.editor, "steps": self.steps, "guidance_scale": self.guidance_scale,
             "template": self.template, "n_descriptions": len(self.descriptions),
             "descriptions_sha": descriptions_digest(self.descriptions)}
        p.update({"strength": self.strength} if self.editor == "img2img" else
                 {"image_guidance_scale": self.image_guidance_scale})
        return p

    def description(self, job: Job) -> str:
        """The description of a job: ``(offset(seed, index) + variant) mod D``."""
        d = len(self.descriptions)
        offset = py_random(*job.key[:2], "alia-description").randrange(d)
        return self.descriptions[(offset + job.variant) % d]

    def prompt(self, job: Job) -> str:
        text = self.template.replace("{class}", job.class_name).replace("{description}", self.description(job))
        return " ".join(text.split())

    @torch.no_grad()
    def prepare(self, jobs: list[Job]) -> Latents:
        prompts = [self.prompt(j) for j in jobs]
        images = [self._transform(j) for j in jobs]
        gens = [generator(*j.key, "alia-edit") for j in jobs]
        if self.editor == "img2img":
            out = self.pipe(prompt=prompts, image=images, strength=self.strength, num_inference_steps=self.steps,
                            guidance_scale=self.guidance_scale, eta=0.0, generator=gens, output_type="latent")
        else:
            out = self.pipe(prompt=prompts, image=images, num_inference_steps=self.steps,
                            guidance_scale=self.guidance_scale, image_guidance_scale=self.image_guidance_scale,
                            generator=gens, output_type="latent")
        return Latents(f=out.images, prompts=prompts)
