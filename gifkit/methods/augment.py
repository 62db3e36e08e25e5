"""Augmentation-expansion baselines: K augmented copies per seed, in the store format.

Methods (the paper's Table 1 and Table 12 baselines):

- ``randaugment``: ``torchvision.transforms.v2.RandAugment`` (``num_ops=2``,
  ``magnitude=9``: torchvision's defaults).
- ``cutout`` (DeVries & Taylor 2017): one square of side ``size`` x the shorter
  side (default 0.5, i.e. 16 px on 32-px CIFAR), centred anywhere in the image
  and clipped at the borders, set to 0 with ``v2.functional.erase``.
  ``v2.RandomErasing`` keeps its box inside the image and draws area/aspect,
  so it is not Cutout.
- ``gridmask`` (Chen et al. 2020; not in torchvision): the official code's
  ``mode=1`` ImageNet setting: grid period ``d`` drawn in
  ``[d_min, d_max]`` x the shorter side (0.43, 1.0 = 96..224 px at 224),
  bands of width ``ceil(band_ratio * d)`` kept (the official ``ratio``, 0.6) and the squares
  between them dropped, random offsets, optional rotation below ``rotate`` degrees.
- ``mixup`` (Zhang et al. 2018) and ``cutmix`` (Yun et al. 2019): the seed is
  mixed with a partner image drawn uniformly from the rest of the dataset, with
  ``lam ~ Beta(alpha, alpha)`` (``alpha`` 1.0); CutMix pastes a box of area
  ``(1 - lam)`` (centre uniform, clipped) and recomputes ``lam`` from the
  clipped box. Metadata keeps ``label_b`` (the partner's label), ``lam``
  (weight of ``label``) and ``partner_index``; :class:`gifkit.io.datasets.ExpandedDataset`
  turns them into soft targets ``lam * onehot(label) + (1 - lam) * onehot(label_b)``,
  which :mod:`gifkit.train` trains on. ``v2.MixUp``/``v2.CutMix`` mix whole
  batches with one ``lam`` from the global RNG, so gifkit draws ``lam``, partner
  and box itself, per (seed, variant).

Determinism follows the GIF core: every draw of variant ``v`` of seed ``i``
comes from generators seeded by ``(seed, i, v, method)`` (torchvision's
RandAugment uses the global RNG, so it runs under ``torch.random.fork_rng``
seeded the same way). A copy therefore does not depend on batching, sharding
or resuming, and a resumed or sharded run writes the bytes one run writes.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from gifkit.core.imagine import ExpandResult
from gifkit.core.rng import derive_seed, np_random
from gifkit.io.datasets import seed_path
from gifkit.io.images import BadImage
from gifkit.io.runs import ExpansionRun, run_environment

__all__ = ["AUGMENT_METHODS", "DEFAULT_PARAMS", "SUMMARIES", "augment_one", "cutout", "gridmask", "mixup", "cutmix",
           "expand_augment"]

AUGMENT_METHODS = ("randaugment", "cutout", "gridmask", "mixup", "cutmix")
DEFAULT_PARAMS: dict[str, dict] = {
    "randaugment": {"num_ops": 2, "magnitude": 9},
    "cutout": {"size": 0.5},
    "gridmask": {"d_min": 96 / 224, "d_max": 1.0, "band_ratio": 0.6, "rotate": 1},
    "mixup": {"alpha": 1.0},
    "cutmix": {"alpha": 1.0},
}
MIXING = ("mixup", "cutmix")
SUMMARIES = {
    "randaugment": "RandAugment copies of each seed (torchvision, 2 ops, magnitude 9)",
    "cutout": "Cutout copies: one zeroed square of half the shorter side",
    "gridmask": "GridMask copies (the official mode=1 ImageNet setting)",
    "mixup": "Mixup with a random partner (Beta(1, 1) weight, soft labels)",
    "cutmix": "CutMix with a random partner (box of area 1 - lam, soft labels)",
}


def _resolve_params(method: str, params: dict | None) -> dict:
    if method not in AUGMENT_METHODS:
        raise ValueError(f"augmentation method must be one of {AUGMENT_METHODS}, got {method!r}")
    merged = dict(DEFAULT_PARAMS[method])
    unknown = sorted(set(params or {}) - set(merged))
    if unknown:
        raise ValueError(f"{method}: unknown parameter(s) {unknown}; known: {sorted(merged)}")
    merged.update(params or {})
    return merged


def cutout(image: Image.Image, rng: np.random.Generator, size: float = 0.5) -> Image.Image:
    """Cutout: zero a square of side ``round(size * min(H, W))`` centred at a uniform pixel (clipped)."""
    t = TF.pil_to_tensor(image)  # [3, H, W] uint8
    h, w = t.shape[-2:]
    side = max(1, round(size * min(h, w)))
    cy, cx = int(rng.integers(h)), int(rng.integers(w))
    y0, y1 = max(0, cy - side // 2), min(h, cy - side // 2 + side)
    x0, x1 = max(0, cx - side // 2), min(w, cx - side // 2 + side)
    t = TF.erase(t, y0, x0, y1 - y0, x1 - x0, torch.zeros((), dtype=t.dtype))
    return TF.to_pil_image(t)


def gridmask(image: Image.Image, rng: np.random.Generator, d_min: float = 96 / 224, d_max: float = 1.0,
             band_ratio: float = 0.6, rotate: int = 1) -> Image.Image:
    """GridMask (official ``Grid`` with ``mode=1``): keep bands of width ``ceil(band_ratio * d)`` on a grid of
    period ``d`` px (``d`` uniform in ``[d_min, d_max]`` x the shorter side), drop the squares between."""
    a = np.asarray(image)
    h, w = a.shape[:2]
    side = min(h, w)
    lo, hi = max(2, round(d_min * side)), max(2, round(d_max * side))
    d = int(rng.integers(lo, hi + 1))
    band = math.ceil(d * band_ratio)
    hh = math.ceil(math.sqrt(h * h + w * w))
    mask = np.ones((hh, hh), np.uint8)
    st_h, st_w = int(rng.integers(d)), int(rng.integers(d))
    for i in range(-1, hh // d + 1):
        s = min(max(d * i + st_h, 0), hh)
        mask[s:min(max(d * i + st_h + band, 0), hh), :] = 0
        s = min(max(d * i + st_w, 0), hh)
        mask[:, s:min(max(d * i + st_w + band, 0), hh)] = 0
    angle = int(rng.integers(rotate)) if rotate > 1 else 0
    if angle:
        mask = np.asarray(Image.fromarray(mask).rotate(angle))
    mask = 1 - mask[(hh - h) // 2:(hh - h) // 2 + h, (hh - w) // 2:(hh - w) // 2 + w]  # mode 1: keep the bands
    return Image.fromarray(a * mask[..., None].astype(a.dtype))


def _partner(image: Image.Image, other: Image.Image) -> np.ndarray:
    if other.size != image.size:
        other = other.resize(image.size, Image.Resampling.BICUBIC)
    return np.asarray(other, dtype=np.float64)


def mixup(image: Image.Image, other: Image.Image, lam: float) -> Image.Image:
    """``lam * image + (1 - lam) * other`` (other resized to image's size, bicubic), rounded to uint8."""
    a = np.asarray(image, dtype=np.float64)
    mixed = lam * a + (1.0 - lam) * _partner(image, other)
    return Image.fromarray(np.clip(np.rint(mixed), 0, 255).astype(np.uint8))


def cutmix(image: Image.Image, other: Image.Image, lam: float, rng: np.random.Generator) -> tuple[Image.Image, float]:
    """Paste a box of ``other`` (side ratio ``sqrt(1 - lam)``, centre uniform, clipped) into ``image``;
    returns the image and the actual weight of ``image``'s label, ``1 - box area / image area``."""
    a = np.asarray(image).copy()
    b = _partner(image, other).astype(np.uint8)
    h, w = a.shape[:2]
    cut = math.sqrt(1.0 - lam)
    ch, cw = int(h * cut), int(w * cut)
    cy, cx = int(rng.integers(h)), int(rng.integers(w))
    y0, y1 = np.clip([cy - ch // 2, cy + ch // 2], 0, h)
    x0, x1 = np.clip([cx - cw // 2, cx + cw // 2], 0, w)
    a[y0:y1, x0:x1] = b[y0:y1, x0:x1]
    return Image.fromarray(a), 1.0 - (y1 - y0) * (x1 - x0) / (h * w)


def augment_one(method: str, image: Image.Image, key: tuple, params: dict,
                partner: Callable[[np.random.Generator], tuple[int, Image.Image, int]] | None = None
                ) -> tuple[Image.Image, dict]:
    """One augmented copy of ``image`` for job ``key = (seed, index, variant)``; returns ``(image, extra row)``.

    ``partner(rng) -> (index, image, label)`` draws the mixing partner (mixup/cutmix only).
    """
    rng = np_random(*key, method)
    if method == "randaugment":
        t = v2.RandAugment(num_ops=params["num_ops"], magnitude=params["magnitude"])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(*key, method))
            return t(image), {}
    if method == "cutout":
        return cutout(image, rng, params["size"]), {}
    if method == "gridmask":
        return gridmask(image, rng, params["d_min"], params["d_max"], params["band_ratio"], params["rotate"]), {}
    if method in MIXING:
        if partner is None:
            raise ValueError(f"{method} needs a partner image")
        j, other, label_b = partner(rng)
        lam = float(rng.beta(params["alpha"], params["alpha"]))
        if method == "mixup":
            out = mixup(image, other, lam)
        else:
            out, lam = cutmix(image, other, lam, rng)
        return out, {"label_b": int(label_b), "lam": lam, "partner_index": int(j)}
    raise ValueError(f"augmentation method must be one of {AUGMENT_METHODS}, got {method!r}")


def _partner_fn(dataset, labels: list[int], i: int) -> Callable:
    """Draw a partner uniformly among the other items; an unreadable one is replaced by the next draw."""
    n = len(labels)

    def draw(rng: np.random.Generator):
        if n < 2:
            raise ValueError("mixing needs a dataset of at least 2 images")
        last = None
        for _ in range(10):
            j = int(rng.integers(n - 1))
            j += j >= i
            try:
                image, _ = dataset[j]
                return j, image, labels[j]
            except (BadImage, OSError, ValueError) as e:
                last = e
        raise BadImage(f"no readable mixing partner for seed {i} after 10 draws ({last})")

    return draw


def expand_augment(dataset, class_names: Sequence[str], out: str | Path, *, method: str, ratio: int, seed: int = 0,
                   batch_size: int = 16, limit: int | None = None, output_size: int | None = None,
                   params: dict | None = None, shard: tuple[int, int] = (0, 1),
                   barrier: Callable[[], None] | None = None, progress: bool = True) -> ExpandResult:
    """Write ``ratio`` augmented copies of every seed of ``dataset`` into the store at ``out``.

    Same conventions as :func:`gifkit.core.imagine.expand`: batches of ``batch_size``
    seeds are the unit of resume and sharding (``shard=(index, count)``), one
    folder holds one run (``run.json``), unreadable seeds are skipped and listed
    in ``skipped.json``, and ``metadata.csv`` is written by shard 0 at the end.
    ``params`` override :data:`DEFAULT_PARAMS` of the method; ``output_size``
    resizes the copies (bicubic) to a square of that side, else they keep the seed's size.
    """
    params = _resolve_params(method, params)
    settings = {"method": method, "ratio": int(ratio), "seed": seed, "batch_size": batch_size,
                "output_size": output_size, "params": params, "guidance": None}
    run = ExpansionRun(out, dataset, class_names, settings, ratio=ratio, batch_size=batch_size, limit=limit,
                       shard=shard, barrier=barrier,  # PIL and NumPy only: the thread count does not matter
                       environment=run_environment(threads=False, libraries=("gifkit", "numpy", "pillow")))
    store, labels = run.store, run.labels
    result = ExpandResult(out=Path(out), timings={"augment": 0.0, "io": 0.0})
    start = time.perf_counter()
    for batch in run.pending(dataset, result, progress=progress, desc=f"{method} x{ratio}"):
        rows = []
        for i, image, label in batch.items:
            t0 = time.perf_counter()
            try:
                image = image.convert("RGB")
                copies = [augment_one(method, image, (seed, i, v), params,
                                      _partner_fn(dataset, labels, i) if method in MIXING else None)
                          for v in range(ratio)]
            except (BadImage, OSError, ValueError) as e:  # e.g. no readable mixing partner
                batch.skip(i, str(e))
                continue
            t1 = time.perf_counter()
            result.timings["augment"] += t1 - t0
            for v, (pil, extra) in enumerate(copies):
                if output_size is not None and pil.size != (output_size, output_size):
                    pil = pil.resize((output_size, output_size), Image.Resampling.BICUBIC)
                rel = store.relpath(label, i, v)
                if store.save_image(rel, pil):
                    result.written += 1
                else:
                    result.existing += 1
                rows.append({**params, "file_name": rel, "label": label, "seed_index": i,
                             "seed_path": seed_path(dataset, i), "variant": v, "method": method,
                             "random_seed": derive_seed(seed, i, v), "ratio": ratio, **extra})
            result.timings["io"] += time.perf_counter() - t1
        run.commit(batch, rows)
    result.seconds = time.perf_counter() - start

    run.finish()
    return result
