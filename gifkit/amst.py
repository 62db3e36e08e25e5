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

Everything else (preset, transforms, SGD with cosine decay, accelerate, evaluation, ``result.json``,
``model.safetensors``, resume, several seeds) is :mod:`gifkit.train`'s. ``result.json`` gains an ``amst``
section: the settings and, per epoch, the fraction of synthetic images pseudo-labelled and how often the
pseudo-label equals the seed's label.
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

__all__ = ["AMSTConfig", "AMSTNet", "pseudo_labels", "amst_loss", "train_amst", "train_amst_seeds", "load_amst",
           "label_synthetic"]


@dataclass
class AMSTConfig:
    """AMST settings (see the module docstring)."""

    heads: int = 4  # auxiliary heads (the paper: four)
    threshold: float = 0.8  # minimum mean probability of the agreed class (gifkit's choice)
    warmup_epochs: int | None = None  # None: 10 % of the epochs, rounded down
    weight: float = 1.0  # weight of the synthetic (pseudo-label) loss
    synthetic_batch_size: int | None = None  # None: the real batch size

    def __post_init__(self):
        if self.heads < 1:
            raise ValueError(f"AMST needs at least one auxiliary head, got heads={self.heads}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")
        if self.warmup_epochs is not None and self.warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be >= 0, got {self.warmup_epochs}")


class AMSTNet(nn.Module):
    """A backbone (features ``[B, D]``), a main head and ``heads`` auxiliary heads (linear, ``D -> C``).

    ``forward(x)`` returns the main head's logits; ``forward(x, all_heads=True)`` returns
    ``(main [B, C], aux [M, B, C])``.
    """

    def __init__(self, backbone: nn.Module, num_features: int, num_classes: int, heads: int = 4):
        super().__init__()
        self.backbone = backbone
        self.main = nn.Linear(num_features, num_classes)
        self.aux = nn.ModuleList(nn.Linear(num_features, num_classes) for _ in range(heads))

    def forward(self, x: torch.Tensor, all_heads: bool = False):
        f = self.backbone(x)
        main = self.main(f)
        if not all_heads:
            return main
        return main, torch.stack([h(f) for h in self.aux])


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


