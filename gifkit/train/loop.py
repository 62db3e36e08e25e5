"""The one training loop: a classifier on original (+ expanded) data, whatever the objective.

:func:`train` builds the data (the original split plus any expansion folders, :class:`ExpandedDataset`), the
network, SGD with its lr schedule (:func:`lr_at`) and accelerate (devices, mixed precision, several processes),
runs the steps, evaluates on the test split after every epoch (none with ``test_split=None``), checkpoints, resumes, and writes the run folder. What is
optimised is an :class:`Objective`, the loop's one hook:

* :class:`Supervised` (the default): cross-entropy on the labels (soft targets of mixup/cutmix expansions
  honoured), or Balanced Softmax (``loss="balanced_softmax"``), plus knowledge distillation from CLIP's
  zero-shot probabilities with ``kd="clip"`` (the Table 1 "Distillation of CLIP" baseline):
  ``(1 - alpha) * CE + alpha * KD``;
* :class:`gifkit.train.amst.AMST`: DreamDA's asymmetric multi-head self-training.

Steps: ``steps`` / ``steps_ratio`` fix the number of update steps (equal-update-steps mode: e.g.
``steps_ratio=5`` trains the original set for as many steps as its 5x expansion takes in ``epochs``
epochs); otherwise ``epochs`` passes over the training data. The steps are spread evenly over ``epochs``
evaluation rounds.

A run folder holds ``result.json`` (settings, final and best-over-epochs micro and macro accuracy, per-class
accuracy, history, throughput), ``model.safetensors`` and ``checkpoint/`` (resumed automatically when the
settings match; written atomically, tensors and JSON only: :mod:`gifkit.train.checkpoint`). Unreadable
training images are skipped and listed in ``result.json`` (``dataset.unreadable_images_skipped``).
``train_seeds`` runs ``seed_<n>/`` folders and writes ``aggregate.json`` (mean and sample std).
"""
from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from gifkit.config import ARCHS, MACRO_DATASETS
from gifkit.io.files import atomic_write_bytes, make_dirs, write_json
from gifkit.io.runs import matching_record, normalized
from gifkit.train.checkpoint import load_checkpoint, save_checkpoint
from gifkit.train.config import TrainConfig, settings_of
from gifkit.train.data import EpochSampler, Transformed, batches, eval_transform, load_splits, train_transform
from gifkit.train.metrics import classification_metrics, shot_accuracy
from gifkit.train.losses import balanced_softmax_loss, kd_loss

# torch, timm and accelerate are imported inside the functions that use them.

__all__ = ["Objective", "Supervised", "train", "train_seeds", "aggregate", "cosine_lr", "lr_at", "run_settings"]


def cosine_lr(step: int, total: int, lr: float) -> float:
    """Cosine decay without warm-up: ``lr * (1 + cos(pi * step / total)) / 2``."""
    return 0.5 * lr * (1.0 + math.cos(math.pi * min(step, total) / max(total, 1)))


def lr_at(cfg: TrainConfig, step: int, total_steps: int, epoch: int) -> float:
    """The lr of update ``step`` (0-based, of ``total_steps``) in ``epoch`` (0-based) under ``cfg.schedule``:
    ``cosine``: :func:`cosine_lr` per step; ``cosine-epoch``: ``lr * (1 + cos(pi * epoch / epochs)) / 2``, constant
    within an epoch (the official scripts' ``CosineAnnealingLR(T_max=epochs)`` stepped after each epoch);
    ``step``: ``lr * gamma ** (number of milestones <= epoch)`` (the official ``adjust_learning_rate``)."""
    if cfg.schedule == "cosine-epoch":
        return cosine_lr(epoch, cfg.epochs, cfg.lr)
    if cfg.schedule == "step":
        return cfg.lr * cfg.gamma ** sum(1 for m in cfg.milestones if m <= epoch)
    return cosine_lr(step, total_steps, cfg.lr)


