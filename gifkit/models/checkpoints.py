"""The checkpoints gifkit knows and where a loaded model came from, without loading anything.

:data:`KNOWN_CHECKPOINTS` names each real checkpoint of the paper profile and the optional TAESD (beyond the
paper): hub id, a file proving it is cached, what uses it; :data:`LAYOUTS` lists the files each needs
(:func:`missing_files`);
:func:`checkpoint_dir` finds one in the Hub cache without network. :func:`unavailable` is the one
"not available: tried ...; how to get it" error (:class:`ModelUnavailable`). :func:`tag_source` and
:func:`source_of` carry a loaded model's provenance (hub revision or the sha256 of a local folder's weights)
into an expansion's ``run.json``. The loaders are :mod:`gifkit.models.hub`.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from gifkit.config import ALIA_SEMANTIC_CLIP_REPO, GUIDANCE_CLIP_REPO, MODEL_IDS
from gifkit.errors import UserError

__all__ = ["ModelUnavailable", "Checkpoint", "KNOWN_CHECKPOINTS", "LAYOUTS", "is_offline", "looks_like_path",
           "how_to_get", "unavailable", "resolve_source", "checkpoint_dir", "checkpoint_status", "missing_files",
           "weights_digest", "hub_revision", "tag_source", "source_of"]


class ModelUnavailable(UserError, RuntimeError):
    """A real checkpoint could not be loaded (offline, missing or incomplete files)."""


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
        Checkpoint("clip", GUIDANCE_CLIP_REPO, "open_clip_config.json",
                   "CLIP ViT-B/32 (openai, QuickGELU): zero-shot guidance, `load_clip()`"),
        Checkpoint("clip-l", ALIA_SEMANTIC_CLIP_REPO, "open_clip_config.json",
                   "CLIP ViT-L/14 (openai, QuickGELU): ALIA's semantic filter, `load_clip()`"),
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
        Checkpoint("taesd", MODEL_IDS["taesd"], "config.json",
                   "TAESD (optional, beyond the paper): GIF-SD's --guidance-vae, `load_tiny_vae()`"),
    ]
}


_DIFF_W = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
_TF_W = ("model.safetensors", "pytorch_model.bin")
_CLIP_TOK = [("vocab.json",), ("merges.txt",)]


def _folder(name: str, config: str, weights: tuple | None) -> list[tuple[str, ...]]:
    return [(f"{name}/{config}",)] + ([tuple(f"{name}/{w}" for w in weights)] if weights else [])


_SD = ([("model_index.json",)] + _folder("unet", "config.json", _DIFF_W) + _folder("vae", "config.json", _DIFF_W)
       + _folder("text_encoder", "config.json", _TF_W) + [(f"tokenizer/{f}",) for (f,) in _CLIP_TOK]
       + [("scheduler/scheduler_config.json",)])
# The files each checkpoint needs, as alternatives (one of each tuple must be there); what gifkit.testing writes
# and what `gifkit doctor --check` reports missing. Files gifkit never reads (safety checker, .ckpt) are not listed.
LAYOUTS: dict[str, list[tuple[str, ...]]] = {
    "clip": [("open_clip_config.json",), ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")],
    "clip-l": [("open_clip_config.json",), ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")],
    "sd": _SD, "sd15": _SD, "ip2p": _SD,
    "mae": [("config.json",), _TF_W],
    "unclip": ([("model_index.json",)] + _folder("decoder", "config.json", _DIFF_W)
               + _folder("text_proj", "config.json", _DIFF_W) + _folder("super_res_first", "config.json", _DIFF_W)
               + _folder("super_res_last", "config.json", _DIFF_W) + _folder("text_encoder", "config.json", _TF_W)
               + _folder("image_encoder", "config.json", _TF_W) + [(f"tokenizer/{f}",) for (f,) in _CLIP_TOK]
               + [("feature_extractor/preprocessor_config.json",), ("decoder_scheduler/scheduler_config.json",),
                  ("super_res_scheduler/scheduler_config.json",)]),
    "blip": [("config.json",), _TF_W, ("vocab.txt", "tokenizer.json"), ("preprocessor_config.json",)],
    "llm": [("config.json",), _TF_W + ("model.safetensors.index.json",), ("tokenizer.json", "vocab.json")],
    "taesd": [("config.json",), _DIFF_W],
}

def is_offline() -> bool:
    """True when HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE ask for no network."""
    truthy = {"1", "true", "yes", "on"}
    return any(os.environ.get(v, "").strip().lower() in truthy for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))

def looks_like_path(model_id: str) -> bool:
    # hub ids are "name" or "org/name"; anything else (absolute, relative, ~, deeper) is a path
    return model_id.startswith(("/", ".", "~")) or model_id.count("/") >= 2 or Path(model_id).exists()


def how_to_get(repo_id: str) -> str:
    """How to get ``repo_id`` (a hub id, or a folder that is not a complete checkpoint)."""
    if looks_like_path(repo_id):
        return ("Pass a directory holding a complete checkpoint (as written by `save_pretrained` or "
                "`hf download <hub id> --local-dir <dir>`), or a hub id such as "
                + ", ".join(repr(c.repo_id) for c in KNOWN_CHECKPOINTS.values()) + ".")
    return (
        f"Get it on a machine with internet: `hf download {repo_id} --local-dir <dir>` "
        f"(or `huggingface-cli download ...` with older huggingface_hub), then pass that <dir> "
        f"instead of the hub id, or unset HF_HUB_OFFLINE to let gifkit download it."
    )


def unavailable(what: str, repo_id: str, tried: str, err: BaseException | None = None) -> ModelUnavailable:
    """The one error for a checkpoint that cannot be loaded: what, which, what was tried, why, how to get it."""
    msg = f"{what} '{repo_id}' is not available: tried {tried}."
    if err is not None:
        msg += f" ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
    return ModelUnavailable(msg + " " + how_to_get(repo_id))


def resolve_source(model_id: str, what: str) -> tuple[str, bool]:
    """Return (id_or_path, local_files_only); raise fast for a missing local directory."""
    expanded = os.path.expanduser(model_id)
    if looks_like_path(model_id):
        if not Path(expanded).exists():
            raise unavailable(what, model_id, f"the local path {expanded!r}, which does not exist")
        return expanded, True
    if is_offline():  # the cached snapshot's folder: transformers 4.57.2 cannot load a tokenizer by hub id offline
        from huggingface_hub import snapshot_download

        try:
            return snapshot_download(model_id, local_files_only=True), True
        except Exception:  # not cached (or no refs/main): from_pretrained says what is missing
            pass
    return model_id, is_offline()


def checkpoint_dir(key: str) -> Path | None:
    """The cached snapshot folder of a known checkpoint (``refs/main`` of the Hub cache), without network."""
    from huggingface_hub import try_to_load_from_cache

    ck = KNOWN_CHECKPOINTS[key]
    found = try_to_load_from_cache(ck.repo_id, ck.probe_file)
    return Path(found).parent if isinstance(found, str) else None


def checkpoint_status(key: str) -> str:
    """'cached at <dir>' or 'not cached' for a known checkpoint, without network."""
    found = checkpoint_dir(key)
    return f"cached at {found}" if found is not None else "not cached"


def missing_files(key: str, directory: str | os.PathLike) -> list[str]:
    """The files of :data:`LAYOUTS` ``[key]`` that ``directory`` lacks (``"a (or b)"`` for alternatives)."""
    d = Path(directory)
    return [" (or ".join(alts) + ")" * (len(alts) - 1) for alts in LAYOUTS[key]
            if not any((d / a).is_file() for a in alts)]

def weights_digest(directory: str | os.PathLike) -> dict[str, str]:
    """``{relative path: sha256}`` of the weight files (``*.safetensors``, ``*.bin``, ``*.pt``, ``*.pth``,
    ``*.ckpt``) under ``directory``: the identity of a local checkpoint folder (``run.json`` records it)."""
    d = Path(directory)
    files = [d] if d.is_file() else sorted(p for ext in ("safetensors", "bin", "pt", "pth", "ckpt")
                                           for p in d.rglob(f"*.{ext}"))
    out = {}
    for f in files:
        h = hashlib.sha256()
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                h.update(block)
        out[f.name if d.is_file() else str(f.relative_to(d))] = h.hexdigest()
    return out


def hub_revision(repo_id: str) -> str | None:
    """The commit of the cached snapshot of ``repo_id`` (``refs/main``), or None."""
    from huggingface_hub import try_to_load_from_cache

    for probe in ("model_index.json", "config.json", "open_clip_config.json"):
        found = try_to_load_from_cache(repo_id, probe)
        if isinstance(found, str):
            return Path(found).parent.name
    return None


def tag_source(obj, model_id: str, dtype: torch.dtype | None = None, **extra):
    """Attach ``gifkit_source`` to ``obj`` (see :func:`source_of`) and return ``obj``."""
    path = os.path.expanduser(model_id)
    if looks_like_path(model_id) and Path(path).exists():
        src = {"path": str(Path(path).resolve()), "sha256": weights_digest(path)}
    else:
        src = {"id": model_id, "revision": hub_revision(model_id)}
    if dtype is not None:
        src["dtype"] = str(dtype).replace("torch.", "")
    src.update(extra)
    try:
        object.__setattr__(obj, "gifkit_source", src)
    except (AttributeError, TypeError):  # pragma: no cover - objects that refuse attributes
        pass
    return obj


def source_of(obj) -> dict | None:
    """Where a model :func:`load_sd` & co. returned came from: ``{"id", "revision"}`` for a hub id (the cached
    snapshot's commit) or ``{"path", "sha256": {file: digest}}`` for a local folder, plus ``"dtype"``; ``None``
    for a model gifkit did not load (e.g. the tiny ones)."""
    return getattr(obj, "gifkit_source", None)
