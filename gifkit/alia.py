"""ALIA: Automated Language-guided Image Augmentation (Dunlap et al., NeurIPS 2023, arXiv 2305.16289).

The pipeline, as in the paper (§3) and its official code:

(a) **Captions.** Every training image is captioned (BLIP, ``Salesforce/blip-image-captioning-large``).
(b) **Domain descriptions.** A sample of the captions (20, drawn with a seeded generator, after dropping
    duplicates and degenerate captions) is summarised by a text-generation model into at most 10 short
    descriptions of the *domains* (background, weather, time of day, camera view, style), e.g. "in the
    snow"; or the descriptions come from the user (a list, or a file with one per line).
(c) **Edits.** Each seed is edited K times (K = the expansion ratio) with prompts such as "a photo of a
    {class} {description}": SD img2img (strength 0.6, guidance 7.5) or InstructPix2Pix (image guidance
    1.2, guidance 7.5). Variant v of seed i takes description ``(o_i + v) mod D`` with an offset ``o_i``
    drawn from (seed, i), so every seed gets distinct descriptions when K <= D and usage stays balanced.
(d) **Filters.** *Semantic*: CLIP zero-shot over the image's class prompt ("a photo of a {class}") and
    the negative prompts ("a photo of an object", "a photo of a scene", "a photo of geometric shapes",
    "a photo", "an image"; softmax of 100 x cosine); an edit is dropped when a negative prompt wins.
    *Confidence*: a classifier trained on the original data gives per-class thresholds
    ``t_c = mean over training images labelled c of p(c | x)`` (cleanlab's "confident thresholds", as
    the official code); an edit labelled y with prediction ``c = argmax p`` and confidence ``p_c > t_c``
    is dropped as *too easy* when ``c == y`` (the edit changed too little to teach anything) and as
    *mislabeled* when ``c != y`` (the edit corrupted the class).
(e) **Output.** The kept edits in the store format, each metadata row with its filter decisions.

How the steps map onto gifkit: (c) is :class:`ALIAPrior`, a :class:`~gifkit.priors.base.Prior` run by
:func:`gifkit.imagine.expand` (batches, resume, sharding, determinism as for every method) into a
*candidates* store; (d)+(e) is :func:`filter_expansion`, a post-pass that reads the candidates and writes
the kept ones through :class:`~gifkit.store.ExpansionStore` into the output folder. :func:`run_alia` chains
everything. Layout of ``run_alia(out=OUT)``::

    OUT/                    the ALIA expansion: <class>/<seed>_<variant>.png, metadata.csv (kept edits,
                            with filter columns), classes.json, alia.json (descriptions, thresholds,
                            counts), alia_filter.csv (every candidate with its decisions)
    OUT.alia/candidates/    every edit before filtering (a store of its own: "ALIA without filtering")
    OUT.alia/classifier/    the confidence filter's classifier (a `gifkit train` run folder)
    OUT.alia/captions.csv, OUT.alia/descriptions.json   steps (a) and (b), reused on a re-run
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image

from gifkit.priors.base import Job, Latents
from gifkit.priors.sd import SDPrior
from gifkit.rng import generator, py_random
from gifkit.store import atomic_write_bytes, read_metadata, write_json, write_subset

__all__ = [
    "EDITORS", "FILTERS", "TEMPLATES", "NEGATIVE_PROMPTS", "MAX_DESCRIPTIONS", "SUMMARY_PROMPT",
    "caption_images", "clean_captions", "sample_captions", "summarize_captions", "parse_descriptions",
    "check_descriptions", "load_descriptions", "descriptions_digest", "ALIAPrior",
    "semantic_filter", "confident_thresholds", "confidence_decisions", "FilterClassifier",
    "train_filter_classifier", "load_filter_classifier", "filter_expansion", "ALIAResult", "run_alia",
    "run_alia_from_args",
]

EDITORS = ("img2img", "instruct")
FILTERS = ("both", "semantic", "confidence", "none")
TEMPLATES = {"img2img": "a photo of a {class} {description}", "instruct": "put the {class} {description}"}
EDITOR_DEFAULTS = {"img2img": dict(strength=0.6, guidance_scale=7.5), "instruct": dict(guidance_scale=7.5,
                                                                                         image_guidance_scale=1.2)}
NEGATIVE_PROMPTS = ("a photo of an object", "a photo of a scene", "a photo of geometric shapes", "a photo",
                    "an image")
SEMANTIC_TEMPLATE = "a photo of a {}"
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
ALIA_JSON, FILTER_CSV, CAPTIONS_CSV, DESCRIPTIONS_JSON = "alia.json", "alia_filter.csv", "captions.csv", \
    "descriptions.json"


# ----------------------------------------------------------------------------- (a) captions


@torch.no_grad()
def caption_images(dataset, captioner, *, indices: Sequence[int] | None = None, batch_size: int = 16,
                   max_new_tokens: int | None = None) -> list[str]:
    """Unconditional BLIP captions of ``dataset[i][0]`` for ``indices`` (default: all), in order.

    ``captioner`` is a :class:`gifkit.hub.CaptionerBundle` (``model``, ``processor``). Unreadable images get
    an empty caption. Greedy decoding: the same images give the same captions.
    """
    from gifkit.data.images import BadImage

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


def check_descriptions(descriptions: Sequence[str]) -> list[str]:
    """Stripped, unique, non-empty descriptions; a clear error for none."""
    if isinstance(descriptions, str):
        raise ValueError("descriptions must be a list of strings, not one string")
    out = list(dict.fromkeys(" ".join(str(d).split()) for d in descriptions if str(d).strip()))
    if not out:
        raise ValueError("no domain descriptions: pass at least one (e.g. 'in the snow')")
    return out


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


def descriptions_digest(descriptions: Sequence[str]) -> str:
    """A short hash of the description list (recorded in run.json and every metadata row)."""
    return hashlib.blake2b("\n".join(descriptions).encode(), digest_size=4).hexdigest()


@torch.no_grad()
def summarize_captions(captions: Sequence[str], textgen, *, n_sample: int = N_SAMPLED_CAPTIONS, seed: int = 0,
                       max_descriptions: int = MAX_DESCRIPTIONS, max_new_tokens: int = 200,
                       prompt: str = SUMMARY_PROMPT) -> dict:
    """Step (b): summarise a seeded sample of the cleaned captions into <= ``max_descriptions`` descriptions.

    ``textgen`` is a :class:`gifkit.hub.TextGenBundle`. The prompt goes through the tokenizer's chat
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


