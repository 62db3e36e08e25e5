"""Real checkpoints by hub id or local directory: loading them.

Real loaders (``load_clip``, ``load_sd``, ``load_mae``, ``load_unclip``, ``load_blip``,
``load_text_generator``, ``load_instruct_pix2pix``, ``load_tiny_vae``) wrap open_clip / diffusers / transformers. Each
accepts a hub id or a local directory and raises :class:`ModelUnavailable` with a message naming the
model, what was tried and how to get it, when the checkpoint cannot be loaded (offline and not cached,
missing directory, incomplete files); a missing CLIP of the paper profile is found in the cache before
open_clip is imported or a model built. The ids of the paper profile are :data:`gifkit.config.MODEL_IDS`.
Tiny random models of the same classes, for the smoke profile and the tests, are :mod:`gifkit.models.tiny`;
random-weight checkpoints in the Hub layouts, to test these loaders, are written by :mod:`gifkit.testing`.

Every loaded model carries ``gifkit_source`` (:func:`source_of`): the id or folder it came from, the Hub revision
(the cached snapshot's commit) or the sha256 of a local folder's weight files, and the dtype, so that an
expansion's ``run.json`` can say which checkpoints made its images. Which checkpoints gifkit knows, the files
each needs and where a model came from are :mod:`gifkit.models.checkpoints` (its names are importable from
here too); :func:`check_checkpoint` loads one for ``gifkit doctor --check``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, NamedTuple

import torch

from gifkit.config import ALIA_SEMANTIC_CLIP, DTYPES, GUIDANCE_CLIP, MODEL_IDS
from gifkit.models.checkpoints import (KNOWN_CHECKPOINTS, LAYOUTS, Checkpoint, ModelUnavailable, checkpoint_dir,
                                       checkpoint_status, how_to_get, is_offline, looks_like_path, missing_files,
                                       resolve_source, source_of, tag_source, unavailable, weights_digest)

__all__ = ["ModelUnavailable", "ClipBundle", "CaptionerBundle", "TextGenBundle", "Checkpoint", "KNOWN_CHECKPOINTS",
           "LAYOUTS", "is_offline", "best_device", "resolve_dtype", "looks_like_path", "checkpoint_status",
           "checkpoint_dir", "missing_files", "check_checkpoint", "weights_digest", "source_of", "from_pretrained",
           "load_clip", "clip_uses_quick_gelu", "clip_has_quick_gelu", "load_sd", "load_mae", "load_unclip", "load_blip",
           "load_text_generator", "load_instruct_pix2pix", "load_tiny_vae"]

# the CLIPs of the paper profile by (architecture without -quickgelu, tag): their cache is checked first
_KNOWN_CLIPS = {(GUIDANCE_CLIP[0].removesuffix("-quickgelu"), GUIDANCE_CLIP[1]): "clip",
                (ALIA_SEMANTIC_CLIP[0].removesuffix("-quickgelu"), ALIA_SEMANTIC_CLIP[1]): "clip-l"}


class ClipBundle(NamedTuple):
    """What :func:`load_clip` and :func:`tiny_clip` return."""

    model: torch.nn.Module  # open_clip.CLIP
    preprocess: Callable  # PIL image -> normalised tensor [3, S, S]
    tokenizer: Callable  # list[str] -> LongTensor [N, 77]




def best_device() -> torch.device:
    """CUDA if present, else Apple MPS, else CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_dtype(dtype: str | torch.dtype | None, device: str | torch.device | None = None) -> torch.dtype:
    """``--dtype`` as a torch dtype. ``"auto"`` (or ``None``): bfloat16 on a CUDA GPU of compute capability >= 8
    (A100, H100, L4, ...), float16 on older CUDA GPUs (T4, V100: no fast bfloat16), float32 on a CPU or MPS."""
    if isinstance(dtype, torch.dtype):
        return dtype
    name = dtype or "auto"
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if name == "auto":
        dev = torch.device(device) if device is not None else best_device()
        if dev.type != "cuda":
            return torch.float32
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        return torch.bfloat16 if torch.cuda.get_device_capability(index)[0] >= 8 else torch.float16
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]




