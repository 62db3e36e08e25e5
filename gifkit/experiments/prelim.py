"""Mechanisms of the paper's preliminary studies (Sec. 3, Fig. 2a; App. B.1) and small-data helpers of the
OOD (Table 2 / 16) and long-tail (Table 25) notebooks.

**Selective augmentation expansion** (Sec. 3, Fig. 2a). Every seed gets ``pool x K`` augmented candidates
(an augmentation method of :mod:`gifkit.methods.augment`); CLIP's zero-shot classifier
(:func:`gifkit.models.guides.zero_shot_classifier`) scores each candidate against its seed
(:func:`score_candidates`), and :func:`select_candidates` keeps K of them by a criterion:

``random``
    K candidates drawn at random (the "random expansion" baseline: the distribution of plain K-fold augmentation).
``class-maintained`` (the paper's criterion, Sec. 3)
    first the candidates whose zero-shot prediction equals the seed's (``y_hat``) *and* whose prediction entropy
    exceeds the seed's; among them, and then among the rest, the higher per-candidate informativeness first.
``informativeness``
    Eq. 5 for one variant, ``S_inf = p'[y_hat] + H(p') - H(p_seed)``, highest first.
``entropy``
    the prediction entropy ``H(p')`` alone, highest first (no class check).
``diversity``
    greedy: repeatedly add the candidate that maximises ``S_div`` (Eq. 6) of the seed's kept set
    (the first one: the farthest from the mean of the seed's candidates). Sample-wise only.

**Sample-wise vs sample-agnostic selection** (App. B.1): ``mode="sample-wise"`` keeps K candidates of every seed;
``mode="sample-agnostic"`` ranks all candidates of all seeds together by the criterion's per-candidate key and keeps
the best ``n_seeds x K``, so some seeds get many and others none (:func:`expansion_counts`).

The selections are written by :func:`write_selection` through :class:`gifkit.io.store.ExpansionStore` (the candidates'
bytes and metadata rows plus the score columns), so :func:`gifkit.train.loop.train` reads them like any expansion.
:func:`selective_augmentation` chains the steps, generating and scoring the candidates once for all selections.

A shared (sample-agnostic) *perturbation* -- one ``(z, b)`` for all seeds -- is not what App. B.1 studies and is not
supported by :func:`gifkit.methods.gif.job_noise`, which draws every job's noise from its own key
``(seed, index, variant)``.

Helper: :func:`write_fake_cifar100c`, a small stand-in for CIFAR-100-C in its on-disk format
(``CIFAR-100-C/<corruption>.npy`` stacking 5 severities, ``labels.npy``) built from any ``(image, label)``
dataset with the corruptions of :mod:`gifkit.data.corruptions` (re-exported here as ``FAKE_CORRUPTIONS`` and
``corrupt``), for the smoke profile only; the mini profile's corrupted test set is the dataset
``fashion-mnist-c``. The long-tailed smoke set is the dataset ``smoke-lt`` (:mod:`gifkit.data`).
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image

from gifkit.core.guidance import diversity, entropy, informativeness
from gifkit.core.rng import np_random
from gifkit.data.corruptions import CORRUPTIONS, corrupt
from gifkit.io.files import atomic_write_bytes, read_json
from gifkit.io.images import open_rgb, to_tensor01
from gifkit.io.store import read_metadata, write_subset

__all__ = ["CRITERIA", "MODES", "CandidateScores", "score_candidates", "select_candidates", "write_selection",
           "expansion_counts", "SelectiveResult", "selective_augmentation", "FAKE_CORRUPTIONS", "corrupt",
           "write_fake_cifar100c"]

CRITERIA = ("random", "class-maintained", "informativeness", "entropy", "diversity")
MODES = ("sample-wise", "sample-agnostic")
SCORES_CSV = "scores.csv"
FEATURES_FILE = "features.npy"
SELECTION_JSON = "selection.json"
SCORE_COLUMNS = ("clip_y_hat", "p_seed_yhat", "entropy_seed", "pred", "p_yhat", "entropy", "consistent",
                 "more_entropy", "informativeness")


# ----------------------------------------------------------------------------- scoring


@dataclass
class CandidateScores:
    """Per-candidate zero-shot figures (``table``, one row per candidate, the candidates' metadata columns plus
    the scores) and the L2-normalised CLIP features of the candidates (``features`` ``[N, D]``, row-aligned)."""

    table: pd.DataFrame
    features: np.ndarray

    def save(self, folder: str | Path) -> None:
        """Write the score columns (``scores.csv``, keyed by ``file_name``) and the features into the candidates'
        folder ``folder``."""
        folder = Path(folder)
        cols = ["file_name"] + [c for c in SCORE_COLUMNS if c in self.table.columns]
        atomic_write_bytes(folder / SCORES_CSV, self.table[cols].to_csv(index=False, lineterminator="\n").encode())
        buf = io.BytesIO()
        np.save(buf, self.features.astype(np.float32))
        atomic_write_bytes(folder / FEATURES_FILE, buf.getvalue())

    @classmethod
    def load(cls, folder: str | Path) -> "CandidateScores":
        """The scores saved by :meth:`save` joined with the candidates' ``metadata.csv``."""
        folder = Path(folder)
        meta = read_metadata(folder).reset_index(drop=True)
        scores = pd.read_csv(folder / SCORES_CSV, dtype={"file_name": str}, keep_default_na=False)
        if scores["file_name"].tolist() != meta["file_name"].tolist():
            raise ValueError(f"{folder / SCORES_CSV} does not list the candidates of {folder}; delete it to rescore")
        extra = scores.drop(columns="file_name")
        meta = meta.drop(columns=[c for c in extra.columns if c in meta.columns])
        return cls(pd.concat([meta, extra], axis=1), np.load(folder / FEATURES_FILE))