# ----------------------------------------------------------------------------- (c) edits


class ALIAPrior(SDPrior):
    """Language-guided edits of the seeds (step c) through SD img2img or InstructPix2Pix.

    ``pipe``: a ``StableDiffusionImg2ImgPipeline`` (``editor="img2img"``, :func:`gifkit.hub.load_sd` /
    ``tiny_sd``) or a ``StableDiffusionInstructPix2PixPipeline`` (``editor="instruct"``,
    :func:`gifkit.hub.load_instruct_pix2pix` / ``tiny_instruct_pix2pix``). Seeds are resized (bicubic) to the
    model's resolution, without random rotation or flips (ALIA edits the training images as they are).
    The prompt of a job is ``template`` filled with the class name and its description (module docstring).
    """

    name = "alia"

    def __init__(self, pipe, descriptions: Sequence[str], *, editor: str = "img2img", template: str | None = None,
                 steps: int = 50, strength: float = 0.6, guidance_scale: float = 7.5,
                 image_guidance_scale: float = 1.2, device: str | torch.device | None = None):
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


# ----------------------------------------------------------------------------- (d) filters


def _images01(paths: Sequence[Path], size: int | None = None) -> torch.Tensor:
    ims = []
    for p in paths:
        with Image.open(p) as im:
            im = im.convert("RGB")
            if size is not None and im.size != (size, size):
                im = im.resize((size, size), Image.Resampling.BICUBIC)
            ims.append(torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1))
    return torch.stack(ims).float() / 255.0  # [N, 3, H, W]