def check_checkpoint(key: str, source: str | None = None) -> str:
    """Load the checkpoint ``key`` (its hub id from the cache, or the folder ``source``) on the CPU and say so:
    ``"loadable"``, ``"incomplete: missing ..."`` or ``"not loadable: <error>"`` (what ``gifkit doctor --check``
    prints). Loading a full-size checkpoint takes seconds to a minute and its size in memory."""
    folder = Path(os.path.expanduser(source)) if source else checkpoint_dir(key)
    if folder is None or not folder.is_dir():
        return "not found" if source else "not cached"
    missing = missing_files(key, folder)
    if missing:
        return "incomplete: missing " + ", ".join(missing)
    target = str(folder) if source else KNOWN_CHECKPOINTS[key].repo_id
    loaders = {"clip": lambda: load_clip(GUIDANCE_CLIP[0], target if source else GUIDANCE_CLIP[1]),
               "clip-l": lambda: load_clip(ALIA_SEMANTIC_CLIP[0], target if source else ALIA_SEMANTIC_CLIP[1]),
               "sd": lambda: load_sd(target), "sd15": lambda: load_sd(target), "mae": lambda: load_mae(target),
               "unclip": lambda: load_unclip(target), "blip": lambda: load_blip(target),
               "llm": lambda: load_text_generator(target), "ip2p": lambda: load_instruct_pix2pix(target),
               "taesd": lambda: load_tiny_vae(target)}
    try:
        loaders[key]()
    except ModelUnavailable as e:
        return f"not loadable: {e}"
    return "loadable"



def _clip_weights_file(directory: Path) -> Path | None:
    for pattern in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin", "*.safetensors", "*.pt", "*.bin"):
        hits = sorted(directory.glob(pattern))
        if hits:
            return hits[0]
    return None


def clip_uses_quick_gelu(name: str, pretrained: str | None = None, config: dict | None = None) -> bool:
    """Whether the CLIP ``name`` / ``pretrained`` has QuickGELU activations: the OpenAI weights (and every tag
    open_clip marks ``quick_gelu``) do, also as a local download of their Hub repo (timm's ``config.json`` there
    names the tag ``openai``); so do ``*-quickgelu`` architectures and folder configs that say so."""
    import open_clip

    if config is not None and config.get("model_cfg", {}).get("quick_gelu"):
        return True
    if pretrained and looks_like_path(pretrained):  # a download of an OpenAI repo: timm's config names the tag
        p = Path(os.path.expanduser(pretrained))
        timm_cfg = p / "config.json" if p.is_dir() else p.parent / "config.json"
        try:
            import json

            tag = json.loads(timm_cfg.read_text()).get("pretrained_cfg", {}).get("tag", "")
        except (OSError, ValueError, AttributeError):
            tag = ""
        if str(tag).startswith("openai") or ".openai" in str(p.resolve()):
            return True
    base = name.split(":", 1)[-1]
    if base.endswith("-quickgelu") or (open_clip.get_model_config(base) or {}).get("quick_gelu"):
        return True
    if pretrained and not looks_like_path(pretrained):
        return bool(open_clip.get_pretrained_cfg(base, pretrained).get("quick_gelu"))
    return False


def _clip_hub_folder(repo_id: str) -> Path:
    """The cached (or, online, downloaded) snapshot folder of an open_clip hub repo: config + weights."""
    from huggingface_hub import hf_hub_download

    local_only = is_offline()
    cfg = Path(hf_hub_download(repo_id, "open_clip_config.json", local_files_only=local_only))
    errors = []
    for weights in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"):
        try:
            hf_hub_download(repo_id, weights, local_files_only=local_only)
            return cfg.parent
        except Exception as e:  # not in the repo / not cached: try the next name
            errors.append(e)
    raise errors[-1]


def _check_clip_cache(name: str, pretrained: str | None) -> None:
    """Offline, a CLIP of the paper profile (:data:`gifkit.config.GUIDANCE_CLIP`, ``ALIA_SEMANTIC_CLIP``) that the
    Hub cache lacks, or holds incompletely, raises :class:`ModelUnavailable` at once."""
    key = _KNOWN_CLIPS.get((name.split(":", 1)[-1].removesuffix("-quickgelu"), pretrained))
    if key is None or not is_offline():
        return
    folder = checkpoint_dir(key)
    lacks = missing_files(key, folder) if folder is not None else []
    if folder is None or lacks:
        repo = KNOWN_CHECKPOINTS[key].repo_id
        where = f"{folder}, which lacks {', '.join(lacks)}" if lacks else "which does not hold it"
        raise ModelUnavailable(f"CLIP model '{name} ({pretrained})' is not available: tried the Hub cache of "
                               f"{repo} offline, {where}. {how_to_get(repo)}")