class Objective:
    """What a training run optimises; :func:`train` does the rest.

    ``build_model`` makes the network (and says its input mean/std), ``datasets`` the training sets drawn in
    lockstep (one loader each; ``loss`` pulls the batches it needs from their iterators), ``setup`` runs once
    the model is on its device, ``loss`` gives one step's loss and the images it used, ``epoch_stats`` what
    to add to the epoch's history record, ``finish`` what to add to ``result.json``.
    """

    name = "supervised"

    def settings(self) -> dict:
        """What, besides the :class:`TrainConfig`, decides the result (part of the resume key)."""
        return {}

    def check(self, cfg: TrainConfig) -> None:
        """Refuse configurations the objective cannot train."""

    def build_model(self, cfg: TrainConfig, num_classes: int):
        """``(model, mean, std)``: the network and the normalisation of its input."""
        from gifkit.models.classifiers import create_model
        from gifkit.train.data import normalization_of

        model = create_model(cfg.arch, num_classes, cfg.pretrained)
        return (model, *normalization_of(model, cfg.pretrained, cfg.normalize))

    def datasets(self, cfg: TrainConfig, original, everything) -> list:
        """``[(dataset, batch size), ...]``: the training sets (items ``(input, target)``), one loader each;
        ``everything`` is original + expansions with the training transform."""
        return [(everything, cfg.batch_size)]

    def setup(self, cfg: TrainConfig, acc, classes: list[str], everything, mean, std) -> None:
        """Called once after ``accelerate.prepare`` (e.g. to build a teacher on ``acc.device``)."""

    def loss(self, model, iterators: list, epoch: int):
        """``(loss, images used)`` of one step, pulling batches with ``next(iterators[i])``."""
        raise NotImplementedError

    def epoch_stats(self) -> dict:
        """Extra figures of the epoch just finished, for its history record (then reset)."""
        return {}

    def finish(self, result: dict, everything, n_original: int) -> None:
        """Add the objective's section to ``result`` (in place)."""


class Supervised(Objective):
    """Cross-entropy (or Balanced Softmax) on the labels, optionally with CLIP knowledge distillation."""

    def setup(self, cfg, acc, classes, everything, mean, std) -> None:
        import torch

        self.cfg = cfg
        counts = np.bincount(everything.targets, minlength=len(classes))
        self.class_counts = torch.tensor(counts, dtype=torch.float32, device=acc.device)
        self.teacher = None
        if cfg.kd:
            from gifkit.models.guides import zero_shot_classifier

            self.teacher = zero_shot_classifier(cfg.profile, classes, acc.device)
            self.mean = torch.tensor(mean, device=acc.device).view(1, 3, 1, 1)
            self.std = torch.tensor(std, device=acc.device).view(1, 3, 1, 1)

    def loss(self, model, iterators, epoch):
        import torch
        import torch.nn.functional as F

        x, y = next(iterators[0])
        logits = model(x)
        if self.cfg.loss == "balanced_softmax":
            loss = balanced_softmax_loss(logits.float(), y, self.class_counts)
        else:
            loss = F.cross_entropy(logits.float(), y)
        if self.teacher is not None:
            with torch.no_grad():
                p_t = self.teacher.probs((x.float() * self.std + self.mean).clamp(0, 1))
            loss = (1 - self.cfg.kd_alpha) * loss + self.cfg.kd_alpha * kd_loss(logits, p_t, self.cfg.kd_temperature)
        return loss, x.shape[0]


def run_settings(cfg: TrainConfig, objective: Objective) -> dict:
    """The resume key of a run: the config's deciding fields and the objective's settings (as JSON)."""
    return normalized({**settings_of(cfg), "objective": objective.name, "objective_settings": objective.settings()})


def _precision(cfg: TrainConfig, cuda: bool) -> str:
    import torch

    if cfg.precision != "auto":
        return cfg.precision if cuda or cfg.precision == "no" else "no"
    if not cuda:
        return "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _evaluate(model, loader, acc, classes) -> dict:
    import torch

    model.eval()
    preds, labels = [], []
    for x, y in loader:
        with torch.no_grad(), acc.autocast():
            p = model(x).argmax(1)
        p, y = acc.gather_for_metrics((p, y))
        preds.append(p.cpu())
        labels.append(y.cpu())
    model.train()
    return classification_metrics(torch.cat(preds).numpy(), torch.cat(labels).numpy(), classes)