class _Images:
    """Images read from ``paths`` only when sliced (so a large pool is never held in memory at once)."""

    def __init__(self, paths):
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, sl: slice) -> list[Image.Image]:
        return [open_rgb(p) for p in self.paths[sl]]


@torch.no_grad()
def _features(classifier, images: Sequence[Image.Image], batch_size: int) -> torch.Tensor:
    """L2-normalised CLIP features ``[N, D]`` (batches of equal-size images; CLIP preprocessing resizes)."""
    out = []
    for s in range(0, len(images), batch_size):
        chunk = [to_tensor01(im) for im in images[s:s + batch_size]]
        if len({tuple(t.shape) for t in chunk}) == 1:
            out.append(classifier.image_features(torch.stack(chunk)).float().cpu())
        else:
            out += [classifier.image_features(t[None]).float().cpu() for t in chunk]
    return torch.cat(out) if out else torch.zeros(0, classifier.text_features.shape[-1])


def score_candidates(candidates: str | Path, original, classifier, *, batch_size: int = 64) -> CandidateScores:
    """Zero-shot figures of every candidate in the expansion folder ``candidates`` against its seed.

    ``original[seed_index]`` must be the seed ``(image, label)``; ``classifier`` is a
    :class:`gifkit.models.guides.ZeroShotClassifier` (or anything with ``image_features`` and
    ``probs_from_features``). Added columns: ``clip_y_hat`` (CLIP's prediction on the seed), ``p_seed_yhat``,
    ``entropy_seed``, ``pred`` (on the candidate), ``p_yhat`` (``p'[y_hat]``), ``entropy``, ``consistent``
    (``pred == y_hat``), ``more_entropy`` (``H(p') > H(p_seed)``), ``informativeness`` (Eq. 5 with K = 1).
    """
    candidates = Path(candidates)
    meta = read_metadata(candidates).reset_index(drop=True)
    seeds = sorted(int(s) for s in meta["seed_index"].unique())
    f_seed = _features(classifier, [original[s][0] for s in seeds], batch_size)
    p_seed = classifier.probs_from_features(f_seed).cpu()  # [S, C]
    row_of = {s: j for j, s in enumerate(seeds)}
    feats = _features(classifier, _Images([candidates / f for f in meta["file_name"]]), batch_size)  # [N, D]
    p_var = classifier.probs_from_features(feats).cpu()  # [N, C]
    seed_rows = torch.tensor([row_of[int(s)] for s in meta["seed_index"]], dtype=torch.long)
    ps = p_seed[seed_rows]  # [N, C]
    y_hat = ps.argmax(-1)
    h_seed, h_var = entropy(ps), entropy(p_var)
    s_inf = [float(informativeness(ps[i], p_var[i:i + 1], int(y_hat[i]))) for i in range(len(meta))]
    pred = p_var.argmax(-1)
    table = meta.assign(
        clip_y_hat=y_hat.numpy(), p_seed_yhat=ps.gather(1, y_hat[:, None])[:, 0].numpy(),
        entropy_seed=h_seed.numpy(), pred=pred.numpy(), p_yhat=p_var.gather(1, y_hat[:, None])[:, 0].numpy(),
        entropy=h_var.numpy(), consistent=(pred == y_hat).int().numpy(),
        more_entropy=(h_var > h_seed).int().numpy(), informativeness=np.asarray(s_inf, dtype=np.float64))
    return CandidateScores(table, feats.numpy())


# ----------------------------------------------------------------------------- selection


