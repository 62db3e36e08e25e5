"""Real checkpoints by hub id or local directory.

Real loaders (``load_clip``, ``load_sd``, ``load_mae``, ``load_unclip``, ``load_blip``,
``load_text_generator``, ``load_instruct_pix2pix``) wrap open_clip / diffusers / transformers. Each
accepts a hub id or a local directory and raises :class:`ModelUnavailable` with a message naming the
model, what was tried and how to get it, when the checkpoint cannot be loaded (offline and not cached,
missing directory, incomplete files). The ids of the paper profile are :data:`gifkit.config.MODEL_IDS`.
Tiny random models of the same classes, for the smoke profile and the tests, are :mod:`gifkit.models.tiny`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NamedTuple

import torch

from gifkit.config import GUIDANCE_CLIP, MODEL_IDS
from gifkit.errors import UserError

__all__ = ["ModelUnavailable", "ClipBundle", "CaptionerBundle", "TextGenBundle", "Checkpoint", "KNOWN_CHECKPOINTS",
           "is_offline", "best_device", "looks_like_path", "checkpoint_status", "from_pretrained", "load_clip",
           "load_sd", "load_mae", "load_unclip", "load_blip", "load_text_generator", "load_instruct_pix2pix"]


class ModelUnavailable(UserError, RuntimeError):
    """A real checkpoint could not be loaded (offline, missing or incomplete files)."""


class ClipBundle(NamedTuple):
    """What :func:`load_clip` and :func:`tiny_clip` return."""

    model: torch.nn.Module  # open_clip.CLIP
    preprocess: Callable  # PIL image -> normalised tensor [3, S, S]
    tokenizer: Callable  # list[str] -> LongTensor [N, 77]


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint gifkit knows: where it lives on the hub and a file proving it is cached."""

    key: str
    repo_id: str
    probe_file: str
    used_by: str


KNOWN_CHECKPOINTS: dict[str, Checkpoint] = {
    c.key: c
    for c in [
        Checkpoint("clip", "timm/vit_base_patch32_clip_224.openai", "open_clip_config.json",
                   "CLIP ViT-B/32 (openai): zero-shot guidance, `load_clip()`"),
        Checkpoint("sd", MODEL_IDS["sd"], "model_index.json", "Stable Diffusion v1-4: GIF-SD prior, `load_sd()`"),
        Checkpoint("mae", MODEL_IDS["mae"], "config.json", "MAE ViT-L/16: GIF-MAE prior, `load_mae()`"),
        Checkpoint("unclip", MODEL_IDS["unclip"], "model_index.json",
                   "Karlo unCLIP image variation: GIF-DALLE prior, `load_unclip()`"),
        Checkpoint("blip", MODEL_IDS["blip"], "config.json", "BLIP captioner: ALIA step (a), `load_blip()`"),
        Checkpoint("llm", MODEL_IDS["llm"], "config.json",
                   "text-generation model: ALIA step (b), `load_text_generator()`"),
        Checkpoint("ip2p", MODEL_IDS["ip2p"], "model_index.json",
                   "InstructPix2Pix: ALIA editor, `load_instruct_pix2pix()`"),
        Checkpoint("sd15", MODEL_IDS["sd15"], "model_index.json",
                   "Stable Diffusion v1.5: ALIA img2img and DreamDA, `load_sd()`"),
    ]
}


# ----------------------------------------------------------------------------- helpers