def _save_checkpoint(acc, ckpt: Path | None, model, optimizer, state: dict) -> None:
    """End of an epoch: the checkpoint (model, optimizer, random states, ``state.json`` with epoch, history and
    settings) swapped in atomically (:func:`gifkit.train.checkpoint.save_checkpoint`). ``ckpt=None``: none."""
    if ckpt is None:
        return
    save_checkpoint(acc, ckpt, model, optimizer, state)


def train(cfg: TrainConfig, objective: Objective | None = None) -> dict:
    """Train and evaluate one run; returns (and writes to ``cfg.out``) the result dict. ``cfg.deterministic``:
    deterministic CUDA kernels throughout (:func:`gifkit.core.rng.deterministic_kernels`)."""
    from gifkit.core.rng import deterministic_kernels

    with deterministic_kernels(cfg.deterministic):
        return _train(cfg, objective)


def _train(cfg: TrainConfig, objective: Objective | None) -> dict:
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from torch.utils.data import DataLoader

    from gifkit.io.datasets import ExpandedDataset

    objective = objective or Supervised()
    objective.check(cfg)
    key = run_settings(cfg, objective)
    out = Path(cfg.out) if cfg.out else None
    if out is not None and cfg.resume:
        done = matching_record(out / "result.json", key, key="settings", what="a training run", on_mismatch="ignore")
        if done is not None:
            return done  # finished already
    cuda = torch.cuda.is_available() and cfg.device != "cpu"
    acc = Accelerator(mixed_precision=_precision(cfg, cuda), cpu=not cuda)
    set_seed(cfg.seed)
    main = acc.is_main_process

    original, test_set, classes = load_splits(cfg)
    model, mean, std = objective.build_model(cfg, len(classes))
    everything = ExpandedDataset(original, cfg.expanded, transform=train_transform(cfg, mean, std),
                                 soft_labels=cfg.soft_labels)
    if everything.class_names is not None and list(everything.class_names) != list(classes):
        raise ValueError(f"the expansions' classes.json differs from {cfg.data}'s classes: "
                         f"were they made from another dataset?")
    orig_counts = np.bincount(everything.targets[:len(original)], minlength=len(classes)).tolist()
    sets = objective.datasets(cfg, original, everything)
    loader_args = dict(num_workers=cfg.workers, pin_memory=cuda, persistent_workers=cfg.workers > 0)
    loaders = [DataLoader(ds, batch_size=bs, sampler=EpochSampler(len(ds), cfg.seed if i == 0 else f"{cfg.seed}/{i}"),
                          drop_last=len(ds) > bs, **loader_args) for i, (ds, bs) in enumerate(sets)]
    tests = [] if test_set is None else [DataLoader(Transformed(test_set, eval_transform(cfg.image_size, mean, std,
                                                                                         cfg.transforms)),
                                                    batch_size=max(cfg.batch_size, 64), num_workers=cfg.workers,
                                                    pin_memory=cuda)]
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                weight_decay=cfg.weight_decay, nesterov=cfg.nesterov)
    prepared = acc.prepare(model, optimizer, *tests, *loaders)
    model, optimizer, loaders = prepared[0], prepared[1], list(prepared[2 + len(tests):])
    test_loader = prepared[2] if tests else None  # None: no test pass (test_split=None)
    objective.setup(cfg, acc, classes, everything, mean, std)

    per_step = cfg.batch_size * acc.num_processes
    if cfg.steps is not None:
        total_steps = int(cfg.steps)
    elif cfg.steps_ratio is not None:
        total_steps = cfg.epochs * max(1, round(len(original) * (1 + cfg.steps_ratio)) // per_step)
    else:
        total_steps = cfg.epochs * max(1, len(everything) // per_step)
    per_epoch = [total_steps // cfg.epochs + (e < total_steps % cfg.epochs) for e in range(cfg.epochs)]

    history: list[dict] = []
    start_epoch = 0
    ckpt = out / "checkpoint" if out is not None else None
    if ckpt is not None and cfg.resume:
        state = load_checkpoint(acc, ckpt, model, optimizer, key,
                                hint="use another --out, or --no-resume to start over")
        if state is not None:
            start_epoch, history = state["epoch"], state["history"]
            if main:
                print(f"resuming {out} after epoch {start_epoch}")

    step = sum(per_epoch[:start_epoch])
    train_images, train_seconds = 0, 0.0
    metrics = None
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        loss_sum = torch.zeros((), device=acc.device)
        iterators = [batches(loader, epoch) for loader in loaders]  # lazy: a loader no step uses is not read
        bar = tqdm(total=per_epoch[epoch], unit="step", desc=f"epoch {epoch + 1}/{cfg.epochs}",
                   disable=not (cfg.progress and main), leave=False)
        _sync(acc.device)
        t0 = time.perf_counter()
        seen = 0
        for _ in range(per_epoch[epoch]):
            for g in optimizer.param_groups:
                g["lr"] = lr_at(cfg, step, total_steps, epoch)
            with acc.autocast():
                loss, n_images = objective.loss(model, iterators, epoch)
            acc.backward(loss)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            loss_sum += loss.detach()
            step += 1
            seen += n_images * acc.num_processes
            bar.update(1)
        _sync(acc.device)
        seconds = time.perf_counter() - t0
        bar.close()
        train_images += seen
        train_seconds += seconds
        metrics = _evaluate(model, test_loader, acc, classes) if test_loader is not None else {}
        record = {"epoch": epoch + 1, "steps": step, "lr_end": lr_at(cfg, step, total_steps, epoch + 1),
                  "train_loss": float(acc.reduce(loss_sum, "sum")) / max(per_epoch[epoch] * acc.num_processes, 1),
                  "test_accuracy_micro": metrics.get("accuracy_micro"),
                  "test_accuracy_macro": metrics.get("accuracy_macro"),
                  "train_images_per_s": seen / seconds if seconds > 0 else float("nan"), **objective.epoch_stats()}
        history.append(record)
        if main and cfg.progress:
            test = (f"test micro {metrics['accuracy_micro']:.2f} % / macro {metrics['accuracy_macro']:.2f} %"
                    if metrics else "no test pass")
            tqdm.write(f"epoch {epoch + 1}/{cfg.epochs}: loss {record['train_loss']:.4f}, {test}, "
                       f"{record['train_images_per_s']:.1f} img/s")
        _save_checkpoint(acc, ckpt, model, optimizer, {"epoch": epoch + 1, "history": history, "config": key})

    if metrics is None:  # resumed after the last epoch
        metrics = _evaluate(model, test_loader, acc, classes) if test_loader is not None else {}
    net = acc.unwrap_model(model)
    result = _result(cfg, classes, original, everything, orig_counts, total_steps, history, metrics, net, mean, std,
                     train_images, train_seconds, acc)
    result["objective"] = objective.name
    result["settings"] = key
    objective.finish(result, everything, len(original))
    result["dataset"]["unreadable_images_skipped"] = everything.damaged  # stood in for by readable ones
    if out is not None and main:
        from safetensors.torch import save

        make_dirs(out)
        atomic_write_bytes(out / "model.safetensors",
                           save({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}))
        write_json(out / "result.json", result)
    acc.wait_for_everyone()
    return result


def _result(cfg, classes, original, train_set, orig_counts, total_steps, history, metrics, model, mean, std,
            train_images, train_seconds, acc) -> dict:
    from gifkit import __version__

    primary = "accuracy_macro" if cfg.data.lower() in MACRO_DATASETS else "accuracy_micro"
    best = {}
    for key in ("accuracy_micro", "accuracy_macro"):
        col = [np.nan if h.get(f"test_{key}") is None else h[f"test_{key}"] for h in history]
        i = int(np.nanargmax(col)) if col and not all(math.isnan(c) for c in col) else None
        best[key] = {"value": col[i], "epoch": history[i]["epoch"]} if i is not None else None
    final = {"epoch": cfg.epochs, **(metrics or {"accuracy_micro": None, "accuracy_macro": None, "n_test": 0,
                                                  "note": "no test split (test_split=None): no test pass"})}
    long_tail = cfg.long_tail if cfg.long_tail is not None else hasattr(original, "class_counts")
    if long_tail and metrics:
        final["shot_accuracy"] = shot_accuracy(list(metrics["per_class_accuracy"].values()), orig_counts)
    return {
        "gifkit_version": __version__,
        "units": "percent",
        "primary_metric": primary,
        "final": final,
        "best_over_epochs": {
            "note": "highest test accuracy over the evaluated epochs (what the official GIF scripts report); "
                    "selected on the test set, so optimistic. gifkit's headline figure is `final`.",
            **best},
        "history": history,
        "throughput": {"train_images": train_images, "train_seconds": train_seconds,
                       "train_images_per_s": train_images / train_seconds if train_seconds else None,
                       "device": str(acc.device), "num_processes": acc.num_processes,
                       "mixed_precision": acc.mixed_precision},
        "dataset": {"name": cfg.data, "classes": list(classes), "n_train_original": len(original),
                    "n_train_total": len(train_set), "n_test": final["n_test"], "expanded": list(cfg.expanded),
                    "train_class_counts_original": orig_counts, "soft_labels": bool(getattr(train_set, "soft", False))},
        "model": {"arch": cfg.arch, "timm_name": ARCHS.get(cfg.arch, cfg.arch), "num_classes": len(classes),
                  "image_size": cfg.image_size, "mean": list(mean), "std": list(std),
                  "parameters": sum(p.numel() for p in model.parameters())},
        "total_steps": total_steps,
        "config": dataclasses.asdict(cfg),
    }


# ----------------------------------------------------------------------------- several seeds


def aggregate(results: Sequence[dict]) -> dict:
    """Mean and sample standard deviation (ddof=1; 0 for one run) of the headline figures over runs."""
    def pick(r: dict, path: tuple):
        for k in path:
            r = r.get(k) if isinstance(r, dict) else None
        return r

    paths = {"final.accuracy_micro": ("final", "accuracy_micro"), "final.accuracy_macro": ("final", "accuracy_macro"),
             "best_over_epochs.accuracy_micro": ("best_over_epochs", "accuracy_micro", "value"),
             "best_over_epochs.accuracy_macro": ("best_over_epochs", "accuracy_macro", "value")}
    for g in ("many", "medium", "few"):
        paths[f"final.shot_accuracy.{g}"] = ("final", "shot_accuracy", g)
    out = {"units": "percent", "n_runs": len(results), "seeds": [r["config"]["seed"] for r in results],
           "std": "sample standard deviation (ddof=1)", "primary_metric": results[0]["primary_metric"], "metrics": {}}
    for name, path in paths.items():
        vals = [pick(r, path) for r in results]
        if any(v is None for v in vals):
            continue
        arr = np.asarray(vals, dtype=float)
        out["metrics"][name] = {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
                                "values": arr.tolist()}
    return out


def train_seeds(cfg: TrainConfig, seeds: Sequence[int], objective: Objective | None = None
                ) -> tuple[list[dict], dict]:
    """One run per seed (``<out>/seed_<n>/``) and the aggregate (``<out>/aggregate.json``)."""
    from accelerate import PartialState

    results = []
    for s in seeds:
        sub = str(Path(cfg.out) / f"seed_{s}") if cfg.out else None
        results.append(train(dataclasses.replace(cfg, seed=int(s), out=sub), objective))
    agg = aggregate(results)
    if cfg.out and PartialState().is_main_process:
        write_json(Path(cfg.out) / "aggregate.json", agg)
    return results, agg