def load_clip(name: str = GUIDANCE_CLIP[0], pretrained: str = GUIDANCE_CLIP[1], device: str | torch.device = "cpu",
              quick_gelu: bool | None = None) -> ClipBundle:
    """Load an open_clip model: ``(model, preprocess, tokenizer)``.

    Args:
        name: open_clip architecture name (``"ViT-B-32-quickgelu"``; ``"ViT-B-32"`` with the ``openai`` tag
            gives the same model) or ``"hf-hub:org/repo"``.
        pretrained: an open_clip pretrained tag (``"openai"``: read from its Hub repo, e.g.
            ``timm/vit_base_patch32_clip_224.openai``, as ``open_clip_config.json`` + ``open_clip_model.safetensors``),
            a weights file, or a local folder: a Hub snapshot of such a repo (its ``open_clip_config.json`` gives the
            architecture) or a folder holding only a weights file (built as ``name``).
        quick_gelu: force QuickGELU on or off; default (``None``): :func:`clip_uses_quick_gelu`, so OpenAI's
            weights always run with the activation they were trained with, whatever the folder's config says.
    """
    import json

    _check_clip_cache(name, pretrained)  # before open_clip is imported or a model built
    import open_clip

    model_name, tag, folder_cfg = name, pretrained, None
    if pretrained and looks_like_path(pretrained):
        p = Path(os.path.expanduser(pretrained))
        if not p.exists():
            raise unavailable("CLIP checkpoint", f"{name}/{pretrained}", f"the local path {str(p)!r}, which does not exist")
        if p.is_dir():
            if (p / "open_clip_config.json").is_file():
                folder_cfg = json.loads((p / "open_clip_config.json").read_text())
                if _clip_weights_file(p) is None:
                    raise unavailable("CLIP checkpoint", f"{name}/{pretrained}", f"{str(p)!r}, which holds no weights file")
                model_name, tag = f"local-dir:{p}", None
            else:
                f = _clip_weights_file(p)
                if f is None:
                    raise unavailable("CLIP checkpoint", f"{name}/{pretrained}", f"{str(p)!r}, which holds no weights file")
                tag = str(f)
    quick = clip_uses_quick_gelu(name, pretrained, folder_cfg) if quick_gelu is None else bool(quick_gelu)
    hub = ""
    if pretrained and not looks_like_path(pretrained) and not name.startswith("hf-hub:"):
        hub = open_clip.get_pretrained_cfg(name, pretrained).get("hf_hub", "").rstrip("/")
    source = pretrained
    try:
        if hub:  # read what the Hub serves for the tag, from the cache when offline
            folder = _clip_hub_folder(hub)
            model_name, tag, source = f"local-dir:{folder}", None, hub
        model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=tag, device=device,
                                                                     force_quick_gelu=quick)
        tokenizer = open_clip.get_tokenizer(model_name)
    except Exception as e:  # open_clip raises RuntimeError / OSError / hub errors
        repo = name if name.startswith("hf-hub:") else f"{name} ({pretrained})"
        err = unavailable("CLIP model", repo, f"open_clip.create_model_and_transforms({name!r}, pretrained={pretrained!r})" + (" offline" if is_offline() else ""), e)
        if hub:
            err = ModelUnavailable(str(err).replace(f"`hf download {repo}", f"`hf download {hub}"))
        raise err from e
    model.eval().requires_grad_(False)
    if quick and not clip_has_quick_gelu(model):  # pragma: no cover - an open_clip that ignores force_quick_gelu
        raise RuntimeError(f"CLIP {name} ({pretrained}) was built with GELU; OpenAI's weights need QuickGELU")
    tag_source(model, str(source if source and not looks_like_path(str(source)) else pretrained),
                architecture=name, quick_gelu=quick)
    return ClipBundle(model, preprocess, tokenizer)


def clip_has_quick_gelu(model: torch.nn.Module) -> bool:
    """True when every MLP activation of an open_clip model is QuickGELU (what OpenAI's weights need)."""
    from open_clip.transformer import QuickGELU

    acts = [m for block in model.modules() if hasattr(block, "mlp") and hasattr(block.mlp, "gelu")
            for m in [block.mlp.gelu]]
    return bool(acts) and all(isinstance(a, QuickGELU) for a in acts)