def _key(table: pd.DataFrame, criterion: str) -> pd.DataFrame:
    """Sort keys of ``criterion`` (sort descending; ties broken by seed index then variant, ascending)."""
    if criterion == "class-maintained":
        qualified = (table["consistent"].astype(int) == 1) & (table["more_entropy"].astype(int) == 1)
        return pd.DataFrame({"k1": qualified.astype(int), "k2": table["informativeness"].astype(float)})
    if criterion == "informativeness":
        return pd.DataFrame({"k1": table["informativeness"].astype(float)})
    if criterion == "entropy":
        return pd.DataFrame({"k1": table["entropy"].astype(float)})
    raise ValueError(criterion)


def _greedy_diversity(features: np.ndarray, k: int) -> list[int]:
    """Positions of ``k`` rows chosen greedily to maximise ``S_div`` (Eq. 6) of the chosen set."""
    f = torch.as_tensor(features, dtype=torch.float32)
    n = len(f)
    if k >= n:
        return list(range(n))
    mean = f.mean(0, keepdim=True)
    log_q, log_bar = torch.log_softmax(f, -1), torch.log_softmax(mean, -1)
    first = int((log_bar.exp() * (log_bar - log_q)).sum(-1).argmax())  # farthest from the mean
    chosen = [first]
    while len(chosen) < k:
        rest = [i for i in range(n) if i not in chosen]
        gains = [float(diversity(f[chosen + [i]])) for i in rest]
        chosen.append(rest[int(np.argmax(gains))])
    return chosen


def select_candidates(scores: CandidateScores | pd.DataFrame, k: int, criterion: str = "class-maintained",
                      mode: str = "sample-wise", seed: int = 0) -> pd.DataFrame:
    """The candidates kept by ``criterion`` (see the module docstring) under ``mode``.

    ``sample-wise``: ``k`` per seed (all of a seed's candidates if it has fewer); ``sample-agnostic``: the best
    ``n_seeds * k`` over all seeds together. ``random`` draws from generators keyed by ``(seed, "select", ...)``.
    Returns the kept rows of the score table (sorted by seed index and variant) with ``criterion``,
    ``selection_mode`` and ``selection_rank`` (0 = kept first) columns.
    """
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if int(k) != k or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k}")
    table = scores.table if isinstance(scores, CandidateScores) else scores
    table = table.reset_index(drop=True)
    if criterion == "diversity":
        if mode != "sample-wise":
            raise ValueError("diversity is a property of each seed's kept set: use mode='sample-wise'")
        if not isinstance(scores, CandidateScores):
            raise ValueError("the diversity criterion needs the candidates' features: pass CandidateScores")
    seed_idx = table["seed_index"].astype(int)
    variant = table["variant"].astype(int)
    picked: list[tuple[int, int]] = []  # (row position, rank)
    if mode == "sample-wise":
        for s in sorted(seed_idx.unique()):
            rows = np.flatnonzero(seed_idx.to_numpy() == s)
            rows = rows[np.argsort(variant.to_numpy()[rows], kind="stable")]
            if criterion == "random":
                order = rows[np_random(seed, "select", int(s)).permutation(len(rows))]
            elif criterion == "diversity":
                order = rows[_greedy_diversity(scores.features[rows], min(k, len(rows)))]
            else:
                keys = _key(table.iloc[rows], criterion)
                order = rows[np.lexsort([-keys[c].to_numpy() for c in reversed(keys.columns)])]
            picked += [(int(r), rank) for rank, r in enumerate(order[:k])]
    else:
        n_keep = int(seed_idx.nunique()) * int(k)
        base = np.lexsort([variant.to_numpy(), seed_idx.to_numpy()])  # rows in (seed, variant) order
        if criterion == "random":
            order = base[np_random(seed, "select", "all").permutation(len(base))]
        else:
            keys = _key(table.iloc[base].reset_index(drop=True), criterion)
            order = base[np.lexsort([-keys[c].to_numpy() for c in reversed(keys.columns)])]
        picked = [(int(r), rank) for rank, r in enumerate(order[:n_keep])]
    pos, rank = zip(*picked) if picked else ((), ())
    out = table.iloc[list(pos)].assign(criterion=criterion, selection_mode=mode, selection_rank=list(rank))
    return out.sort_values(["seed_index", "variant"], kind="stable").reset_index(drop=True)


def expansion_counts(selected: pd.DataFrame, n_seeds: int) -> np.ndarray:
    """How many kept candidates each seed ``0..n_seeds-1`` has (App. B.1's histogram)."""
    return np.bincount(selected["seed_index"].astype(int).to_numpy(), minlength=n_seeds)[:n_seeds]