@torch.no_grad()
def semantic_filter(images01: torch.Tensor, labels: Sequence[int], class_names: Sequence[str], clip_model,
                    tokenizer, *, template: str = SEMANTIC_TEMPLATE,
                    negatives: Sequence[str] = NEGATIVE_PROMPTS) -> pd.DataFrame:
    """ALIA's semantic filter: CLIP zero-shot over the image's class prompt plus the negative prompts.

    ``template`` with ``{}`` is filled with the image's class; without ``{}`` it is one prompt for all
    images (the official code's dataset-level prompt, e.g. "a photo of a bird"). Probabilities are the
    softmax of 100 x cosine over [class prompt, *negatives]. Returns one row per image: ``semantic_winner``
    (the winning prompt), ``semantic_p_class`` (the class prompt's probability) and ``semantic_keep``
    (1 unless a negative prompt won).
    """
    from gifkit.guidance import ZeroShotClassifier

    negatives = list(negatives)
    if not negatives:
        raise ValueError("the semantic filter needs at least one negative prompt")
    per_class = "{}" in template
    prompts = [template.format(c) for c in class_names] if per_class else [template]
    zs = ZeroShotClassifier(clip_model, tokenizer, prompts + negatives, templates=("{}",))
    p_all = zs.probs(images01)  # [N, P + M]
    labels = torch.as_tensor(list(labels), dtype=torch.long)
    col = labels if per_class else torch.zeros_like(labels)
    n_p = len(prompts)
    logits = torch.log(p_all.clamp_min(1e-30))
    sub = torch.cat([logits.gather(1, col[:, None].to(logits.device)), logits[:, n_p:]], dim=1)  # [N, 1 + M]
    p = torch.softmax(sub, dim=1).cpu()
    win = p.argmax(1)
    texts = [prompts[int(c)] if int(w) == 0 else negatives[int(w) - 1] for c, w in zip(col, win)]
    return pd.DataFrame({"semantic_winner": texts, "semantic_p_class": p[:, 0].numpy().astype(float),
                         "semantic_keep": (win == 0).numpy().astype(int)})


def confident_thresholds(probs: np.ndarray, labels: Sequence[int], num_classes: int | None = None) -> np.ndarray:
    """Per-class thresholds ``t_c = mean_{i: y_i = c} p_i[c]`` (cleanlab's confident thresholds); NaN for a
    class without images (nothing is ever confidently that class)."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(list(labels), dtype=np.int64)
    c = num_classes or probs.shape[1]
    return np.array([probs[labels == k, k].mean() if (labels == k).any() else np.nan for k in range(c)])


def confidence_decisions(probs: np.ndarray, labels: Sequence[int], thresholds: np.ndarray) -> pd.DataFrame:
    """ALIA's confidence filter: with ``c = argmax p`` and ``conf = p[c] > t_c``, "too_easy" if ``c == y``,
    "mislabeled" if ``c != y``, else "keep" (columns conf_pred, conf, conf_threshold, conf_decision)."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(list(labels), dtype=np.int64)
    pred = probs.argmax(1)
    conf = probs[np.arange(len(pred)), pred]
    thr = np.asarray(thresholds, dtype=np.float64)[pred]
    confident = conf > thr  # NaN threshold: never
    decision = np.where(~confident, "keep", np.where(pred == labels, "too_easy", "mislabeled"))
    return pd.DataFrame({"conf_pred": pred, "conf": conf, "conf_threshold": thr, "conf_decision": decision})


@dataclass
class FilterClassifier:
    """A classifier trained by ``gifkit train`` with its evaluation transform (for the confidence filter)."""

    model: torch.nn.Module
    transform: Callable
    classes: list[str]
    device: torch.device = torch.device("cpu")

    @torch.no_grad()
    def probs(self, images: Sequence[Image.Image], batch_size: int = 64) -> torch.Tensor:
        """Softmax probabilities ``[N, C]`` of PIL images (float32, CPU)."""
        out = []
        self.model.eval()
        for s in range(0, len(images), batch_size):
            x = torch.stack([self.transform(im.convert("RGB")) for im in images[s:s + batch_size]])
            out.append(torch.softmax(self.model(x.to(self.device)).float(), -1).cpu())
        return torch.cat(out) if out else torch.zeros(0, len(self.classes))


def train_filter_classifier(data: str, out: str | Path, *, profile: str = "smoke", split: str = "train",
                            data_root: str | None = None, data_kwargs: dict | None = None, seed: int = 0,
                            progress: bool = False, **overrides) -> Path:
    """Train the confidence filter's classifier on the original data with :func:`gifkit.train.train`.

    ``smoke`` profile: the ``smoke`` training preset; otherwise the ``paper`` preset with ImageNet
    weights (``pretrained=True``: ALIA fine-tunes a pretrained ResNet-50). ``overrides`` are
    :class:`gifkit.train.TrainConfig` fields. A finished run with the same settings is reused.
    """
    from gifkit.train import make_config, train

    preset = "smoke" if profile == "smoke" else "paper"
    values = dict(data=data, data_root=data_root, train_split=split, data_kwargs=dict(data_kwargs or {}),
                  profile=profile, seed=seed, out=str(out), progress=progress)
    if preset == "paper":
        values["pretrained"] = True
    values.update(overrides)
    train(make_config(preset, **values))
    return Path(out)


