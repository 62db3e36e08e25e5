"""ALIA's steps (a) and (b): captions of the training images and the domain descriptions summarised from them.

(a) **Captions.** Every training image is captioned (BLIP, ``Salesforce/blip-image-captioning-large``; greedy, so
    the same images give the same captions).
(b) **Domain descriptions.** A sample of the captions (20, drawn with a seeded generator, after dropping
    duplicates and degenerate captions) is summarised by a text-generation model into at most 10 short
    descriptions of the *domains* (background, weather, time of day, camera view, style), e.g. "in the
    snow"; or the descriptions come from the user (a list, or a file with one per line).

Both are cached in ALIA's work folder (:func:`cached_captions`, :func:`cached_descriptions`) and reused by a re-run
on the same images with the same models. The method itself is :mod:`gifkit.methods.alia`.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Sequence

import pandas as pd
import torch

from gifkit.config import MODEL_IDS, get_profile
from gifkit.core.rng import py_random
from gifkit.io.datasets import dataset_labels, seed_fingerprint
from gifkit.io.files import atomic_write_bytes, read_json, write_json
from gifkit.io.images import BadImage
from gifkit.priors.alia import check_descriptions

__all__ = ["MAX_DESCRIPTIONS", "SUMMARY_PROMPT", "CAPTIONS_CSV", "DESCRIPTIONS_JSON", "caption_images",
           "clean_captions", "sample_captions", "summarize_captions", "parse_descriptions", "load_descriptions",
           "free_memory", "cached_captions", "cached_descriptions"]

MAX_DESCRIPTIONS = 10
N_SAMPLED_CAPTIONS = 20
SUMMARY_PROMPT = """Here are captions of photos from one image dataset:

{captions}

Summarise the settings these photos show into at most {n} short descriptions of their domains: the \
background, location, weather, time of day, camera view and image style, not the main object. Write each \
description as a phrase that can follow "a photo of a [object]", one per line, starting with "- ". For example:
- standing on a branch
- in a river at night
- in a blurry close-up

Descriptions:
"""
CAPTIONS_CSV, DESCRIPTIONS_JSON = "captions.csv", "descriptions.json"


# ----------------------------------------------------------------------------- (a) captions


@torch.no_grad()
def caption_images(dataset, captioner, *, indices: Sequence[int] | None = None, batch_size: int = 16,
                   max_new_tokens: int | None = None) -> list[str]:
    """Unconditional BLIP captions of ``dataset[i][0]`` for ``indices`` (default: all), in order.

    ``captioner`` is a :class:`gifkit.models.hub.CaptionerBundle` (``model``, ``processor``). Unreadable images get
    an empty caption. Greedy decoding: the same images give the same captions.
    """
    model, processor = captioner
    param = next(model.parameters())
    indices = list(range(len(dataset))) if indices is None else list(indices)
    kwargs = {"max_new_tokens": max_new_tokens} if max_new_tokens else {}
    captions: list[str] = []
    for start in range(0, len(indices), batch_size):
        images, ok = [], []
        for i in indices[start:start + batch_size]:
            try:
                images.append(dataset[i][0].convert("RGB"))
                ok.append(True)
            except (BadImage, OSError, ValueError):
                ok.append(False)
        texts = iter([])
        if images:
            inputs = processor(images=images, return_tensors="pt")
            pixels = inputs["pixel_values"].to(param.device, param.dtype)
            out = model.generate(pixel_values=pixels, do_sample=False, **kwargs)
            texts = iter(processor.batch_decode(out, skip_special_tokens=True))
        captions += [" ".join(next(texts).split()) if good else "" for good in ok]
    return captions


def clean_captions(captions: Sequence[str], max_repeats: int = 5) -> list[str]:
    """Unique non-empty captions (first occurrence order) without degenerate ones (a word > ``max_repeats`` times).

    If that would remove every caption, the unique non-empty ones are returned instead.
    """
    unique = list(dict.fromkeys(c.strip() for c in captions if c and c.strip()))
    good = [c for c in unique if max(pd.Series(c.split()).value_counts().max(), 0) <= max_repeats]
    return good or unique


def sample_captions(captions: Sequence[str], n: int = N_SAMPLED_CAPTIONS, seed: int = 0) -> list[str]:
    """``n`` captions drawn without replacement with a generator seeded by ``(seed, "alia-captions")``."""
    captions = list(captions)
    if len(captions) <= n:
        return captions
    return py_random(seed, "alia-captions").sample(captions, n)


# ----------------------------------------------------------------------------- (b) descriptions

_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s+")
_PREFIX = re.compile(r"^(?:an?\s+)?(?:photo|picture|image)\s+of\s+(?:an?|the)?\s*(?:\[object\]|object)?\s*", re.I)


def parse_descriptions(text: str, max_n: int = MAX_DESCRIPTIONS, max_words: int = 12) -> list[str]:
    """Descriptions from a text-generation model's answer: bullet or numbered lines (all lines if none is),
    without the bullet, a repeated "a photo of a [object]" prefix, quotes and a final period; lower case,
    at most ``max_words`` words each, unique, at most ``max_n``."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    bullets = [ln for ln in lines if _BULLET.match(ln)]
    out: list[str] = []
    for ln in bullets or lines:
        d = _BULLET.sub("", ln)
        d = "".join(ch for ch in d if ch.isprintable())
        d = _PREFIX.sub("", d.strip().strip("\"'`")).strip().rstrip(".").strip().lower()
        d = " ".join(d.split()[:max_words])
        if d and d not in out:
            out.append(d)
    return out[:max_n]


