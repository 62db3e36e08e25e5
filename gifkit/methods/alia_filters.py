"""ALIA's filters (step (d)) and the output (step (e)): which edits of the candidates store are kept.

*Semantic*: CLIP zero-shot over the image's class prompt ("a photo of a {class}") and the negative prompts
("a photo of an object", "a photo of a scene", "a photo of geometric shapes", "a photo", "an image"; softmax
of 100 x cosine); an edit is dropped when a negative prompt wins. *Confidence*: a classifier trained on the
original data gives per-class thresholds ``t_c = mean over training images labelled c of p(c | x)``
(cleanlab's "confident thresholds"); an edit labelled y with prediction ``c = argmax p`` is *confident* when
``p_c > t_y``, the threshold of its **label** (as the official ``filter.py``; ``threshold_by="prediction"``
uses ``t_c`` instead), and is then dropped as *too easy* when ``c == y`` (the edit changed too little to
teach anything) and as *mislabeled* when ``c != y`` (the edit corrupted the class). The semantic filter's
CLIP is ALIA's ViT-L/14 (:data:`gifkit.config.ALIA_SEMANTIC_CLIP`) on real profiles.
:func:`filter_expansion` writes the kept edits, with their decisions, as a store of their own.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from gifkit.config import get_profile
from gifkit.io.files import atomic_write_bytes, read_json, write_json
from gifkit.io.images import BadImage, open_rgb, read01
from gifkit.io.store import read_classes, read_metadata, write_subset
from gifkit.models.guides import ZeroShotClassifier
from gifkit.train.runs import TrainedRun

__all__ = ["FILTERS", "THRESHOLD_BY", "NEGATIVE_PROMPTS", "SEMANTIC_TEMPLATE", "DECISION_COLUMNS", "ALIA_JSON", "FILTER_CSV",
           "semantic_filter", "confident_thresholds", "confidence_decisions", "train_filter_classifier",
           "filter_expansion"]

FILTERS = ("both", "semantic", "confidence", "none")
NEGATIVE_PROMPTS = ("a photo of an object", "a photo of a scene", "a photo of geometric shapes", "a photo",
                    "an image")
SEMANTIC_TEMPLATE = "a photo of a {}"
ALIA_JSON, FILTER_CSV = "alia.json", "alia_filter.csv"


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


THRESHOLD_BY = ("label", "prediction")


def confidence_decisions(probs: np.ndarray, labels: Sequence[int], thresholds: np.ndarray,
                         threshold_by: str = "label") -> pd.DataFrame:
    """ALIA's confidence filter: with ``c = argmax p``, ``conf = p[c]`` and the threshold ``t = t_y`` of the
    label (``threshold_by="label"``, the official ``filter.py``) or ``t_c`` of the prediction
    (``"prediction"``): "too_easy" if ``conf > t`` and ``c == y``, "mislabeled" if ``conf > t`` and ``c != y``,
    else "keep" (columns conf_pred, conf, conf_threshold, conf_decision)."""
    if threshold_by not in THRESHOLD_BY:
        raise ValueError(f"threshold_by must be one of {THRESHOLD_BY}, got {threshold_by!r}")
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(list(labels), dtype=np.int64)
    pred = probs.argmax(1)
    conf = probs[np.arange(len(pred)), pred]
    thr = np.asarray(thresholds, dtype=np.float64)[labels if threshold_by == "label" else pred]
    confident = conf > thr  # NaN threshold: never
    decision = np.where(~confident, "keep", np.where(pred == labels, "too_easy", "mislabeled"))
    return pd.DataFrame({"conf_pred": pred, "conf": conf, "conf_threshold": thr, "conf_decision": decision})


def train_filter_classifier(data: str, out: str | Path, *, profile: str = "smoke", split: str = "train",
                            data_root: str | None = None, data_kwargs: dict | None = None, seed: int = 0,
                            progress: bool = False, **overrides) -> Path:
    """Train the confidence filter's classifier on the original data with :func:`gifkit.train.loop.train`
    (read it back with :func:`gifkit.train.runs.load_run`).

    A tiny profile (smoke): the ``smoke`` training preset; otherwise the ``paper`` preset with ImageNet
    weights (``pretrained=True``: ALIA fine-tunes a pretrained ResNet-50). ``overrides`` are
    :class:`gifkit.train.config.TrainConfig` fields. A finished run with the same settings is reused.
    """
    from gifkit.train.config import make_config
    from gifkit.train.loop import train

    tiny = get_profile(profile).tiny
    values = dict(data=data, data_root=data_root, train_split=split, data_kwargs=dict(data_kwargs or {}),
                  profile=profile, seed=seed, out=str(out), progress=progress)
    if not tiny:
        values["pretrained"] = True
    values.update(overrides)
    train(make_config("smoke" if tiny else "paper", **values))
    return Path(out)


def _dataset_probs(clf: TrainedRun, dataset, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and labels of every readable image of ``dataset``."""
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
                     clip_model=None, clip_tokenizer=None, classifier: TrainedRun | None = None,
                     template: str = SEMANTIC_TEMPLATE, negatives: Sequence[str] = NEGATIVE_PROMPTS,
                     threshold_by: str = "label", batch_size: int = 32) -> pd.DataFrame:
    """Steps (d) and (e): filter the candidate edits in ``candidates`` and write the kept ones to ``out``.

    ``filter``: "both" (default), "semantic", "confidence" or "none". The semantic filter needs
    ``clip_model`` + ``clip_tokenizer`` (open_clip); the confidence filter needs ``classifier`` and the
    ``original`` training set (for the thresholds; ``threshold_by``: see :func:`confidence_decisions`). ``out`` becomes an expansion store holding the kept
    images (bytes copied from ``candidates``) and a ``metadata.csv`` rebuilt through
    :class:`~gifkit.io.store.ExpansionStore` with the candidates' rows plus the decision columns
    (:data:`DECISION_COLUMNS`); images of an earlier filtering that are no longer kept are removed.
    ``out/alia_filter.csv`` lists every candidate with its decisions. Returns that table.
    """
    if filter not in FILTERS:
        raise ValueError(f"filter must be one of {FILTERS}, got {filter!r}")
    candidates, out = Path(candidates), Path(out)
    if candidates.resolve() == out.resolve():
        raise ValueError("filter_expansion writes a new store: out must differ from candidates")
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
        parts = [semantic_filter(read01(paths[s:s + batch_size], size), labels[s:s + batch_size], class_names,
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
            probs.append(classifier.probs([open_rgb(p) for p in paths[s:s + batch_size]], batch_size))
        dec = pd.concat([dec, confidence_decisions(torch.cat(probs).numpy(), labels, thresholds,
                                                               threshold_by)], axis=1)
    else:
        dec = dec.assign(conf_pred=np.nan, conf=np.nan, conf_threshold=np.nan, conf_decision="off")
    dec["alia_filter"] = filter
    dec["kept"] = ((dec["semantic_keep"].astype(int) == 1) & dec["conf_decision"].isin(["keep", "off"])).astype(int)
    table = pd.concat([meta, dec[list(DECISION_COLUMNS)]], axis=1)

    kept = table[table["kept"] == 1]
    write_subset(candidates, kept, out, class_names, part="alia")
    atomic_write_bytes(out / FILTER_CSV, table.to_csv(index=False, lineterminator="\n",
                                                      float_format="%.6g").encode())
    summary = {"filter": filter, "threshold_by": threshold_by, "candidates": str(candidates), "n_candidates": n,
               "n_kept": int(len(kept)),
               "dropped_semantic": int((dec["semantic_keep"] == 0).sum()),
               "dropped_too_easy": int((dec["conf_decision"] == "too_easy").sum()),
               "dropped_mislabeled": int((dec["conf_decision"] == "mislabeled").sum()),
               "semantic_template": template, "negative_prompts": list(negatives),
               "confident_thresholds": None if thresholds is None else
               {c: (None if np.isnan(t) else float(t)) for c, t in zip(class_names, thresholds)}}
    info = read_json(out / ALIA_JSON, {}, "ALIA's record")
    info["filtering"] = summary
    write_json(out / ALIA_JSON, info)
    return table


