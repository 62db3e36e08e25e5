"""ALIA: Automated Language-guided Image Augmentation (Dunlap et al., NeurIPS 2023, arXiv 2305.16289).

The pipeline, as in the paper (§3) and its official code:

(a) **Captions.** Every training image is captioned (BLIP, ``Salesforce/blip-image-captioning-large``).
(b) **Domain descriptions.** A sample of the captions (20, drawn with a seeded generator, after dropping
    duplicates and degenerate captions) is summarised by a text-generation model into at most 10 short
    descriptions of the *domains* (background, weather, time of day, camera view, style), e.g. "in the
    snow"; or the descriptions come from the user (a list, or a file with one per line).
(c) **Edits.** Each seed is edited K times (K = the expansion ratio) with prompts such as "a photo of a
    {class} {description}": SD img2img (strength 0.6, guidance 7.5) or InstructPix2Pix (image guidance
    1.2, text guidance 5). Variant v of seed i takes description ``(o_i + v) mod D`` with an offset ``o_i``
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

How the steps map onto gifkit: (c) is :class:`ALIAPrior`, a :class:`~gifkit.core.prior.Prior` run by
:func:`gifkit.core.imagine.expand` (batches, resume, sharding, determinism as for every method) into a
*candidates* store; (d)+(e) is :func:`gifkit.experiments.alia_filters.filter_expansion`, a post-pass that reads the candidates and writes
the kept ones through :class:`~gifkit.io.store.ExpansionStore` into the output folder. :func:`run_alia` chains
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

import pandas as pd
import torch

from gifkit.config import ALIA_SEMANTIC_CLIP, MODEL_IDS, get_profile
from gifkit.core.rng import py_random
from gifkit.experiments.alia_filters import ALIA_JSON, FILTER_CSV, FILTERS, filter_expansion, train_filter_classifier
from gifkit.io.datasets import data_folders, dataset_labels, seed_fingerprint
from gifkit.io.files import atomic_write_bytes, read_json, write_json
from gifkit.io.runs import check_output_folder
from gifkit.io.images import BadImage
from gifkit.priors.alia import EDITORS, check_descriptions
from gifkit.train.runs import load_run

__all__ = ["MAX_DESCRIPTIONS", "SUMMARY_PROMPT", "caption_images", "clean_captions", "sample_captions",
           "summarize_captions", "parse_descriptions", "load_descriptions", "ALIAResult", "run_alia"]

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


# ----------------------------------------------------------------------------- the whole pipeline


@dataclass
class ALIAResult:
    """Summary of :func:`run_alia`: the expansion of the candidates and the filtering."""

    out: Path
    candidates: Path
    descriptions: list[str]
    expand: object  # gifkit.core.imagine.ExpandResult (this process's share)
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
    _free(device)
    labels = dataset_labels(dataset)
    table = pd.DataFrame({"index": range(len(dataset)), "label": labels, "caption": captions, "captioner": key,
                          "seeds": seeds})
    atomic_write_bytes(path, table.to_csv(index=False, lineterminator="\n").encode())
    return captions


def _summarised(captions: list[str], work: Path, profile: str, llm_id: str | None, device, seed: int) -> dict:
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
    _free(device)
    info = {"source": f"llm:{key}", "seed": seed, "n_captions": len(captions), "captions": digest, **res}
    write_json(path, info)
    return info


def run_alia(data: str, out: str | Path, *, profile: str = "smoke", split: str = "train",
             data_root: str | None = None, data_kwargs: dict | None = None, ratio: int = 5, seed: int = 0,
             descriptions: Sequence[str] | None = None, descriptions_file: str | Path | None = None,
             editor: str = "img2img", filter: str = "both", filter_classifier: str | Path | None = None,
             template: str | None = None, model_id: str | None = None, captioner_id: str | None = None,
             llm_id: str | None = None, steps: int | None = None, strength: float | None = None,
             guidance_scale: float | None = None, image_guidance_scale: float | None = None,
             threshold_by: str = "label", semantic_clip: tuple[str, str] = ALIA_SEMANTIC_CLIP, batch_size: int = 4, limit: int | None = None, output_size: int | None = None,
             device: str | torch.device | None = None, shard: tuple[int, int] = (0, 1),
             barrier: Callable[[], None] | None = None, progress: bool = True, dataset=None,
             class_names: Sequence[str] | None = None) -> ALIAResult:
    """ALIA end to end on dataset ``data`` (a registered name or an image folder), into ``out``.

    Descriptions: ``descriptions`` / ``descriptions_file`` when given, else captions (BLIP) summarised by a
    text-generation model (tiny random models for ``smoke``). Then K = ``ratio`` edits per seed by
    :func:`gifkit.core.imagine.expand` into ``<out>.alia/candidates`` (resumable, shardable), and
    :func:`filter_expansion` into ``out``. ``filter_classifier``: a finished ``gifkit train`` run folder
    to use instead of training one on ``data``; ``threshold_by``: the confidence filter's threshold (the
    label's, as the official code, or the prediction's); ``semantic_clip``: the open_clip (name, pretrained)
    of the semantic filter (ALIA's ViT-L/14; the tiny CLIP under a tiny profile). ``dataset`` / ``class_names``: ``data``'s split when the
    caller has loaded it already. See the module docstring for the layout.
    """
    from gifkit.core.imagine import expand
    from gifkit.data import load_dataset
    from gifkit.methods import build_models
    from gifkit.models.hub import best_device

    if editor not in EDITORS:
        raise ValueError(f"editor must be one of {EDITORS}, got {editor!r}")
    if filter not in FILTERS:
        raise ValueError(f"filter must be one of {FILTERS}, got {filter!r}")
    if get_profile(profile).name == "mini":
        raise ValueError("ALIA needs a captioner, a text-generation model and Stable Diffusion: use "
                         "--profile smoke (tiny models) or paper")
    if descriptions is not None and descriptions_file is not None:
        raise ValueError("give descriptions or descriptions_file, not both")
    out = Path(out)
    work = out.with_name(out.name + ".alia")
    candidates = work / "candidates"
    index, count = shard
    sync = barrier or (lambda: None)
    seconds: dict[str, float] = {}
    dev = torch.device(device) if device is not None else best_device()
    if dataset is None or class_names is None:
        dataset, class_names = load_dataset(data, split, root=data_root, profile=profile, **(data_kwargs or {}))
    class_names = list(class_names)
    for folder in (out, work):  # the candidates' run checks its own folder
        check_output_folder(folder, data_folders(dataset))

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
        info = read_json(work / DESCRIPTIONS_JSON, what="ALIA's descriptions")
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
        classifier = load_run(run, dev) if index == 0 else None
    decisions = None
    if index == 0:
        from gifkit.models.guides import guide_clip

        out.mkdir(parents=True, exist_ok=True)
        meta = {"method": "alia", "paper": "arXiv 2305.16289", "data": data, "split": split, "profile": profile,
                "ratio": ratio, "seed": seed, "editor": editor, "params": params, "candidates": str(candidates),
                "descriptions": descs, "descriptions_source": info["source"],
                **({"captions_sample": info.get("sample"), "llm_output": info.get("output")}
                   if info["source"].startswith("llm") else {}),
                "filter_classifier": str(run) if run is not None else None, "threshold_by": threshold_by,
                "semantic_clip": "tiny" if get_profile(profile).tiny else list(semantic_clip)}
        old = read_json(out / ALIA_JSON, {}, "ALIA's record")
        write_json(out / ALIA_JSON, {**old, **meta})
        sem = guide_clip(profile, dev, *semantic_clip) if filter in ("both", "semantic") else None
        decisions = filter_expansion(candidates, out, original=dataset, filter=filter,
                                     clip_model=sem.model if sem else None, clip_tokenizer=sem.tokenizer if sem else None,
                                     classifier=classifier, threshold_by=threshold_by)
    seconds["filter"] = time.perf_counter() - t
    sync()
    return ALIAResult(out=out, candidates=candidates, descriptions=descs, expand=result, decisions=decisions,
                      seconds=seconds)