def load_descriptions(path: str | Path) -> list[str]:
    """Descriptions from a file: a JSON list, or text with one per line ('#' starts a comment line)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"descriptions file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        data = json.loads(text)
        data = data.get("descriptions", data) if isinstance(data, dict) else data
        return check_descriptions(data)
    return check_descriptions([ln for ln in text.splitlines() if not ln.lstrip().startswith("#")])


@torch.no_grad()
def summarize_captions(captions: Sequence[str], textgen, *, n_sample: int = N_SAMPLED_CAPTIONS, seed: int = 0,
                       max_descriptions: int = MAX_DESCRIPTIONS, max_new_tokens: int = 200,
                       prompt: str = SUMMARY_PROMPT) -> dict:
    """Step (b): summarise a seeded sample of the cleaned captions into <= ``max_descriptions`` descriptions.

    ``textgen`` is a :class:`gifkit.models.hub.TextGenBundle`. The prompt goes through the tokenizer's chat
    template when it has one; decoding is greedy (deterministic). Returns ``{"descriptions", "sample",
    "prompt", "output"}``; raises ``ValueError`` when the answer holds no usable description.
    """
    model, tok = textgen
    sample = sample_captions(clean_captions(captions), n_sample, seed)
    if not sample:
        raise ValueError("no captions to summarise: every caption is empty")
    text = prompt.format(captions="\n".join(f"- {c}" for c in sample), n=max_descriptions)
    if getattr(tok, "chat_template", None):
        text = tok.apply_chat_template([{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True)
    enc = tok(text, return_tensors="pt", add_special_tokens=False)
    param = next(model.parameters())
    enc = {k: v.to(param.device) for k, v in enc.items()}
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad)
    answer = tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    descriptions = parse_descriptions(answer, max_descriptions)
    if not descriptions:
        raise ValueError(f"the text-generation model gave no usable description (answer: {answer[:200]!r}); "
                         f"pass descriptions yourself (--descriptions / --descriptions-file)")
    return {"descriptions": descriptions, "sample": sample, "prompt": text, "output": answer}


# ----------------------------------------------------------------------------- cached steps


def free_memory(device) -> None:
    """Give the memory of models just deleted back to the device (CUDA)."""
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()


def cached_captions(dataset, work: Path, profile: str, captioner_id: str | None, device,
                    batch_size: int = 16) -> list[str]:
    """Step (a), cached in ``captions.csv`` for the same captioner and the same seed images (their
    :func:`~gifkit.io.datasets.seed_fingerprint`: captions of another dataset are never reused)."""
    path = work / CAPTIONS_CSV
    key = captioner_id or ("tiny" if get_profile(profile).tiny else "default")
    seeds = seed_fingerprint(dataset)["digest"]
    if path.is_file():
        try:
            old = pd.read_csv(path, dtype={"caption": str, "seeds": str}, keep_default_na=False)
        except (ValueError, UnicodeDecodeError):  # a damaged cache is made again
            old = pd.DataFrame()
        if len(old) == len(dataset) and set(old.get("captioner", [])) == {key} and set(old.get("seeds", [])) == {seeds}:
            return old["caption"].tolist()
    from gifkit.models import hub, tiny

    bundle = tiny.tiny_blip() if get_profile(profile).tiny else hub.load_blip(captioner_id or MODEL_IDS["blip"],
                                                                              device=device)
    captions = caption_images(dataset, bundle, batch_size=batch_size)
    del bundle
    free_memory(device)
    labels = dataset_labels(dataset)
    table = pd.DataFrame({"index": range(len(dataset)), "label": labels, "caption": captions, "captioner": key,
                          "seeds": seeds})
    atomic_write_bytes(path, table.to_csv(index=False, lineterminator="\n").encode())
    return captions


def cached_descriptions(captions: list[str], work: Path, profile: str, llm_id: str | None, device,
                        seed: int) -> dict:
    """Step (b), cached in ``descriptions.json`` for the same model, seed and captions."""
    path = work / DESCRIPTIONS_JSON
    key = llm_id or ("tiny" if get_profile(profile).tiny else "default")
    digest = hashlib.blake2b("\n".join(captions).encode(), digest_size=8).hexdigest()
    if path.is_file():
        old = read_json(path, {}, "ALIA's descriptions")
        if old.get("source") == f"llm:{key}" and old.get("seed") == seed and old.get("captions") == digest:
            return old
    from gifkit.models import hub, tiny

    bundle = tiny.tiny_text_generator() if get_profile(profile).tiny else hub.load_text_generator(
        llm_id or MODEL_IDS["llm"], device=device,
        torch_dtype=torch.float16 if torch.device(device).type == "cuda" else None)
    res = summarize_captions(captions, bundle, seed=seed, max_new_tokens=60 if get_profile(profile).tiny else 200)
    del bundle
    free_memory(device)
    info = {"source": f"llm:{key}", "seed": seed, "n_captions": len(captions), "captions": digest, **res}
    write_json(path, info)
    return info