def load_filter_classifier(run: str | Path, device: str | torch.device | None = None) -> FilterClassifier:
    """A :class:`FilterClassifier` from a ``gifkit train`` run folder (``result.json`` + ``model.safetensors``)."""
    from safetensors.torch import load_file

    from gifkit.train import create_model, eval_transform

    run = Path(run)
    if not (run / "result.json").is_file() or not (run / "model.safetensors").is_file():
        raise FileNotFoundError(f"{run} is not a finished `gifkit train` run (result.json + model.safetensors)")
    info = json.loads((run / "result.json").read_text())
    m = info["model"]
    model = create_model(m["timm_name"], m["num_classes"], pretrained=False)
    model.load_state_dict(load_file(str(run / "model.safetensors")))
    device = torch.device(device) if device is not None else torch.device("cpu")
    return FilterClassifier(model.to(device).eval(), eval_transform(m["image_size"], m["mean"], m["std"]),
                            list(info["dataset"]["classes"]), device)


def _dataset_probs(clf: FilterClassifier, dataset, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and labels of every readable image of ``dataset``."""
    from gifkit.data.images import BadImage

    probs, labels, images = [], [], []
    for i in range(len(dataset)):
        try:
            im, y = dataset[i]
        except (BadImage, OSError, ValueError):
            continue
        images.append(im)
        labels.append(int(y))
        if len(images) == batch_size:
            probs.append(clf.probs(images, batch_size))
            images = []
    if images:
        probs.append(clf.probs(images, batch_size))
    return torch.cat(probs).numpy(), np.asarray(labels)


DECISION_COLUMNS = ("semantic_keep", "semantic_winner", "semantic_p_class", "conf_pred", "conf",
                    "conf_threshold", "conf_decision", "alia_filter", "kept")


def filter_expansion(candidates: str | Path, out: str | Path, *, original=None, filter: str = "both",
                     clip_model=None, clip_tokenizer=None, classifier: FilterClassifier | None = None,
                     template: str = SEMANTIC_TEMPLATE, negatives: Sequence[str] = NEGATIVE_PROMPTS,
                     batch_size: int = 32) -> pd.DataFrame:
    """Steps (d) and (e): filter the candidate edits in ``candidates`` and write the kept ones to ``out``.

    ``filter``: "both" (default), "semantic", "confidence" or "none". The semantic filter needs
    ``clip_model`` + ``clip_tokenizer`` (open_clip); the confidence filter needs ``classifier`` and the
    ``original`` training set (for the thresholds). ``out`` becomes an expansion store holding the kept
    images (bytes copied from ``candidates``) and a ``metadata.csv`` rebuilt through
    :class:`~gifkit.store.ExpansionStore` with the candidates' rows plus the decision columns
    (:data:`DECISION_COLUMNS`); images of an earlier filtering that are no longer kept are removed.
    ``out/alia_filter.csv`` lists every candidate with its decisions. Returns that table.
    """
    if filter not in FILTERS:
        raise ValueError(f"filter must be one of {FILTERS}, got {filter!r}")
    candidates, out = Path(candidates), Path(out)
    if candidates.resolve() == out.resolve():
        raise ValueError("filter_expansion writes a new store: out must differ from candidates")
    from gifkit.store import read_classes

    class_names = read_classes(candidates)
    meta = read_metadata(candidates).reset_index(drop=True)
    labels = meta["label"].astype(int).tolist()
    paths = [candidates / f for f in meta["file_name"]]
    n = len(meta)
    dec = pd.DataFrame(index=range(n))
    if filter in ("both", "semantic") and n:
        if clip_model is None or clip_tokenizer is None:
            raise ValueError("the semantic filter needs clip_model and clip_tokenizer")
        size = getattr(getattr(clip_model, "visual", None), "image_size", None)
        size = size[0] if isinstance(size, (tuple, list)) else size
        parts = [semantic_filter(_images01(paths[s:s + batch_size], size), labels[s:s + batch_size], class_names,
                                 clip_model, clip_tokenizer, template=template, negatives=negatives)
                 for s in range(0, n, batch_size)]
        dec = pd.concat([dec, pd.concat(parts, ignore_index=True)], axis=1)
    else:
        dec = dec.assign(semantic_keep=1, semantic_winner="", semantic_p_class=np.nan)
    thresholds = None
    if filter in ("both", "confidence") and n:
        if classifier is None or original is None:
            raise ValueError("the confidence filter needs a classifier and the original training set")
        if list(classifier.classes) != list(class_names):
            raise ValueError("the filter classifier was trained on other classes than the candidates'")
        p_train, y_train = _dataset_probs(classifier, original)
        thresholds = confident_thresholds(p_train, y_train, len(class_names))
        probs = []
        for s in range(0, n, batch_size):
            ims = []
            for p in paths[s:s + batch_size]:
                with Image.open(p) as im:
                    ims.append(im.convert("RGB"))
            probs.append(classifier.probs(ims, batch_size))
        dec = pd.concat([dec, confidence_decisions(torch.cat(probs).numpy(), labels, thresholds)], axis=1)
    else:
        dec = dec.assign(conf_pred=np.nan, conf=np.nan, conf_threshold=np.nan, conf_decision="off")
    dec["alia_filter"] = filter
    dec["kept"] = ((dec["semantic_keep"].astype(int) == 1) & dec["conf_decision"].isin(["keep", "off"])).astype(int)
    table = pd.concat([meta, dec[list(DECISION_COLUMNS)]], axis=1)

    kept = table[table["kept"] == 1]
    write_subset(candidates, kept, out, class_names, part="alia")
    atomic_write_bytes(out / FILTER_CSV, table.to_csv(index=False, lineterminator="\n",
                                                      float_format="%.6g").encode())
    summary = {"filter": filter, "candidates": str(candidates), "n_candidates": n, "n_kept": int(len(kept)),
               "dropped_semantic": int((dec["semantic_keep"] == 0).sum()),
               "dropped_too_easy": int((dec["conf_decision"] == "too_easy").sum()),
               "dropped_mislabeled": int((dec["conf_decision"] == "mislabeled").sum()),
               "semantic_template": template, "negative_prompts": list(negatives),
               "confident_thresholds": None if thresholds is None else
               {c: (None if np.isnan(t) else float(t)) for c, t in zip(class_names, thresholds)}}
    info = json.loads((out / ALIA_JSON).read_text()) if (out / ALIA_JSON).is_file() else {}
    info["filtering"] = summary
    write_json(out / ALIA_JSON, info)
    return table


# ----------------------------------------------------------------------------- the whole pipeline


@dataclass
class ALIAResult:
    """Summary of :func:`run_alia`: the expansion of the candidates and the filtering."""

    out: Path
    candidates: Path
    descriptions: list[str]
    expand: object  # gifkit.imagine.ExpandResult (this process's share)
    decisions: pd.DataFrame | None = None  # every candidate with its decisions (process 0)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def n_kept(self) -> int:
        return int(self.decisions["kept"].sum()) if self.decisions is not None else 0

    def summary(self) -> str:
        lines = [f"ALIA: {len(self.descriptions)} domain descriptions: " + "; ".join(self.descriptions),
                 "candidates: " + self.expand.summary().replace("\n", "\n  ")]
        if self.decisions is not None:
            d = self.decisions
            lines.append(f"filter '{d['alia_filter'].iloc[0] if len(d) else '-'}': kept {self.n_kept} of {len(d)} "
                         f"edits in {self.out} (semantic drops {int((d['semantic_keep'] == 0).sum())}, too easy "
                         f"{int((d['conf_decision'] == 'too_easy').sum())}, mislabeled "
                         f"{int((d['conf_decision'] == 'mislabeled').sum())}); every decision in "
                         f"{self.out / FILTER_CSV}")
        lines.append("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in self.seconds.items()))
        return "\n".join(lines)


def _free(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()


def _captions(dataset, work: Path, profile: str, captioner_id: str | None, device, batch_size: int) -> list[str]:
    path = work / CAPTIONS_CSV
    key = captioner_id or ("tiny" if profile == "smoke" else "default")
    if path.is_file():
        old = pd.read_csv(path, dtype={"caption": str}, keep_default_na=False)
        if len(old) == len(dataset) and set(old["captioner"]) == {key}:
            return old["caption"].tolist()
    from gifkit import hub

    bundle = hub.tiny_blip() if profile == "smoke" else hub.load_blip(captioner_id or hub.BLIP_ID, device=device)
    captions = caption_images(dataset, bundle, batch_size=batch_size)
    del bundle
    _free(device)
    labels = [int(v) for v in getattr(dataset, "targets", [dataset[i][1] for i in range(len(dataset))])]
    table = pd.DataFrame({"index": range(len(dataset)), "label": labels, "caption": captions, "captioner": key})
    atomic_write_bytes(path, table.to_csv(index=False, lineterminator="\n").encode())
    return captions


def _summarised(captions: list[str], work: Path, profile: str, llm_id: str | None, device, seed: int) -> dict:
    path = work / DESCRIPTIONS_JSON
    key = llm_id or ("tiny" if profile == "smoke" else "default")
    if path.is_file():
        old = json.loads(path.read_text())
        if old.get("source") == f"llm:{key}" and old.get("seed") == seed and old.get("n_captions") == len(captions):
            return old
    from gifkit import hub

    bundle = hub.tiny_text_generator() if profile == "smoke" else hub.load_text_generator(
        llm_id or hub.TEXT_GENERATION_ID, device=device,
        torch_dtype=torch.float16 if torch.device(device).type == "cuda" else None)
    res = summarize_captions(captions, bundle, seed=seed, max_new_tokens=60 if profile == "smoke" else 200)
    del bundle
    _free(device)
    info = {"source": f"llm:{key}", "seed": seed, "n_captions": len(captions), **res}
    write_json(path, info)
    return info


def run_alia(data: str, out: str | Path, *, profile: str = "smoke", split: str = "train",
             data_root: str | None = None, data_kwargs: dict | None = None, ratio: int = 5, seed: int = 0,
             descriptions: Sequence[str] | None = None, descriptions_file: str | Path | None = None,
             editor: str = "img2img", filter: str = "both", filter_classifier: str | Path | None = None,
             template: str | None = None, model_id: str | None = None, captioner_id: str | None = None,
             llm_id: str | None = None, steps: int | None = None, strength: float | None = None,
             guidance_scale: float | None = None, image_guidance_scale: float | None = None,
             batch_size: int = 4, limit: int | None = None, output_size: int | None = None,
             device: str | torch.device | None = None, shard: tuple[int, int] = (0, 1),
             barrier: Callable[[], None] | None = None, progress: bool = True, dataset=None,
             class_names: Sequence[str] | None = None) -> ALIAResult:
    """ALIA end to end on dataset ``data`` (a registered name or an image folder), into ``out``.

    Descriptions: ``descriptions`` / ``descriptions_file`` when given, else captions (BLIP) summarised by a
    text-generation model (tiny random models for ``smoke``). Then K = ``ratio`` edits per seed by
    :func:`gifkit.imagine.expand` into ``<out>.alia/candidates`` (resumable, shardable), and
    :func:`filter_expansion` into ``out``. ``filter_classifier``: a finished ``gifkit train`` run folder
    to use instead of training one on ``data``. ``dataset`` / ``class_names``: ``data``'s split when the
    caller has loaded it already. See the module docstring for the layout.
    """
    from gifkit import hub
    from gifkit.data import load_dataset
    from gifkit.imagine import expand
    from gifkit.methods import build_models

    if editor not in EDITORS:
        raise ValueError(f"editor must be one of {EDITORS}, got {editor!r}")
    if filter not in FILTERS:
        raise ValueError(f"filter must be one of {FILTERS}, got {filter!r}")
    if profile == "mini":
        raise NotImplementedError("ALIA needs a captioner, a text-generation model and Stable Diffusion: use "
                                  "--profile smoke (tiny models) or paper")
    if descriptions is not None and descriptions_file is not None:
        raise ValueError("give descriptions or descriptions_file, not both")
    out = Path(out)
    work = out.with_name(out.name + ".alia")
    candidates = work / "candidates"
    index, count = shard
    sync = barrier or (lambda: None)
    seconds: dict[str, float] = {}
    dev = torch.device(device) if device is not None else hub.best_device()
    if dataset is None or class_names is None:
        dataset, class_names = load_dataset(data, split, root=data_root, profile=profile, **(data_kwargs or {}))
    class_names = list(class_names)

    t = time.perf_counter()
    if descriptions is not None:
        info = {"source": "user", "descriptions": check_descriptions(descriptions)}
    elif descriptions_file is not None:
        info = {"source": f"file:{descriptions_file}", "descriptions": load_descriptions(descriptions_file)}
    else:
        work.mkdir(parents=True, exist_ok=True)
        if index == 0:
            caps = _captions(dataset, work, profile, captioner_id, dev, batch_size=16)
            seconds["captions"] = time.perf_counter() - t
            _summarised(caps, work, profile, llm_id, dev, seed)
        sync()
        info = json.loads((work / DESCRIPTIONS_JSON).read_text())
    descs = info["descriptions"]
    seconds["descriptions"] = time.perf_counter() - t

    t = time.perf_counter()
    prior, clf, _, params = build_models("alia", profile, class_names, device=dev, descriptions=descs, editor=editor,
                                         template=template, model_id=model_id, steps=steps, strength=strength,
                                         guidance_scale=guidance_scale, image_guidance_scale=image_guidance_scale)
    result = expand(dataset, class_names, prior, clf, candidates, ratio=ratio, method="alia", seed=seed,
                    batch_size=batch_size, limit=limit, output_size=output_size, params=params, shard=shard,
                    barrier=barrier, progress=progress)
    del prior
    _free(dev)
    seconds["edits"] = time.perf_counter() - t

    t = time.perf_counter()
    classifier, run = None, None
    if filter in ("both", "confidence"):
        run = Path(filter_classifier) if filter_classifier else train_filter_classifier(
            data, work / "classifier", profile=profile, split=split, data_root=data_root, data_kwargs=data_kwargs,
            seed=seed, progress=progress and index == 0)
        classifier = load_filter_classifier(run, dev) if index == 0 else None
    decisions = None
    if index == 0:
        import open_clip

        out.mkdir(parents=True, exist_ok=True)
        meta = {"method": "alia", "paper": "arXiv 2305.16289", "data": data, "split": split, "profile": profile,
                "ratio": ratio, "seed": seed, "editor": editor, "params": params, "candidates": str(candidates),
                "descriptions": descs, "descriptions_source": info["source"],
                **({"captions_sample": info.get("sample"), "llm_output": info.get("output")}
                   if info["source"].startswith("llm") else {}),
                "filter_classifier": str(run) if run is not None else None}
        old = json.loads((out / ALIA_JSON).read_text()) if (out / ALIA_JSON).is_file() else {}
        write_json(out / ALIA_JSON, {**old, **meta})
        decisions = filter_expansion(candidates, out, original=dataset, filter=filter, clip_model=clf.model,
                                     clip_tokenizer=open_clip.get_tokenizer("ViT-B-32"), classifier=classifier)
    seconds["filter"] = time.perf_counter() - t
    sync()
    return ALIAResult(out=out, candidates=candidates, descriptions=descs, expand=result, decisions=decisions,
                      seconds=seconds)


def run_alia_from_args(args, ratio: int, state, dataset=None, class_names=None) -> ALIAResult:
    """``gifkit expand --method alia``: :func:`run_alia` with the expand command's arguments."""
    return run_alia(
        args.data, args.out, profile=args.profile, split=args.split, data_root=args.data_root, ratio=ratio,
        seed=args.seed, descriptions=getattr(args, "descriptions", None),
        descriptions_file=getattr(args, "descriptions_file", None), editor=getattr(args, "editor", None) or "img2img",
        filter=getattr(args, "alia_filter", None) or "both",
        filter_classifier=getattr(args, "filter_classifier", None), model_id=args.model_id, steps=args.steps,
        strength=args.strength, guidance_scale=args.guidance_scale,
        image_guidance_scale=getattr(args, "image_guidance_scale", None), batch_size=args.batch_size,
        limit=args.limit, output_size=args.output_size,
        device=args.device if args.device else (state.device if state.num_processes > 1 else None),
        shard=(state.process_index, state.num_processes),
        barrier=state.wait_for_everyone if state.num_processes > 1 else None,
        progress=not args.no_progress and state.is_local_main_process, dataset=dataset, class_names=class_names)