def write_selection(candidates: str | Path, selected: pd.DataFrame, out: str | Path) -> Path:
    """Write the ``selected`` candidates as an expansion folder ``out`` (images copied byte for byte from
    ``candidates``, ``metadata.csv`` rebuilt through :class:`~gifkit.io.store.ExpansionStore` from the selected rows).

    A re-run with another selection removes the images no longer selected. Returns ``out``.
    """
    return write_subset(candidates, selected, out, part="selection")


@dataclass
class SelectiveResult:
    """What :func:`selective_augmentation` wrote: the candidates, their scores and one folder per selection."""

    candidates: Path
    scores: CandidateScores
    selections: dict[str, Path]  # "<criterion>/<mode>" -> expansion folder
    n_seeds: int

    def selected(self, name: str) -> pd.DataFrame:
        return read_metadata(self.selections[name])


def selective_augmentation(dataset, class_names: Sequence[str], out: str | Path, classifier, *,
                           augment: str = "randaugment", ratio: int = 5, pool: int = 4,
                           criteria: Sequence[str] = ("random", "class-maintained"),
                           modes: Sequence[str] = ("sample-wise",), seed: int = 0, limit: int | None = None,
                           batch_size: int = 64, progress: bool = False) -> SelectiveResult:
    """Selective augmentation expansion (Fig. 2a, App. B.1) of ``dataset`` by ``ratio`` into ``out``.

    ``pool * ratio`` candidates per seed are made once by :func:`gifkit.methods.expand`
    (method ``augment``) in ``out/candidates`` (resumed), scored once (``out/candidates/scores.csv``), and
    every ``criterion x mode`` selection is written to ``out/<criterion>_<mode>`` (an expansion folder).
    The sample-agnostic ``diversity`` selection is undefined and skipped.
    """
    from gifkit.methods import create_method, expand

    if pool < 1:
        raise ValueError(f"pool must be >= 1, got {pool}")
    out = Path(out)
    cand = out / "candidates"
    expand(create_method(augment, class_names), dataset, cand, ratio=ratio * pool, seed=seed, limit=limit,
           progress=progress)
    settings = {"augment": augment, "ratio": int(ratio), "pool": int(pool), "seed": seed, "limit": limit}
    stamp = cand / SELECTION_JSON
    if (cand / SCORES_CSV).is_file() and read_json(stamp, None, "the candidates' scores") == settings:
        scores = CandidateScores.load(cand)
    else:
        scores = score_candidates(cand, dataset, classifier, batch_size=batch_size)
        scores.save(cand)
        atomic_write_bytes(stamp, json.dumps(settings, sort_keys=True).encode())
    selections = {}
    for criterion in criteria:
        for mode in modes:
            if criterion == "diversity" and mode != "sample-wise":
                continue
            sel = select_candidates(scores, ratio, criterion, mode, seed)
            selections[f"{criterion}/{mode}"] = write_selection(cand, sel, out / f"{criterion}_{mode}")
    return SelectiveResult(cand, scores, selections, int(scores.table["seed_index"].nunique()))


# ----------------------------------------------------------------------------- CIFAR-100-C stand-in (smoke)

# the corruptions live in the data layer (gifkit.data.corruptions), shared with the fashion-mnist-c loader
FAKE_CORRUPTIONS = CORRUPTIONS


def write_fake_cifar100c(root: str | Path, dataset, corruptions: Sequence[str] | None = None,
                         seed: int = 0) -> list[str]:
    """Write ``root/CIFAR-100-C/<corruption>.npy`` (uint8 ``[5 N, H, W, 3]``, severities 1..5 stacked) and
    ``labels.npy`` (``[5 N]``) from the ``N`` images of ``dataset`` -- the official files' layout, so
    :func:`gifkit.data.cifar.read_cifar100c` and :func:`gifkit.train.evaluate.cifar100c_table` read them. Returns the
    corruptions written (default: all of :data:`FAKE_CORRUPTIONS`)."""
    corruptions = list(corruptions or FAKE_CORRUPTIONS)
    base = Path(root) / "CIFAR-100-C"
    base.mkdir(parents=True, exist_ok=True)
    items = [dataset[i] for i in range(len(dataset))]
    labels = np.asarray([int(y) for _, y in items], dtype=np.int64)
    for c in corruptions:
        arr = np.stack([np.asarray(corrupt(im, c, s, np_random(seed, c, s, i)))
                        for s in range(1, 6) for i, (im, _) in enumerate(items)])
        buf = io.BytesIO()
        np.save(buf, arr)
        atomic_write_bytes(base / f"{c}.npy", buf.getvalue())
    buf = io.BytesIO()
    np.save(buf, np.tile(labels, 5))
    atomic_write_bytes(base / "labels.npy", buf.getvalue())
    return corruptions
