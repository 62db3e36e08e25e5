"""AMST: Asymmetric Multi-head Self-Training, DreamDA's labelling of its synthetic images
(Fu et al., 2024, arXiv 2403.12803, §3.3). ``gifkit train --amst`` and :func:`train_amst`.

A created image may not keep its seed's class, so DreamDA does not trust the seed's label: it trains a
classifier with a *main* head and *auxiliary* heads (four in the paper) on one backbone, and labels a
synthetic image with the class the auxiliary heads agree on. gifkit implements the paper's description
as follows (the paper gives no code for it; these are gifkit's reading and choices):

* **Network.** ``AMSTNet``: a timm backbone (the training preset's architecture, classifier removed),
  a linear main head and ``heads`` linear auxiliary heads, each with its own random initialisation (the
  only source of their diversity). Predictions and test accuracy use the main head.
* **Real images** (the original training set): cross-entropy on their labels for the main head and for
  every auxiliary head (mean over the auxiliary heads).
* **Synthetic images** (the expansion folders, their seed labels unused for training): the auxiliary
  heads' softmax outputs, detached, give a pseudo-label y~ when (consistency) every auxiliary head
  predicts the same class and (confidence) their mean probability of that class is >= ``threshold``.
  Only the main head is trained on them: cross-entropy on y~, averaged over the whole synthetic batch
  with the unlabelled images counting zero (as in FixMatch), times ``weight``.
* **Asymmetry.** The auxiliary heads, which make the pseudo-labels, never learn from synthetic images,
  so they cannot confirm their own mistakes; the backbone learns from both (through the main head on
  synthetic images). The pseudo-labels are recomputed at every step from the current heads.
* **Warm-up.** The first ``warmup_epochs`` epochs (default 10 % of the epochs, rounded down) use real
  images only, so the heads are trained before they label anything.
* **Batches and steps.** Every step takes a batch of real images and a batch of synthetic images (the
  same size by default). The number of steps is that of ``gifkit train`` on the same data (original +
  expansions) with the same config, so AMST and plain training are compared at equal update steps;
  ``steps`` / ``steps_ratio`` work as there.

AMST is an :class:`~gifkit.train.loop.Objective` of the one training loop: everything else (preset,
transforms, SGD with cosine decay, accelerate, evaluation, ``result.json``, ``model.safetensors``, resume,
several seeds) is :func:`gifkit.train.loop.train`'s. ``result.json`` gains an ``amst`` section: the
settings and, per epoch, the fraction of synthetic images pseudo-labelled and how often the pseudo-label
equals the seed's label.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd
import torch
import torch.nn.functional as F

from gifkit.config import Check, check_fields, option
from gifkit.io.images import open_rgb
from gifkit.io.store import read_metadata
from gifkit.models.classifiers import AMSTNet
from gifkit.train.config import TrainConfig
from gifkit.train.data import Transformed
from gifkit.train.loop import Objective, train, train_seeds

__all__ = ["AMSTConfig", "AMST", "pseudo_labels", "amst_loss", "train_amst", "train_amst_seeds",
           "label_synthetic"]



@dataclass
class AMSTConfig:
    """AMST settings (see the module docstring); ``gifkit train --amst --amst-<field> ...``."""

    heads: int = option(4, "auxiliary heads (the paper: four)", check=Check(1, 64, integer=True))
    threshold: float = option(0.8, "minimum mean probability of the agreed class (gifkit's choice)",
                              check=Check(0, 1))
    warmup_epochs: int | None = option(None, "real-only epochs first (default: 10 % of the epochs, rounded down)",
                                       check=Check(0, integer=True))
    weight: float = option(1.0, "weight of the synthetic (pseudo-label) loss", check=Check(0))
    synthetic_batch_size: int | None = option(None, "synthetic images per step (default: the real batch size)",
                                              check=Check(1, integer=True))

    def __post_init__(self):
        check_fields(self)


def pseudo_labels(aux_logits: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(labels [B], confidence [B], agree [B])`` from auxiliary logits ``[M, B, C]``.

    ``agree``: every head predicts the same class; ``confidence``: the heads' mean probability of head 0's
    class; ``labels``: that class where ``agree`` and ``confidence >= threshold``, else -1.
    """
    p = torch.softmax(aux_logits.float(), dim=-1)  # [M, B, C]
    preds = p.argmax(-1)  # [M, B]
    agree = (preds == preds[:1]).all(0)
    conf = p.gather(-1, preds[:1].expand_as(preds)[..., None]).squeeze(-1).mean(0)  # [B]
    labels = torch.where(agree & (conf >= threshold), preds[0], torch.full_like(preds[0], -1))
    return labels, conf, agree