def _dtype_kwarg(torch_dtype: torch.dtype | None) -> dict:
    """transformers' dtype keyword: ``dtype`` from 4.56 on, ``torch_dtype`` before (and still accepted)."""
    if torch_dtype is None:
        return {}
    import transformers

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return {"dtype": torch_dtype} if (major, minor) >= (4, 56) else {"torch_dtype": torch_dtype}


def _diffusers_dtype(torch_dtype: torch.dtype | None) -> dict:
    """diffusers' dtype keyword: ``dtype`` from 0.40 on (``torch_dtype`` warns there), ``torch_dtype`` before."""
    if torch_dtype is None:
        return {}
    import diffusers

    major, minor = (int(x) for x in diffusers.__version__.split(".")[:2])
    return {"dtype": torch_dtype} if (major, minor) >= (0, 40) else {"torch_dtype": torch_dtype}


def from_pretrained(cls, model_id: str, what: str, **kwargs) -> Any:
    path, local_only = resolve_source(model_id, what)
    try:
        return cls.from_pretrained(path, local_files_only=local_only, **kwargs)
    except Exception as e:
        tried = f"{cls.__name__}.from_pretrained({path!r}" + (", local_files_only=True)" if local_only else ")")
        raise unavailable(what, model_id, tried, e) from e


def load_sd(model_id: str = MODEL_IDS["sd"], torch_dtype: torch.dtype | None = None,
            device: str | torch.device | None = None):
    """Stable Diffusion as a diffusers ``StableDiffusionImg2ImgPipeline`` (safety checker off).

    The pipeline's components (``vae``, ``unet``, ``text_encoder``, ``tokenizer``,
    ``scheduler``) are what :mod:`gifkit.priors.sd` uses. The scheduler is
    replaced by DDIM with the checkpoint's own noise schedule (the paper's sampler).
    """
    from diffusers import DDIMScheduler, StableDiffusionImg2ImgPipeline

    pipe = from_pretrained(StableDiffusionImg2ImgPipeline, model_id, "Stable Diffusion checkpoint",
                            safety_checker=None, requires_safety_checker=False, **_diffusers_dtype(torch_dtype))
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    if device is not None:
        pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return tag_source(pipe, model_id, pipe.unet.dtype)



def load_mae(model_id: str = MODEL_IDS["mae"], torch_dtype: torch.dtype | None = None):
    """MAE as transformers ``ViTMAEForPreTraining`` with masking ratio 0 (all patches kept), in ``torch_dtype``
    (default: the checkpoint's, float32)."""
    from transformers import ViTMAEForPreTraining

    model = from_pretrained(ViTMAEForPreTraining, model_id, "MAE checkpoint", mask_ratio=0.0)
    if torch_dtype is not None:
        model = model.to(torch_dtype)
    return tag_source(model.eval().requires_grad_(False), model_id, next(model.parameters()).dtype)