def is_offline() -> bool:
    """True when HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE ask for no network."""
    truthy = {"1", "true", "yes", "on"}
    return any(os.environ.get(v, "").strip().lower() in truthy for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def best_device() -> torch.device:
    """CUDA if present, else Apple MPS, else CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def looks_like_path(model_id: str) -> bool:
    # hub ids are "name" or "org/name"; anything else (absolute, relative, ~, deeper) is a path
    return model_id.startswith(("/", ".", "~")) or model_id.count("/") >= 2 or Path(model_id).exists()


def _how_to_get(repo_id: str) -> str:
    if looks_like_path(repo_id):
        return ("Pass a directory holding a complete checkpoint (as written by `save_pretrained` or "
                "`hf download <hub id> --local-dir <dir>`), or a hub id such as "
                + ", ".join(repr(c.repo_id) for c in KNOWN_CHECKPOINTS.values()) + ".")
    return (
        f"Get it on a machine with internet: `hf download {repo_id} --local-dir <dir>` "
        f"(or `huggingface-cli download ...` with older huggingface_hub), then pass that <dir> "
        f"instead of the hub id, or unset HF_HUB_OFFLINE to let gifkit download it."
    )


def _unavailable(what: str, repo_id: str, tried: str, err: BaseException | None = None) -> ModelUnavailable:
    msg = f"{what} '{repo_id}' is not available: tried {tried}."
    if err is not None:
        msg += f" ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
    return ModelUnavailable(msg + " " + _how_to_get(repo_id))


def _resolve(model_id: str, what: str) -> tuple[str, bool]:
    """Return (id_or_path, local_files_only); raise fast for a missing local directory."""
    expanded = os.path.expanduser(model_id)
    if looks_like_path(model_id):
        if not Path(expanded).exists():
            raise _unavailable(what, model_id, f"the local path {expanded!r}, which does not exist")
        return expanded, True
    return model_id, is_offline()


def checkpoint_status(key: str) -> str:
    """'cached at <dir>' or 'not cached' for a known checkpoint, without network."""
    from huggingface_hub import try_to_load_from_cache

    ck = KNOWN_CHECKPOINTS[key]
    found = try_to_load_from_cache(ck.repo_id, ck.probe_file)
    if isinstance(found, str):
        return f"cached at {Path(found).parent}"
    return "not cached"


def _clip_weights_file(directory: Path) -> Path | None:
    for pattern in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin", "*.safetensors", "*.pt", "*.bin"):
        hits = sorted(directory.glob(pattern))
        if hits:
            return hits[0]
    return None


def load_clip(name: str = GUIDANCE_CLIP[0], pretrained: str = GUIDANCE_CLIP[1], device: str | torch.device = "cpu") -> ClipBundle:
    """Load an open_clip model: ``(model, preprocess, tokenizer)``.

    Args:
        name: open_clip architecture name (``"ViT-B-32"``) or ``"hf-hub:org/repo"``.
        pretrained: an open_clip pretrained tag (``"openai"``), a checkpoint file,
            or a local directory holding ``open_clip_model.safetensors`` (or ``*.bin`` / ``*.pt``).
    """
    import open_clip

    tag = pretrained
    if pretrained and looks_like_path(pretrained):
        p = Path(os.path.expanduser(pretrained))
        if not p.exists():
            raise _unavailable("CLIP checkpoint", f"{name}/{pretrained}", f"the local path {str(p)!r}, which does not exist")
        if p.is_dir():
            f = _clip_weights_file(p)
            if f is None:
                raise _unavailable("CLIP checkpoint", f"{name}/{pretrained}", f"{str(p)!r}, which holds no weights file")
            tag = str(f)
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=tag, device=device)
        tokenizer = open_clip.get_tokenizer(name)
    except Exception as e:  # open_clip raises RuntimeError / OSError / hub errors
        repo = name if name.startswith("hf-hub:") else f"{name} ({pretrained})"
        hub = open_clip.get_pretrained_cfg(name, pretrained).get("hf_hub", "").rstrip("/") if not looks_like_path(str(pretrained)) else ""
        err = _unavailable("CLIP model", repo, f"open_clip.create_model_and_transforms({name!r}, pretrained={pretrained!r})" + (" offline" if is_offline() else ""), e)
        if hub:
            err = ModelUnavailable(str(err).replace(f"`hf download {repo}", f"`hf download {hub}"))
        raise err from e
    model.eval().requires_grad_(False)
    return ClipBundle(model, preprocess, tokenizer)



def from_pretrained(cls, model_id: str, what: str, **kwargs) -> Any:
    path, local_only = _resolve(model_id, what)
    try:
        return cls.from_pretrained(path, local_files_only=local_only, **kwargs)
    except Exception as e:
        tried = f"{cls.__name__}.from_pretrained({path!r}" + (", local_files_only=True)" if local_only else ")")
        raise _unavailable(what, model_id, tried, e) from e


def load_sd(model_id: str = MODEL_IDS["sd"], torch_dtype: torch.dtype | None = None,
            device: str | torch.device | None = None):
    """Stable Diffusion as a diffusers ``StableDiffusionImg2ImgPipeline`` (safety checker off).

    The pipeline's components (``vae``, ``unet``, ``text_encoder``, ``tokenizer``,
    ``scheduler``) are what :mod:`gifkit.priors.sd` uses. The scheduler is
    replaced by DDIM with the checkpoint's own noise schedule (the paper's sampler).
    """
    from diffusers import DDIMScheduler, StableDiffusionImg2ImgPipeline

    pipe = from_pretrained(StableDiffusionImg2ImgPipeline, model_id, "Stable Diffusion checkpoint",
                            safety_checker=None, requires_safety_checker=False, torch_dtype=torch_dtype)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    if device is not None:
        pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe



def load_mae(model_id: str = MODEL_IDS["mae"]):
    """MAE as transformers ``ViTMAEForPreTraining`` with masking ratio 0 (all patches kept)."""
    from transformers import ViTMAEForPreTraining

    model = from_pretrained(ViTMAEForPreTraining, model_id, "MAE checkpoint", mask_ratio=0.0)
    return model.eval().requires_grad_(False)



def load_unclip(model_id: str = MODEL_IDS["unclip"], torch_dtype: torch.dtype | None = None,
                device: str | torch.device | None = None):
    """Karlo's unCLIP image-variation pipeline (diffusers ``UnCLIPImageVariationPipeline``).

    Its image encoder is CLIP ViT-L/14 (transformers ``CLIPVisionModelWithProjection``);
    the decoder generates 64 px images, as the paper's DALL-E2; two super-resolution
    U-Nets bring them to 256 px.
    """
    from diffusers import UnCLIPImageVariationPipeline

    pipe = from_pretrained(UnCLIPImageVariationPipeline, model_id, "unCLIP checkpoint", torch_dtype=torch_dtype)
    if device is not None:
        pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe



class CaptionerBundle(NamedTuple):
    """What :func:`load_blip` and :func:`tiny_blip` return."""

    model: torch.nn.Module  # transformers BlipForConditionalGeneration
    processor: Any  # transformers BlipProcessor (image processor + BERT WordPiece tokenizer)


class TextGenBundle(NamedTuple):
    """What :func:`load_text_generator` and :func:`tiny_text_generator` return."""

    model: torch.nn.Module  # a transformers *ForCausalLM
    tokenizer: Any



def load_blip(model_id: str = MODEL_IDS["blip"], device: str | torch.device | None = None,
              torch_dtype: torch.dtype | None = None) -> CaptionerBundle:
    """BLIP captioning (transformers ``BlipForConditionalGeneration`` + ``BlipProcessor``), eval mode."""
    from transformers import BlipForConditionalGeneration, BlipProcessor

    processor = from_pretrained(BlipProcessor, model_id, "BLIP captioner")
    model = from_pretrained(BlipForConditionalGeneration, model_id, "BLIP captioner", dtype=torch_dtype)
    if device is not None:
        model = model.to(device)
    return CaptionerBundle(model.eval().requires_grad_(False), processor)



def load_text_generator(model_id: str = MODEL_IDS["llm"], device: str | torch.device | None = None,
                        torch_dtype: torch.dtype | None = None) -> TextGenBundle:
    """A causal language model and its tokenizer (``AutoModelForCausalLM`` / ``AutoTokenizer``), eval mode."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = from_pretrained(AutoTokenizer, model_id, "text-generation model")
    if len(tokenizer) < 100:  # transformers 5 may build a near-empty tokenizer instead of failing
        raise _unavailable("text-generation model", model_id, f"AutoTokenizer.from_pretrained({model_id!r}), which "
                           f"gave a tokenizer of {len(tokenizer)} tokens")
    model = from_pretrained(AutoModelForCausalLM, model_id, "text-generation model", dtype=torch_dtype)
    if device is not None:
        model = model.to(device)
    return TextGenBundle(model.eval().requires_grad_(False), tokenizer)



def load_instruct_pix2pix(model_id: str = MODEL_IDS["ip2p"], torch_dtype: torch.dtype | None = None,
                          device: str | torch.device | None = None):
    """InstructPix2Pix as a diffusers ``StableDiffusionInstructPix2PixPipeline`` (its own Euler-ancestral sampler)."""
    from diffusers import StableDiffusionInstructPix2PixPipeline

    pipe = from_pretrained(StableDiffusionInstructPix2PixPipeline, model_id, "InstructPix2Pix checkpoint",
                            safety_checker=None, requires_safety_checker=False, torch_dtype=torch_dtype)
    if device is not None:
        pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe
