"""Training a classifier on original (+ expanded) data: ``gifkit train`` and :func:`train`.

The default preset ``paper`` is the paper's protocol (DESIGN.md §2, App. D.4):
ResNet-50 from scratch, 100 epochs, SGD (momentum 0.9, weight decay 1e-4 as in
the official scripts), cosine decay of lr 0.01 (0.1 for CIFAR100-S and
OrganSMNIST), batch size 128 (the official scripts'), images resized to
224 x 224 (bicubic) with random rotation (15 degrees) and horizontal flips,
ImageNet mean/std; the test images are resized the same way. The ``smoke``
preset trains timm's tiny ``test_resnet`` at 32 px for 2 epochs (seconds on a CPU).
Every knob is a field of :class:`TrainConfig` and a CLI flag.

Data: the original training split plus any expansion folders
(:class:`gifkit.store.ExpandedDataset`: same transforms; soft labels of
mixup/cutmix expansions are honoured by a soft-target cross-entropy).
``steps`` / ``steps_ratio`` fix the number of update steps (equal-update-steps
mode): e.g. ``steps_ratio=5`` trains the original set for as many steps as its
5x expansion (original + 5 copies) takes in ``epochs`` epochs. Losses:
cross-entropy or Balanced Softmax (``logits + log n_c``, Ren et al. 2020, with
``n_c`` the training images of class c); ``kd="clip"`` adds knowledge
distillation from CLIP zero-shot probabilities (the Table 1 "Distillation of
CLIP" baseline). Devices, mixed precision (bf16 on GPUs that have it, else
fp16) and multi-GPU come from accelerate (``accelerate launch -m gifkit train ...``).

A run folder holds ``result.json`` (config, final and best-over-epochs micro and
macro accuracy, per-class accuracy, history, throughput), ``model.safetensors``
and ``checkpoint/`` (resumed automatically when the config matches).
``seeds=[0, 1, 2]`` runs ``seed_<n>/`` folders and writes ``aggregate.json``
(mean and sample std).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from gifkit.evaluate import _Transformed, classification_metrics, shot_accuracy

# torch, torchvision, timm and accelerate are imported inside the functions that use them,
# so that building the `gifkit` command line stays instant.

__all__ = ["TrainConfig", "PRESETS", "ARCHS", "make_config", "load_splits", "create_model", "train_transform",
           "eval_transform", "balanced_softmax_loss", "kd_loss", "train", "train_seeds", "aggregate", "parse_kv", "add_cli"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ARCHS = {"resnet50": "resnet50", "resnext50": "resnext50_32x4d", "wideresnet50": "wide_resnet50_2",
         "wide_resnet50": "wide_resnet50_2", "mobilenetv2": "mobilenetv2_100", "tiny": "test_resnet"}
PRESETS: dict[str, dict] = {
    "paper": dict(arch="resnet50", epochs=100, batch_size=128, lr=0.01, momentum=0.9, weight_decay=1e-4,
                  image_size=224, rotation=15.0, hflip=True, workers=8),
    "smoke": dict(arch="test_resnet", epochs=2, batch_size=16, lr=0.05, momentum=0.9, weight_decay=1e-4,
                  image_size=32, rotation=15.0, hflip=True, workers=0),
}
PAPER_LR = {"cifar100s": 0.1, "organsmnist": 0.1}  # App. D.4
MACRO_DATASETS = ("pathmnist", "breastmnist", "organsmnist")  # the paper reports macro accuracy on these
# fields that do not change what is trained (a run may resume with other values)
_VOLATILE = ("out", "resume", "progress", "workers", "device", "download", "seeds")


@dataclass
class TrainConfig:
    """Everything a training run depends on (defaults: the paper's protocol)."""

    data: str = "smoke"
    data_root: str | None = None
    train_split: str = "train"
    test_split: str = "test"
    data_kwargs: dict = field(default_factory=dict)
    expanded: list[str] = field(default_factory=list)
    preset: str = "paper"
    profile: str = "paper"  # smoke: tiny CLIP for kd
    arch: str = "resnet50"
    pretrained: bool = False
    epochs: int = 100
    steps: int | None = None  # equal-update-steps mode: total optimizer steps
    steps_ratio: float | None = None  # ... or the steps of a (1 + ratio)-times larger set in `epochs` epochs
    batch_size: int = 128
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    nesterov: bool = False
    image_size: int = 224
    rotation: float = 15.0
    hflip: bool = True
    vflip: bool = False
    loss: str = "ce"  # "ce" | "balanced_softmax"
    soft_labels: bool = True
    kd: str | None = None  # None | "clip"
    kd_alpha: float = 0.5
    kd_temperature: float = 4.0
    precision: str = "auto"  # auto | no | fp16 | bf16
    seed: int = 0
    long_tail: bool | None = None  # many/medium/few accuracy; None: when the dataset has class_counts
    workers: int = 8
    device: str | None = None
    out: str | None = None
    resume: bool = True
    progress: bool = True
    download: bool = False

    def __post_init__(self):
        if self.loss not in ("ce", "balanced_softmax"):
            raise ValueError(f"loss must be 'ce' or 'balanced_softmax', got {self.loss!r}")
        if self.kd not in (None, "clip"):
            raise ValueError(f"kd must be None or 'clip', got {self.kd!r}")
        if self.precision not in ("auto", "no", "fp16", "bf16"):
            raise ValueError(f"precision must be auto, no, fp16 or bf16, got {self.precision!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be >= 1")
        if self.steps is not None and self.steps_ratio is not None:
            raise ValueError("give steps or steps_ratio, not both")


def make_config(preset: str = "paper", **overrides) -> TrainConfig:
    """A :class:`TrainConfig` from a preset, the paper's per-dataset lr, then ``overrides`` (None = keep)."""
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {preset!r}")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(TrainConfig)})
    if unknown:
        raise ValueError(f"unknown training option(s) {unknown}")
    values = {**PRESETS[preset], "preset": preset}
    if preset == "paper" and str(overrides.get("data", "")).lower() in PAPER_LR:
        values["lr"] = PAPER_LR[str(overrides["data"]).lower()]
    if preset == "smoke":
        values["profile"] = "smoke"
    values.update(overrides)
    return TrainConfig(**values)


def parse_kv(items: Sequence[str] | None) -> dict:
    """``["n_per_class=8", "size=64"]`` -> ``{"n_per_class": 8, "size": 64}`` (ints, floats, true/false, text)."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"expected KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        for cast in (int, float):
            try:
                out[k] = cast(v)
                break
            except ValueError:
                continue
        else:
            out[k] = {"true": True, "false": False}.get(v.lower(), v)
    return out


# ----------------------------------------------------------------------------- model, data, losses


def create_model(arch: str, num_classes: int, pretrained: bool = False) -> "torch.nn.Module":
    """``timm.create_model`` by alias (resnet50, resnext50, wideresnet50, mobilenetv2, tiny) or any timm name."""
    import timm

    from gifkit.mininet import register_arch

    register_arch()  # the mini profile's mini_resnet18
    name = ARCHS.get(arch, arch)
    if not timm.is_model(name):
        raise ValueError(f"unknown architecture {arch!r}: use {sorted(ARCHS)} or a timm model name")
    try:
        return timm.create_model(name, pretrained=pretrained, num_classes=num_classes)
    except Exception as e:
        if not pretrained:
            raise
        from gifkit.hub import ModelUnavailable
        raise ModelUnavailable(f"pretrained weights of timm model {name!r} are not available ({type(e).__name__}: "
                               f"{str(e).splitlines()[0] if str(e) else ''}). Get them online once (they are cached "
                               f"by huggingface_hub), or train from scratch without --pretrained.") from e


def _norm(model, pretrained: bool) -> tuple[tuple, tuple]:
    cfg = getattr(model, "pretrained_cfg", None) or {}
    if pretrained and cfg.get("mean"):
        return tuple(cfg["mean"]), tuple(cfg["std"])
    return IMAGENET_MEAN, IMAGENET_STD


def train_transform(cfg: TrainConfig, mean, std):
    """Resize to image_size x image_size (bicubic), random rotation and flips, normalise (torchvision v2)."""
    import torch
    from torchvision.transforms import InterpolationMode, v2

    ops = [v2.ToImage(), v2.Resize((cfg.image_size, cfg.image_size), InterpolationMode.BICUBIC, antialias=True)]
    if cfg.rotation:
        ops.append(v2.RandomRotation(cfg.rotation, InterpolationMode.BILINEAR))
    if cfg.hflip:
        ops.append(v2.RandomHorizontalFlip())
    if cfg.vflip:
        ops.append(v2.RandomVerticalFlip())
    return v2.Compose(ops + [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])


def eval_transform(image_size: int, mean, std):
    """Resize to image_size x image_size (bicubic) and normalise (torchvision v2)."""
    import torch
    from torchvision.transforms import InterpolationMode, v2

    return v2.Compose([v2.ToImage(), v2.Resize((image_size, image_size), InterpolationMode.BICUBIC, antialias=True),
                       v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])


def balanced_softmax_loss(logits, target, class_counts):
    """Balanced Softmax (Ren et al. 2020): cross-entropy of ``logits + log(n_c)``; ``target`` int or soft."""
    import torch
    import torch.nn.functional as F

    return F.cross_entropy(logits + torch.log(class_counts.to(logits.dtype).clamp_min(1e-12)), target)


def kd_loss(logits, teacher_probs, temperature: float):
    """Hinton's KD term ``T^2 * KL(softmax(t / T) || softmax(s / T))`` with teacher logits ``t = log p``."""
    import torch
    import torch.nn.functional as F

    t = F.log_softmax(torch.log(teacher_probs.float().clamp_min(1e-12)) / temperature, dim=-1)
    s = F.log_softmax(logits.float() / temperature, dim=-1)
    return temperature ** 2 * F.kl_div(s, t, log_target=True, reduction="batchmean")


class EpochSampler:
    """A permutation per epoch from a generator seeded by ``(seed, "shuffle", epoch)`` (exact resume)."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        import torch

        from gifkit.rng import derive_seed
        g = torch.Generator().manual_seed(derive_seed(self.seed, "shuffle", self.epoch))
        return iter(torch.randperm(self.n, generator=g).tolist())


def _cosine(step: int, total: int, lr: float) -> float:
    return 0.5 * lr * (1.0 + math.cos(math.pi * min(step, total) / max(total, 1)))


def _precision(cfg: TrainConfig, cuda: bool) -> str:
    import torch
    if cfg.precision != "auto":
        return cfg.precision if cuda or cfg.precision == "no" else "no"
    if not cuda:
        return "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def _config_key(cfg: TrainConfig) -> dict:
    return {k: v for k, v in asdict(cfg).items() if k not in _VOLATILE}


def _write_json(path: Path, obj) -> None:
    from gifkit.store import write_json

    write_json(path, obj)


def _teacher(cfg: TrainConfig, classes: list[str], device):
    from gifkit import hub
    from gifkit.guidance import ZeroShotClassifier

    bundle = hub.tiny_clip() if cfg.profile == "smoke" else hub.load_clip(device=device)
    return ZeroShotClassifier(bundle.model, bundle.tokenizer, classes).to(device)


# ----------------------------------------------------------------------------- the loop


def save_checkpoint(acc, ckpt: Path | None, state: dict) -> None:
    """End of an epoch: accelerate's state into ``ckpt`` and, from the main process, ``state.json`` (epoch,
    history, config) beside it, then wait for every process. ``ckpt=None``: no checkpoints."""
    if ckpt is None:
        return
    acc.save_state(str(ckpt))
    if acc.is_main_process:
        _write_json(ckpt / "state.json", state)
    acc.wait_for_everyone()


def load_splits(cfg: TrainConfig) -> tuple:
    """``(original training set, test set, class names)`` of ``cfg.data``, checked to share their classes and to
    be different splits."""
    from gifkit.data import load_dataset

    data_args = dict(root=cfg.data_root, profile=cfg.profile, **({"download": True} if cfg.download else {}),
                     **cfg.data_kwargs)
    original, classes = load_dataset(cfg.data, cfg.train_split, **data_args)
    test_set, test_classes = load_dataset(cfg.data, cfg.test_split, **data_args)
    if list(test_classes) != list(classes):
        raise ValueError(f"{cfg.data}: the {cfg.train_split} and {cfg.test_split} splits have different classes")
    if getattr(original, "samples", None) is not None and getattr(test_set, "samples", None) == original.samples:
        raise ValueError(f"{cfg.data}: the {cfg.test_split!r} split is the {cfg.train_split!r} split (a folder "
                         f"without <root>/{cfg.test_split}/?); give a separate test split")
    return original, test_set, list(classes)


def train(cfg: TrainConfig) -> dict:
    """Train and evaluate one run; returns (and writes to ``cfg.out``) the result dict."""
    import torch
    import torch.nn.functional as F
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from torch.utils.data import DataLoader

    from gifkit.store import ExpandedDataset

    out = Path(cfg.out) if cfg.out else None
    if out is not None and cfg.resume and (out / "result.json").is_file():
        done = json.loads((out / "result.json").read_text())
        if _config_key(TrainConfig(**done["config"])) == _config_key(cfg):
            return done  # finished already
    cuda = torch.cuda.is_available() and cfg.device != "cpu"
    acc = Accelerator(mixed_precision=_precision(cfg, cuda), cpu=not cuda)
    set_seed(cfg.seed)
    main = acc.is_main_process

    original, test_set, classes = load_splits(cfg)
    model = create_model(cfg.arch, len(classes), cfg.pretrained)
    mean, std = _norm(model, cfg.pretrained)
    train_set = ExpandedDataset(original, cfg.expanded, transform=train_transform(cfg, mean, std),
                                soft_labels=cfg.soft_labels)
    if train_set.class_names is not None and list(train_set.class_names) != list(classes):
        raise ValueError(f"the expansions' classes.json differs from {cfg.data}'s classes: "
                         f"were they made from another dataset?")
    orig_counts = np.bincount(train_set.targets[:len(original)], minlength=len(classes)).tolist()
    train_counts = torch.tensor(np.bincount(train_set.targets, minlength=len(classes)), dtype=torch.float32)

    loader = DataLoader(train_set, batch_size=cfg.batch_size, sampler=EpochSampler(len(train_set), cfg.seed),
                        num_workers=cfg.workers, pin_memory=cuda, persistent_workers=cfg.workers > 0,
                        drop_last=len(train_set) > cfg.batch_size)
    test_loader = DataLoader(_Transformed(test_set, eval_transform(cfg.image_size, mean, std)),
                             batch_size=max(cfg.batch_size, 64), num_workers=cfg.workers, pin_memory=cuda)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                weight_decay=cfg.weight_decay, nesterov=cfg.nesterov)
    model, optimizer, loader, test_loader = acc.prepare(model, optimizer, loader, test_loader)
    teacher = _teacher(cfg, classes, acc.device) if cfg.kd else None
    mean_t = torch.tensor(mean, device=acc.device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=acc.device).view(1, 3, 1, 1)
    train_counts = train_counts.to(acc.device)

    if cfg.steps is not None:
        total_steps = int(cfg.steps)
    elif cfg.steps_ratio is not None:
        n = round(len(original) * (1 + cfg.steps_ratio))
        total_steps = cfg.epochs * max(1, n // (cfg.batch_size * acc.num_processes))
    else:
        total_steps = cfg.epochs * len(loader)
    per_epoch = [total_steps // cfg.epochs + (e < total_steps % cfg.epochs) for e in range(cfg.epochs)]

    history: list[dict] = []
    start_epoch = 0
    ckpt = out / "checkpoint" if out is not None else None
    if ckpt is not None and cfg.resume and (ckpt / "state.json").is_file():
        state = json.loads((ckpt / "state.json").read_text())
        if state["config"] != json.loads(json.dumps(_config_key(cfg))):
            diff = sorted(k for k in state["config"] if state["config"][k] != _config_key(cfg).get(k))
            raise ValueError(f"{ckpt} was written with other settings ({', '.join(diff)} differ); "
                             f"use another --out or --no-resume")
        acc.load_state(str(ckpt))
        start_epoch, history = state["epoch"], state["history"]
        if main:
            print(f"resuming {out} after epoch {start_epoch}")

    step = sum(per_epoch[:start_epoch])
    train_images, train_seconds = 0, 0.0
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        loss_sum = torch.zeros((), device=acc.device)
        bar = tqdm(total=per_epoch[epoch] * cfg.batch_size * acc.num_processes, unit="img", unit_scale=True,
                   desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not (cfg.progress and main), leave=False)
        _sync(acc.device)
        t0 = time.perf_counter()
        seen = 0
        for x, y in _batches(loader, epoch, per_epoch[epoch]):
            for g in optimizer.param_groups:
                g["lr"] = _cosine(step, total_steps, cfg.lr)
            with acc.autocast():
                logits = model(x)
                if cfg.loss == "balanced_softmax":
                    loss = balanced_softmax_loss(logits.float(), y, train_counts)
                else:
                    loss = F.cross_entropy(logits.float(), y)
                if teacher is not None:
                    with torch.no_grad():
                        p_t = teacher.probs((x.float() * std_t + mean_t).clamp(0, 1))
                    loss = (1 - cfg.kd_alpha) * loss + cfg.kd_alpha * kd_loss(logits, p_t, cfg.kd_temperature)
            acc.backward(loss)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            loss_sum += loss.detach()
            step += 1
            seen += x.shape[0] * acc.num_processes
            bar.update(x.shape[0] * acc.num_processes)
        _sync(acc.device)
        seconds = time.perf_counter() - t0
        bar.close()
        train_images += seen
        train_seconds += seconds
        metrics = _evaluate(model, test_loader, acc, classes)
        record = {"epoch": epoch + 1, "steps": step, "lr_end": _cosine(step, total_steps, cfg.lr),
                  "train_loss": float(acc.reduce(loss_sum, "sum")) / max(per_epoch[epoch] * acc.num_processes, 1),
                  "test_accuracy_micro": metrics["accuracy_micro"], "test_accuracy_macro": metrics["accuracy_macro"],
                  "train_images_per_s": seen / seconds if seconds > 0 else float("nan")}
        history.append(record)
        if main and cfg.progress:
            tqdm.write(f"epoch {epoch + 1}/{cfg.epochs}: loss {record['train_loss']:.4f}, test micro "
                       f"{metrics['accuracy_micro']:.2f} % / macro {metrics['accuracy_macro']:.2f} %, "
                       f"{record['train_images_per_s']:.1f} img/s")
        save_checkpoint(acc, ckpt, {"epoch": epoch + 1, "history": history, "config": _config_key(cfg)})

    if start_epoch >= cfg.epochs:  # resumed after the last epoch
        metrics = _evaluate(model, test_loader, acc, classes)
    result = _result(cfg, classes, original, train_set, orig_counts, total_steps, history, metrics,
                     acc.unwrap_model(model), mean, std, train_images, train_seconds, acc)
    if out is not None and main:
        from safetensors.torch import save_file
        out.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in acc.unwrap_model(model).state_dict().items()}
        save_file(state, str(out / "model.safetensors"))
        _write_json(out / "result.json", result)
    acc.wait_for_everyone()
    return result


def _batches(loader, epoch: int, n: int):
    """``n`` batches for ``epoch``: as many passes over the loader as needed, each reshuffled
    (sampler epoch ``1000 * epoch + pass``); one pass of ``len(loader)`` batches in the normal mode."""
    done, passes = 0, 0
    while done < n:
        loader.set_epoch(1000 * epoch + passes)
        passes += 1
        before = done
        for batch in loader:
            yield batch
            done += 1
            if done == n:
                return
        if done == before:
            raise ValueError("the training data yields no batch")


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


def _result(cfg, classes, original, train_set, orig_counts, total_steps, history, metrics, model, mean, std,
            train_images, train_seconds, acc) -> dict:
    from gifkit import __version__

    primary = "accuracy_macro" if cfg.data.lower() in MACRO_DATASETS else "accuracy_micro"
    best = {}
    for key in ("accuracy_micro", "accuracy_macro"):
        col = [h[f"test_{key}"] for h in history]
        i = int(np.nanargmax(col)) if col and not all(math.isnan(c) for c in col) else None
        best[key] = {"value": col[i], "epoch": history[i]["epoch"]} if i is not None else None
    final = {"epoch": cfg.epochs, **metrics}
    long_tail = cfg.long_tail if cfg.long_tail is not None else hasattr(original, "class_counts")
    if long_tail:
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
                    "n_train_total": len(train_set), "n_test": metrics["n_test"], "expanded": list(cfg.expanded),
                    "train_class_counts_original": orig_counts, "soft_labels": bool(getattr(train_set, "soft", False))},
        "model": {"arch": cfg.arch, "timm_name": ARCHS.get(cfg.arch, cfg.arch), "num_classes": len(classes),
                  "image_size": cfg.image_size, "mean": list(mean), "std": list(std),
                  "parameters": sum(p.numel() for p in model.parameters())},
        "total_steps": total_steps,
        "config": asdict(cfg),
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


def train_seeds(cfg: TrainConfig, seeds: Sequence[int]) -> tuple[list[dict], dict]:
    """One run per seed (``<out>/seed_<n>/``) and the aggregate (``<out>/aggregate.json``)."""
    results = []
    for s in seeds:
        sub = str(Path(cfg.out) / f"seed_{s}") if cfg.out else None
        results.append(train(dataclasses.replace(cfg, seed=int(s), out=sub)))
    agg = aggregate(results)
    from accelerate import PartialState

    if cfg.out and PartialState().is_main_process:
        _write_json(Path(cfg.out) / "aggregate.json", agg)
    return results, agg


# ----------------------------------------------------------------------------- CLI


def cmd_train(args) -> int:
    """``gifkit train``: build the config from preset + flags, run every seed, print a summary."""
    preset = args.preset or ("smoke" if args.profile == "smoke" else "paper")
    loss = args.loss.replace("-", "_") if args.loss else None
    cfg = make_config(preset, data=args.data, data_root=args.data_root, train_split=args.split,
                      test_split=args.test_split, data_kwargs=parse_kv(args.data_arg) or None,
                      expanded=args.expanded or None, profile=args.profile, arch=args.arch,
                      pretrained=args.pretrained or None, epochs=args.epochs, steps=args.steps,
                      steps_ratio=args.steps_ratio, batch_size=args.batch_size, lr=args.lr, momentum=args.momentum,
                      weight_decay=args.weight_decay, nesterov=args.nesterov, image_size=args.image_size,
                      rotation=args.rotation, hflip=args.hflip, vflip=args.vflip, loss=loss,
                      soft_labels=False if args.hard_labels else None, kd=args.kd, kd_alpha=args.kd_alpha,
                      kd_temperature=args.kd_temperature, precision=args.precision, long_tail=args.long_tail or None,
                      workers=args.workers, device=args.device, out=args.out, resume=not args.no_resume,
                      progress=not args.no_progress, download=args.download or None)
    if args.amst:  # DreamDA's Asymmetric Multi-head Self-Training on the --expanded images (gifkit.amst)
        from gifkit.amst import AMSTConfig, train_amst_seeds

        amst = {"heads": args.amst_heads, "threshold": args.amst_threshold, "warmup_epochs": args.amst_warmup_epochs}
        results, agg = train_amst_seeds(cfg, args.seeds, AMSTConfig(**{k: v for k, v in amst.items() if v is not None}))
    else:
        results, agg = train_seeds(cfg, args.seeds)
    from accelerate import PartialState

    if not PartialState().is_main_process:
        return 0
    for r in results:
        f, b = r["final"], r["best_over_epochs"]
        print(f"seed {r['config']['seed']}: final micro {f['accuracy_micro']:.2f} % / macro "
              f"{f['accuracy_macro']:.2f} %; best over epochs micro {b['accuracy_micro']['value']:.2f} % "
              f"(epoch {b['accuracy_micro']['epoch']}); {r['throughput']['train_images_per_s']:.1f} train img/s")
    if len(results) > 1:
        for name in ("final.accuracy_micro", "final.accuracy_macro"):
            m = agg["metrics"][name]
            print(f"{name}: {m['mean']:.2f} +- {m['std']:.2f} % over seeds {agg['seeds']}")
    if cfg.out:
        print(f"results in {cfg.out} (seed_<n>/result.json, aggregate.json)")
    return 0


def add_cli(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``train`` subcommand to ``gifkit``'s parser."""
    p = sub.add_parser("train", help="train a classifier on original (+ expanded) data (paper protocol by default)")
    p.add_argument("--data", required=True, help="dataset name or image folder")
    p.add_argument("--data-root", default=None)
    p.add_argument("--split", default=None, help="training split (default train)")
    p.add_argument("--test-split", default=None, help="test split (default test)")
    p.add_argument("--data-arg", action="append", default=None, metavar="KEY=VALUE",
                   help="extra dataset argument, e.g. n_per_class=64 (repeatable)")
    p.add_argument("--download", action="store_true", help="allow downloading the dataset")
    p.add_argument("--expanded", nargs="+", default=None, help="expansion folder(s) added to the training data")
    p.add_argument("--out", required=True, help="run folder (seed_<n>/ per seed, aggregate.json); resumes")
    p.add_argument("--preset", default=None, choices=sorted(PRESETS),
                   help="paper (default) or smoke (default with --profile smoke)")
    p.add_argument("--profile", default="paper", choices=["smoke", "mini", "paper"])
    p.add_argument("--arch", default=None, help=f"{', '.join(ARCHS)} or any timm model name")
    p.add_argument("--pretrained", action="store_true", help="start from timm's pretrained weights")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--steps", type=int, default=None, help="equal-update-steps mode: total optimizer steps")
    p.add_argument("--steps-ratio", type=float, default=None,
                   help="equal-update-steps mode: as many steps as a set (1 + R) times the original takes")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--momentum", type=float, default=None)
    p.add_argument("--weight-decay", type=float, default=None)
    p.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--rotation", type=float, default=None, help="max random rotation in degrees (0: none)")
    p.add_argument("--hflip", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--vflip", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--loss", default=None, choices=["ce", "balanced-softmax"])
    p.add_argument("--hard-labels", action="store_true", help="ignore the soft labels of mixup/cutmix expansions")
    p.add_argument("--kd", default=None, choices=["clip"], help="distil CLIP zero-shot probabilities (baseline)")
    p.add_argument("--kd-alpha", type=float, default=None)
    p.add_argument("--kd-temperature", type=float, default=None)
    p.add_argument("--precision", default=None, choices=["auto", "no", "fp16", "bf16"])
    p.add_argument("--long-tail", action="store_true", help="report many/medium/few-shot accuracy")
    p.add_argument("--workers", type=int, default=None, help="data loader processes")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per seed, then mean and std")
    p.add_argument("--device", default=None, help="cpu to force the CPU")
    p.add_argument("--no-resume", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--amst", action="store_true", help="DreamDA's Asymmetric Multi-head Self-Training: the --expanded "
                   "images get pseudo-labels from auxiliary heads (gifkit.amst)")
    p.add_argument("--amst-heads", type=int, default=None, help="AMST auxiliary heads (default 4)")
    p.add_argument("--amst-threshold", type=float, default=None, help="AMST pseudo-label confidence (default 0.8)")
    p.add_argument("--amst-warmup-epochs", type=int, default=None, help="AMST real-only epochs (default 10%%)")
    p.set_defaults(func=cmd_train)
    return p