def amst_loss(main_real: torch.Tensor, aux_real: torch.Tensor, y_real: torch.Tensor,
              main_syn: torch.Tensor | None = None, aux_syn: torch.Tensor | None = None,
              threshold: float = 0.8, weight: float = 1.0) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The AMST loss and the synthetic images' pseudo-labels (-1: none; ``None`` without synthetic images).

    ``CE(main_real, y) + mean_m CE(aux_real[m], y) + weight * mean_b [y~_b >= 0] CE(main_syn_b, y~_b)``,
    with ``y~`` from :func:`pseudo_labels` of the *detached* ``aux_syn``: no gradient reaches the
    auxiliary heads from synthetic images.
    """
    loss = F.cross_entropy(main_real.float(), y_real)
    loss = loss + torch.stack([F.cross_entropy(a.float(), y_real) for a in aux_real]).mean()
    if main_syn is None:
        return loss, None
    labels, _, _ = pseudo_labels(aux_syn.detach(), threshold)
    mask = (labels >= 0).float()
    syn = (F.cross_entropy(main_syn.float(), labels.clamp_min(0), reduction="none") * mask).mean()
    return loss + weight * syn, labels


def _warmup(amst: AMSTConfig, epochs: int) -> int:
    return amst.warmup_epochs if amst.warmup_epochs is not None else epochs // 10


class AMST(Objective):
    """The AMST objective of :func:`gifkit.train.loop.train` (see the module docstring)."""

    name = "amst"

    def __init__(self, config: AMSTConfig | None = None):
        self.config = config or AMSTConfig()
        self._stats = {"synthetic": 0, "labelled": 0, "same": 0}

    def settings(self) -> dict:
        return asdict(self.config)

    def check(self, cfg: TrainConfig) -> None:
        if not cfg.expanded:
            raise ValueError("AMST trains on real and synthetic images: pass expansion folders (--expanded)")
        if cfg.kd or cfg.loss != "ce":
            raise ValueError("AMST uses its own loss: drop --kd / --loss")

    def build_model(self, cfg: TrainConfig, num_classes: int):
        from gifkit.models.classifiers import create_model
        from gifkit.train.data import normalization_of

        backbone = create_model(cfg.arch, 0, cfg.pretrained)
        model = AMSTNet(backbone, backbone.num_features, num_classes, self.config.heads)
        return (model, *normalization_of(backbone, cfg.pretrained, cfg.normalize))

    def datasets(self, cfg: TrainConfig, original, everything) -> list:
        everything.soft = False  # synthetic targets are the auxiliary heads' pseudo-labels, never soft seed labels
        n_real = len(original)
        synthetic = torch.utils.data.Subset(everything, range(n_real, len(everything)))
        if len(synthetic) == 0:
            raise ValueError(f"the expansion folders {cfg.expanded} hold no images")
        return [(Transformed(original, everything.transform), cfg.batch_size),
                (synthetic, self.config.synthetic_batch_size or cfg.batch_size)]

    def setup(self, cfg, acc, classes, everything, mean, std) -> None:
        self.warmup = _warmup(self.config, cfg.epochs)

    def loss(self, model, iterators, epoch):
        x, y = next(iterators[0])
        if epoch < self.warmup:
            main_r, aux_r = model(x, all_heads=True)
            return amst_loss(main_r, aux_r, y)[0], x.shape[0]
        xs, ys = next(iterators[1])
        main_all, aux_all = model(torch.cat([x, xs]), all_heads=True)
        b = x.shape[0]
        loss, labels = amst_loss(main_all[:b], aux_all[:, :b], y, main_all[b:], aux_all[:, b:], self.config.threshold,
                                 self.config.weight)
        lab = labels >= 0
        self._stats["synthetic"] += xs.shape[0]
        self._stats["labelled"] += int(lab.sum())
        self._stats["same"] += int((labels[lab] == ys[lab]).sum())
        return loss, b + xs.shape[0]

    def epoch_stats(self) -> dict:
        s = self._stats
        out = {"synthetic_seen": s["synthetic"],
               "pseudo_labelled": s["labelled"] / s["synthetic"] if s["synthetic"] else float("nan"),
               "pseudo_equals_seed_label": s["same"] / s["labelled"] if s["labelled"] else float("nan")}
        self._stats = {"synthetic": 0, "labelled": 0, "same": 0}
        return out

    def finish(self, result: dict, everything, n_original: int) -> None:
        result["amst"] = {**asdict(self.config), "warmup_epochs_used": self.warmup, "n_real": n_original,
                          "n_synthetic": len(everything) - n_original,
                          "reading": "see gifkit/train/amst.py (arXiv 2403.12803 §3.3, gifkit's reading)"}
        result["model"]["amst_heads"] = self.config.heads


def train_amst(cfg: TrainConfig, amst: AMSTConfig | None = None) -> dict:
    """Train and evaluate one AMST run (``cfg`` with ``expanded`` folders): :func:`gifkit.train.loop.train` with
    the :class:`AMST` objective; ``model.safetensors`` holds the whole :class:`AMSTNet`."""
    return train(cfg, AMST(amst))


def train_amst_seeds(cfg: TrainConfig, seeds: Sequence[int], amst: AMSTConfig | None = None
                     ) -> tuple[list[dict], dict]:
    """One AMST run per seed (``<out>/seed_<n>/``) and the aggregate (``<out>/aggregate.json``)."""
    return train_seeds(cfg, seeds, AMST(amst))


@torch.no_grad()
def label_synthetic(run: str | Path, expanded: str | Path, threshold: float | None = None,
                    batch_size: int = 64, device: str | torch.device = "cpu") -> pd.DataFrame:
    """The pseudo-labels a trained AMST model gives the images of an expansion folder.

    One row per image of ``expanded/metadata.csv``: ``file_name``, ``label`` (the seed's),
    ``pseudo_label`` (-1: none), ``aux_agree``, ``aux_confidence`` and ``main_pred``. ``threshold``
    defaults to the run's.
    """
    from gifkit.train.runs import load_run

    trained = load_run(run, device)
    if trained.result.get("objective") != "amst":
        raise ValueError(f"{run} is a plain `gifkit train` run, not an AMST one")
    thr = trained.result["amst"]["threshold"] if threshold is None else threshold
    root = Path(expanded)
    meta = read_metadata(root)
    rows = []
    files = list(meta["file_name"])
    for s in range(0, len(files), batch_size):
        xs = torch.stack([trained.transform(open_rgb(root / f)) for f in files[s:s + batch_size]])
        main, aux = trained.model(xs.to(device), all_heads=True)
        labels, conf, agree = pseudo_labels(aux, thr)
        rows += list(zip(labels.tolist(), agree.tolist(), conf.tolist(), main.argmax(-1).tolist()))
    lab, agree, conf, pred = zip(*rows) if rows else ((), (), (), ())
    return pd.DataFrame({"file_name": files, "label": meta["label"].astype(int).tolist(), "pseudo_label": lab,
                         "aux_agree": agree, "aux_confidence": conf, "main_pred": pred})