def load_unclip(model_id: str = MODEL_IDS["unclip"], torch_dtype: torch.dtype | None = None,
                device: str | torch.device | None = None):
    """Karlo's unCLIP image-variation pipeline (diffusers ``UnCLIPImageVariationPipeline``), built from its
    components one by one.

    Karlo's ``model_index.json`` declares ``text_proj`` as ``["unclip", "UnCLIPTextProjModel"]``, a module path
    that diffusers >= 0.36 no longer has (unCLIP moved under ``pipelines/deprecated``), so the pipeline's own
    ``from_pretrained`` fails there on a complete folder. Each component is loaded from its subfolder instead
    (hub id or local folder alike; diffusers 0.35 and 0.42 alike): the decoder and the two super-resolution
    U-Nets, ``text_proj``, the CLIP ViT-L/14 text and image encoders (transformers), tokenizer, feature extractor
    and the two ``UnCLIPScheduler``. The decoder generates 64 px images, as the paper's DALL-E2; the
    super-resolution U-Nets bring them to 256 px.
    """
    from diffusers import UnCLIPImageVariationPipeline, UnCLIPScheduler, UNet2DConditionModel, UNet2DModel
    from transformers import CLIPImageProcessor, CLIPTextModelWithProjection, CLIPTokenizer, CLIPVisionModelWithProjection

    try:  # diffusers >= 0.36 keeps unCLIP under pipelines/deprecated
        from diffusers.pipelines.deprecated.unclip.text_proj import UnCLIPTextProjModel
    except ImportError:  # diffusers 0.35
        from diffusers.pipelines.unclip.text_proj import UnCLIPTextProjModel

    what = "unCLIP checkpoint"
    path, local_only = resolve_source(model_id, what)
    if local_only and Path(path).is_dir() and not (Path(path) / "model_index.json").is_file():
        raise unavailable(what, model_id, f"{path!r}, which has no model_index.json")
    dtype, tf_dtype = _diffusers_dtype(torch_dtype), _dtype_kwarg(torch_dtype)
    parts = {"decoder": (UNet2DConditionModel, dtype), "text_proj": (UnCLIPTextProjModel, dtype),
             "super_res_first": (UNet2DModel, dtype), "super_res_last": (UNet2DModel, dtype),
             "text_encoder": (CLIPTextModelWithProjection, tf_dtype),
             "image_encoder": (CLIPVisionModelWithProjection, tf_dtype),
             "tokenizer": (CLIPTokenizer, {}), "feature_extractor": (CLIPImageProcessor, {}),
             "decoder_scheduler": (UnCLIPScheduler, {}), "super_res_scheduler": (UnCLIPScheduler, {})}
    components = {}
    for name, (cls, kwargs) in parts.items():
        try:
            components[name] = cls.from_pretrained(path, subfolder=name, local_files_only=local_only, **kwargs)
        except Exception as e:
            tried = f"{cls.__name__}.from_pretrained({path!r}, subfolder={name!r}" + (", local_files_only=True)" if local_only else ")")
            raise unavailable(what, model_id, tried, e) from e
    pipe = UnCLIPImageVariationPipeline(**components)
    if device is not None:
        pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return tag_source(pipe, model_id, pipe.decoder.dtype)



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
    model = from_pretrained(BlipForConditionalGeneration, model_id, "BLIP captioner", **_dtype_kwarg(torch_dtype))
    if device is not None:
        model = model.to(device)
    tag_source(model, model_id, next(model.parameters()).dtype)
    return CaptionerBundle(model.eval().requires_grad_(False), processor)



def load_text_generator(model_id: str = MODEL_IDS["llm"], device: str | torch.device | None = None,
                        torch_dtype: torch.dtype | None = None) -> TextGenBundle:
    """A causal language model and its tokenizer (``AutoModelForCausalLM`` / ``AutoTokenizer``), eval mode."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = from_pretrained(AutoTokenizer, model_id, "text-generation model")
    if len(tokenizer) < 100:  # transformers 5 may build a near-empty tokenizer instead of failing
        raise unavailable("text-generation model", model_id, f"AutoTokenizer.from_pretrained({model_id!r}), which "
                           f"gave a tokenizer of {len(tokenizer)} tokens")
    model = from_pretrained(AutoModelForCausalLM, model_id, "text-generation model", **_dtype_kwarg(torch_dtype))
    if device is not None:
        model = model.to(device)
    tag_source(model, model_id, next(model.parameters()).dtype)
    return TextGenBundle(model.eval().requires_grad_(False), tokenizer)



def load_instruct_pix2pix(model_id: str = MODEL_IDS["ip2p"], torch_dtype: torch.dtype | None = None,
                          device: str | torch.device | None = None):
    """InstructPix2Pix as a diffusers ``StableDiffusionInstructPix2PixPipeline`` (its own Euler-ancestral sampler)."""
    from diffusers import StableDiffusionInstructPix2PixPipeline

    pipe = from_pretrained(StableDiffusionInstructPix2PixPipeline, model_id, "InstructPix2Pix checkpoint",
                            safety_checker=None, requires_safety_checker=False, **_diffusers_dtype(torch_dtype))
    if device is not None:
        pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return tag_source(pipe, model_id, pipe.unet.dtype)


def load_tiny_vae(model_id: str = MODEL_IDS["taesd"], torch_dtype: torch.dtype | None = None,
                  device: str | torch.device | None = None):
    """A tiny autoencoder (diffusers ``AutoencoderTiny``, e.g. TAESD for SD v1), eval mode, no gradients to its
    weights. It reads and writes SD's *scaled* latents (its ``scaling_factor`` is 1) and decodes to [-1, 1]."""
    from diffusers import AutoencoderTiny

    vae = from_pretrained(AutoencoderTiny, model_id, "tiny autoencoder (TAESD, GIF-SD's --guidance-vae)",
                          **_diffusers_dtype(torch_dtype))
    if device is not None:
        vae = vae.to(device)
    return tag_source(vae.eval().requires_grad_(False), model_id, vae.dtype)
