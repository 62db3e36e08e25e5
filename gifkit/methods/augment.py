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
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from gifkit.config import Check, option
from gifkit.core.prior import Job
from gifkit.core.rng import derive_seed, np_random
from gifkit.io.datasets import dataset_labels
from gifkit.io.images import BadImage
from gifkit.io.runs import run_environment
from gifkit.methods.base import Created, ExpansionMethod, MethodConfig, RunContext, register
from gifkit.methods.gif import jobs_per_seed

__all__ = ["AUGMENT_METHODS", "augment_one", "cutout", "gridmask", "mixup", "cutmix", "Augmentation",
           "RandAugment", "Cutout", "GridMask", "Mixup", "CutMix"]

AUGMENT_METHODS = ("randaugment", "cutout", "gridmask", "mixup", "cutmix")
MIXING = ("mixup", "cutmix")


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


class Augmentation(ExpansionMethod):
    """K augmented copies of every seed (module docstring); subclasses set ``Config`` (the method's parameters,
    passed to :func:`augment_one`)."""

    default_batch_size = 16
    stages = ("augment",)

    def __init__(self, config, class_names, *, profile="smoke", device=None):
        super().__init__(config, class_names, profile=profile, device=device)
        self.dataset, self.labels = None, None

    @property
    def params(self) -> dict:
        """The method's parameters, recorded in ``run.json`` and every metadata row."""
        return asdict(self.config)

    def record(self) -> dict:
        return {"params": self.params, "guidance": None}

    def environment(self) -> dict:  # PIL and NumPy only: the thread count does not matter
        return run_environment(threads=False, libraries=("gifkit", "numpy", "pillow"))

    def begin(self, run: RunContext):
        """Mixing methods draw partners from the dataset being expanded."""
        self.dataset, self.labels = run.dataset, dataset_labels(run.dataset)
        return run.out

    def __call__(self, jobs: list[Job]) -> Created:
        k, params = jobs_per_seed(jobs), self.params
        made, images, rows, skipped, seconds = [], [], [], [], {"augment": 0.0}
        for first in range(0, len(jobs), k):
            seed_jobs = jobs[first:first + k]
            i = seed_jobs[0].index
            t = time.perf_counter()
            try:
                image = seed_jobs[0].image.convert("RGB")
                partner = _partner_fn(self.dataset, self.labels, i) if self.name in MIXING else None
                copies = [augment_one(self.name, image, job.key, params, partner) for job in seed_jobs]
            except (BadImage, OSError, ValueError) as e:  # e.g. no readable mixing partner
                skipped.append((i, str(e)))
                continue
            finally:
                seconds["augment"] += time.perf_counter() - t
            for job, (pil, extra) in zip(seed_jobs, copies):
                made.append(job)
                images.append(pil)
                rows.append({**params, **extra})
        return Created(made, images, rows, skipped=skipped, seconds=seconds)


@dataclass
class RandAugmentConfig(MethodConfig):
    num_ops: int = option(2, "RandAugment: operations per copy (torchvision's default)", check=Check(0, 14, integer=True))
    magnitude: int = option(9, "RandAugment: magnitude of each operation (torchvision's default)",
                            check=Check(0, 30, integer=True))


@dataclass
class CutoutConfig(MethodConfig):
    size: float = option(0.5, "Cutout: side of the zeroed square, a fraction of the shorter side",
                         check=Check(0, 1, lo_open=True))


@dataclass
class GridMaskConfig(MethodConfig):
    d_min: float = option(96 / 224, "GridMask: smallest grid period, a fraction of the shorter side",
                          check=Check(0, 1, lo_open=True))
    d_max: float = option(1.0, "GridMask: largest grid period, a fraction of the shorter side",
                          check=Check(0, 1, lo_open=True))
    band_ratio: float = option(0.6, "GridMask: kept band width, a fraction of the period (official ratio)",
                               check=Check(0, 1))
    rotate: int = option(1, "GridMask: rotations drawn below this many degrees (1: none)", check=Check(1, 360, integer=True))


@dataclass
class MixConfig(MethodConfig):
    alpha: float = option(1.0, "Mixup / CutMix: lam ~ Beta(alpha, alpha)", check=Check(0, lo_open=True))


@register("randaugment")
class RandAugment(Augmentation):
    summary = "RandAugment copies of each seed (torchvision, 2 ops, magnitude 9)"
    Config = RandAugmentConfig


@register("cutout")
class Cutout(Augmentation):
    summary = "Cutout copies: one zeroed square of half the shorter side"
    Config = CutoutConfig


@register("gridmask")
class GridMask(Augmentation):
    summary = "GridMask copies (the official mode=1 ImageNet setting)"
    Config = GridMaskConfig


@register("mixup")
class Mixup(Augmentation):
    summary = "Mixup with a random partner (Beta(1, 1) weight, soft labels)"
    Config = MixConfig


@register("cutmix")
class CutMix(Augmentation):
    summary = "CutMix with a random partner (box of area 1 - lam, soft labels)"
    Config = MixConfig