def train_amst(cfg, amst: AMSTConfig | None = None) -> dict:
    """Train and evaluate one AMST run (``cfg``: a :class:`gifkit.train.TrainConfig` with ``expanded`` folders).

    Returns (and writes to ``cfg.out``) the result dict of :func:`gifkit.train.train` plus an ``amst``
    section; ``model.safetensors`` holds the whole :class:`AMSTNet` (see :func:`load_amst`).
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from torch.utils.data import DataLoader, Subset

    from gifkit.store import ExpandedDataset
    from gifkit.train import (EpochSampler, _config_key, _cosine, _evaluate, _norm, _precision, _result, _sync,
                              _Transformed, _write_json, create_model, eval_transform, load_splits, save_checkpoint,
                              train_transform)

    amst = amst or AMSTConfig()
    if not cfg.expanded:
        raise ValueError("AMST trains on real and synthetic images: pass expansion folders (--expanded)")
    if cfg.kd or cfg.loss != "ce":
        raise ValueError("AMST uses its own loss: drop --kd / --loss")
    key = {**json.loads(json.dumps(_config_key(cfg))), "amst": asdict(amst)}
    out = Path(cfg.out) if cfg.out else None
    if out is not None and cfg.resume and (out / "result.json").is_file():
        done = json.loads((out / "result.json").read_text())
        if done.get("amst", {}).get("key") == key:
            return done
    cuda = torch.cuda.is_available() and cfg.device != "cpu"
    acc = Accelerator(mixed_precision=_precision(cfg, cuda), cpu=not cuda)
    set_seed(cfg.seed)
    main = acc.is_main_process

    original, test_set, classes = load_splits(cfg)
    backbone = create_model(cfg.arch, 0, cfg.pretrained)
    mean, std = _norm(backbone, cfg.pretrained)
    model = AMSTNet(backbone, backbone.num_features, len(classes), amst.heads)
    tf = train_transform(cfg, mean, std)
    everything = ExpandedDataset(original, cfg.expanded, transform=tf, soft_labels=False)
    if everything.class_names is not None and list(everything.class_names) != list(classes):
        raise ValueError(f"the expansions' classes.json differs from {cfg.data}'s classes")
    n_real = len(original)
    real_set = _Transformed(original, tf)
    syn_set = Subset(everything, range(n_real, len(everything)))
    if len(syn_set) == 0:
        raise ValueError(f"the expansion folders {cfg.expanded} hold no images")
    syn_bs = amst.synthetic_batch_size or cfg.batch_size
    loader_args = dict(num_workers=cfg.workers, pin_memory=cuda, persistent_workers=cfg.workers > 0)
    real_loader = DataLoader(real_set, batch_size=cfg.batch_size, sampler=EpochSampler(n_real, cfg.seed),
                             drop_last=n_real > cfg.batch_size, **loader_args)
    syn_loader = DataLoader(syn_set, batch_size=syn_bs, sampler=EpochSampler(len(syn_set), f"{cfg.seed}/synthetic"),
                            drop_last=len(syn_set) > syn_bs, **loader_args)
    test_loader = DataLoader(_Transformed(test_set, eval_transform(cfg.image_size, mean, std)),
                             batch_size=max(cfg.batch_size, 64), num_workers=cfg.workers, pin_memory=cuda)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                weight_decay=cfg.weight_decay, nesterov=cfg.nesterov)
    model, optimizer, real_loader, syn_loader, test_loader = acc.prepare(model, optimizer, real_loader, syn_loader,
                                                                          test_loader)
    if cfg.steps is not None:
        total_steps = int(cfg.steps)
    elif cfg.steps_ratio is not None:
        total_steps = cfg.epochs * max(1, round(n_real * (1 + cfg.steps_ratio)) // (cfg.batch_size * acc.num_processes))
    else:  # as many steps as `gifkit train` on original + expansions
        total_steps = cfg.epochs * max(1, len(everything) // (cfg.batch_size * acc.num_processes))
    per_epoch = [total_steps // cfg.epochs + (e < total_steps % cfg.epochs) for e in range(cfg.epochs)]
    warmup = _warmup(amst, cfg.epochs)

    history: list[dict] = []
    start_epoch = 0
    ckpt = out / "checkpoint" if out is not None else None
    if ckpt is not None and cfg.resume and (ckpt / "state.json").is_file():
        state = json.loads((ckpt / "state.json").read_text())
        if state["config"] != key:
            raise ValueError(f"{ckpt} was written with other settings; use another --out or --no-resume")
        acc.load_state(str(ckpt))
        start_epoch, history = state["epoch"], state["history"]

    def batches(loader, epoch):
        p = 0
        while True:
            loader.set_epoch(epoch * 1000 + p)
            yield from loader
            p += 1

    step = sum(per_epoch[:start_epoch])
    train_images, train_seconds = 0, 0.0
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        real_it, syn_it = batches(real_loader, epoch), batches(syn_loader, epoch)
        use_syn = epoch >= warmup
        loss_sum = torch.zeros((), device=acc.device)
        n_syn = n_lab = n_same = 0
        bar = tqdm(total=per_epoch[epoch], unit="step", desc=f"AMST epoch {epoch + 1}/{cfg.epochs}",
                   disable=not (cfg.progress and main), leave=False)
        _sync(acc.device)
        t0, seen = time.perf_counter(), 0
        for _ in range(per_epoch[epoch]):
            x, y = next(real_it)
            for g in optimizer.param_groups:
                g["lr"] = _cosine(step, total_steps, cfg.lr)
            with acc.autocast():
                if use_syn:
                    xs, ys = next(syn_it)
                    main_all, aux_all = model(torch.cat([x, xs]), all_heads=True)
                    b = x.shape[0]
                    loss, labels = amst_loss(main_all[:b], aux_all[:, :b], y, main_all[b:], aux_all[:, b:],
                                             amst.threshold, amst.weight)
                    lab = labels >= 0
                    n_syn += xs.shape[0]
                    n_lab += int(lab.sum())
                    n_same += int((labels[lab] == ys[lab]).sum())
                    seen += xs.shape[0]
                else:
                    main_r, aux_r = model(x, all_heads=True)
                    loss, _ = amst_loss(main_r, aux_r, y)
            acc.backward(loss)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            loss_sum += loss.detach()
            step += 1
            seen += x.shape[0]
            bar.update(1)
        _sync(acc.device)
        seconds = time.perf_counter() - t0
        bar.close()
        train_images += seen * acc.num_processes
        train_seconds += seconds
        metrics = _evaluate(model, test_loader, acc, classes)
        history.append({
            "epoch": epoch + 1, "steps": step, "lr_end": _cosine(step, total_steps, cfg.lr),
            "train_loss": float(acc.reduce(loss_sum, "sum")) / max(per_epoch[epoch] * acc.num_processes, 1),
            "test_accuracy_micro": metrics["accuracy_micro"], "test_accuracy_macro": metrics["accuracy_macro"],
            "train_images_per_s": seen * acc.num_processes / seconds if seconds > 0 else float("nan"),
            "synthetic_seen": n_syn, "pseudo_labelled": n_lab / n_syn if n_syn else float("nan"),
            "pseudo_equals_seed_label": n_same / n_lab if n_lab else float("nan")})
        if main and cfg.progress:
            h = history[-1]
            tqdm.write(f"AMST epoch {epoch + 1}/{cfg.epochs}: loss {h['train_loss']:.4f}, test micro "
                       f"{h['test_accuracy_micro']:.2f} %, pseudo-labelled {h['pseudo_labelled']:.2f} of "
                       f"{n_syn} synthetic")
        save_checkpoint(acc, ckpt, {"epoch": epoch + 1, "history": history, "config": key})

    if start_epoch >= cfg.epochs:
        metrics = _evaluate(model, test_loader, acc, classes)
    net = acc.unwrap_model(model)
    orig_counts = np.bincount(everything.targets[:n_real], minlength=len(classes)).tolist()
    result = _result(cfg, classes, original, everything, orig_counts, total_steps, history, metrics, net, mean, std,
                     train_images, train_seconds, acc)
    result["amst"] = {**asdict(amst), "warmup_epochs_used": warmup, "n_real": n_real, "n_synthetic": len(syn_set),
                      "key": key, "reading": "see gifkit/amst.py (arXiv 2403.12803 §3.3, gifkit's reading)"}
    result["model"]["amst_heads"] = amst.heads
    if out is not None and main:
        from safetensors.torch import save_file
        out.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()},
                  str(out / "model.safetensors"))
        _write_json(out / "result.json", result)
    acc.wait_for_everyone()
    return result


def train_amst_seeds(cfg, seeds: Sequence[int], amst: AMSTConfig | None = None) -> tuple[list[dict], dict]:
    """One AMST run per seed (``<out>/seed_<n>/``) and the aggregate (``<out>/aggregate.json``)."""
    from gifkit.train import _write_json, aggregate

    results = []
    for s in seeds:
        sub = str(Path(cfg.out) / f"seed_{s}") if cfg.out else None
        results.append(train_amst(dataclasses.replace(cfg, seed=int(s), out=sub), amst))
    agg = aggregate(results)
    if cfg.out:
        _write_json(Path(cfg.out) / "aggregate.json", agg)
    return results, agg


def load_amst(run: str | Path, device: str | torch.device = "cpu") -> tuple[AMSTNet, object, list[str]]:
    """``(AMSTNet, eval transform, classes)`` of a finished AMST run folder."""
    from safetensors.torch import load_file

    from gifkit.train import create_model, eval_transform

    run = Path(run)
    if not (run / "result.json").is_file() or not (run / "model.safetensors").is_file():
        raise FileNotFoundError(f"{run} is not a finished AMST run (result.json + model.safetensors)")
    info = json.loads((run / "result.json").read_text())
    if "amst" not in info:
        raise ValueError(f"{run} is a plain `gifkit train` run, not an AMST one")
    m = info["model"]
    backbone = create_model(m["timm_name"], 0, pretrained=False)
    net = AMSTNet(backbone, backbone.num_features, m["num_classes"], info["amst"]["heads"])
    net.load_state_dict(load_file(str(run / "model.safetensors")))
    return net.to(device).eval(), eval_transform(m["image_size"], m["mean"], m["std"]), list(info["dataset"]["classes"])


@torch.no_grad()
def label_synthetic(run: str | Path, expanded: str | Path, threshold: float | None = None,
                    batch_size: int = 64, device: str | torch.device = "cpu") -> pd.DataFrame:
    """The pseudo-labels a trained AMST model gives the images of an expansion folder.

    One row per image of ``expanded/metadata.csv``: ``file_name``, ``label`` (the seed's),
    ``pseudo_label`` (-1: none), ``aux_agree``, ``aux_confidence`` and ``main_pred``. ``threshold``
    defaults to the run's.
    """
    from gifkit.store import read_metadata

    net, tf, _ = load_amst(run, device)
    info = json.loads((Path(run) / "result.json").read_text())
    thr = info["amst"]["threshold"] if threshold is None else threshold
    root = Path(expanded)
    meta = read_metadata(root)
    rows = []
    files = list(meta["file_name"])
    for s in range(0, len(files), batch_size):
        from PIL import Image

        xs = []
        for f in files[s:s + batch_size]:
            with Image.open(root / f) as im:
                xs.append(tf(im.convert("RGB")))
        main, aux = net(torch.stack(xs).to(device), all_heads=True)
        labels, conf, agree = pseudo_labels(aux, thr)
        rows += list(zip(labels.tolist(), agree.tolist(), conf.tolist(), main.argmax(-1).tolist()))
    lab, agree, conf, pred = zip(*rows) if rows else ((), (), (), ())
    return pd.DataFrame({"file_name": files, "label": meta["label"].astype(int).tolist(), "pseudo_label": lab,
                         "aux_agree": agree, "aux_confidence": conf, "main_pred": pred})
