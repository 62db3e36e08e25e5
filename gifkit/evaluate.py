"""Metrics and evaluations: accuracy (micro / macro / per class), long-tail groups,
the CIFAR100-C table, the CLIP zero-shot baseline and FID; ``gifkit evaluate``.

Accuracies are in percent. *Micro* accuracy is the fraction of correct test
images (the paper's figure for natural images); *macro* accuracy is the mean
of the per-class accuracies (the paper's figure for medical images).

``gifkit evaluate`` works on a run folder written by ``gifkit train``
(``--run``), or on none for the CLIP zero-shot baseline and FID::

    gifkit evaluate --run runs/r50 --data cifar100s               # micro/macro/per class
    gifkit evaluate --run runs/r50 --cifar100c                    # 15 corruptions x 5 severities
    gifkit evaluate --run runs/lt --data cifar100lt --long-tail   # many/medium/few
    gifkit evaluate --clip-zero-shot --data pets
    gifkit evaluate --fid runs/expanded --data cifar100s          # FID(expanded, original)

The CLIP knowledge-distillation baseline is a training run: ``gifkit train --kd clip``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from tqdm.auto import tqdm

# torch and friends are imported inside the functions, so that building the CLI stays instant.

__all__ = ["classification_metrics", "shot_groups", "shot_accuracy", "predict", "load_run", "evaluate_run",
           "cifar100c_table", "clip_zero_shot", "FIDUnavailable", "fid_weights_path", "compute_fid",
           "fid_expanded", "clip_fid_features", "add_cli", "SHOT_THRESHOLDS"]

SHOT_THRESHOLDS = (100, 20)  # many-shot: > 100 train images; few-shot: < 20; medium: 20..100
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + INCEPTION_FILE


# ----------------------------------------------------------------------------- metrics


def classification_metrics(preds: Sequence[int], labels: Sequence[int], class_names: Sequence[str]) -> dict:
    """Micro and macro accuracy (%) and per-class accuracy (%; None for a class without test images)."""
    preds = np.asarray(preds, dtype=np.int64).reshape(-1)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if preds.shape != labels.shape:
        raise ValueError(f"{len(preds)} predictions for {len(labels)} labels")
    n = len(class_names)
    total = np.bincount(labels, minlength=n)
    correct = np.bincount(labels[preds == labels], minlength=n)
    per_class = [100.0 * c / t if t else None for c, t in zip(correct, total)]
    present = [a for a in per_class if a is not None]
    return {
        "accuracy_micro": 100.0 * float((preds == labels).mean()) if len(labels) else float("nan"),
        "accuracy_macro": float(np.mean(present)) if present else float("nan"),
        "n_test": int(len(labels)),
        "per_class_accuracy": {str(name): (None if a is None else float(a)) for name, a in zip(class_names, per_class)},
    }


def shot_groups(train_counts: Sequence[int], many: int = SHOT_THRESHOLDS[0], few: int = SHOT_THRESHOLDS[1]) -> dict:
    """Class indices per group: ``many`` (> 100 train images), ``medium`` (20..100), ``few`` (< 20)."""
    counts = list(train_counts)
    return {"many": [c for c, n in enumerate(counts) if n > many],
            "medium": [c for c, n in enumerate(counts) if few <= n <= many],
            "few": [c for c, n in enumerate(counts) if n < few]}


def shot_accuracy(per_class_accuracy: Sequence[float | None], train_counts: Sequence[int]) -> dict:
    """Many/medium/few-shot accuracy: the mean per-class accuracy (%) over each group's classes
    (as in the long-tail literature's ``shot_acc``); also the group sizes and thresholds."""
    groups = shot_groups(train_counts)
    acc = list(per_class_accuracy)
    out: dict = {}
    for name, cls in groups.items():
        vals = [acc[c] for c in cls if acc[c] is not None]
        out[name] = float(np.mean(vals)) if vals else None
    out["n_classes"] = {k: len(v) for k, v in groups.items()}
    out["thresholds"] = f"many > {SHOT_THRESHOLDS[0]} >= medium >= {SHOT_THRESHOLDS[1]} > few (train images per class)"
    return out


# ----------------------------------------------------------------------------- models on data


class _Transformed:
    """``(transform(image), int label)`` items of a ``(image, label)`` dataset."""

    def __init__(self, base, transform):
        self.base, self.transform = base, transform

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        image, label = self.base[i]
        return self.transform(image), int(label)


def predict(model, dataset, transform, batch_size: int = 256, workers: int = 0, device=None,
            progress: bool = False, desc: str = "eval"):
    """Predicted class and label of every item: ``(preds, labels)`` as int64 arrays."""
    import torch
    from torch.utils.data import DataLoader

    device = torch.device(device) if device is not None else next(model.parameters()).device
    loader = DataLoader(_Transformed(dataset, transform), batch_size=batch_size, num_workers=workers,
                        pin_memory=device.type == "cuda")
    model.eval()
    preds, labels = [], []
    for x, y in tqdm(loader, desc=desc, unit="batch", disable=not progress, leave=False):
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(x.to(device, non_blocking=True))
        preds.append(logits.argmax(1).cpu())
        labels.append(y)
    return torch.cat(preds).numpy(), torch.cat(labels).numpy()


def load_run(run: str | Path, device="cpu"):
    """``(model, result)`` of a ``gifkit train`` run folder (``result.json`` + ``model.safetensors``)."""
    from safetensors.torch import load_file

    from gifkit.train import create_model

    run = Path(run)
    result_file, weights = run / "result.json", run / "model.safetensors"
    if not result_file.is_file() or not weights.is_file():
        raise FileNotFoundError(f"{run} is not a finished `gifkit train` run: expected result.json and "
                                f"model.safetensors there (a multi-seed run keeps them in seed_<n>/)")
    result = json.loads(result_file.read_text())
    m = result["model"]
    model = create_model(m["arch"], m["num_classes"], pretrained=False)
    model.load_state_dict(load_file(str(weights)))
    return model.to(device).eval(), result


def _eval_transform(result: dict):
    from gifkit.train import eval_transform
    m = result["model"]
    return eval_transform(m["image_size"], m["mean"], m["std"])


def _dl(download: bool) -> dict:
    """``download=True`` only when asked (the smoke set and plain folders take no such argument)."""
    return {"download": True} if download else {}


def _device(name: str | None):
    import torch

    from gifkit.hub import best_device
    return torch.device(name) if name else best_device()


def evaluate_run(run: str | Path, data: str | None = None, split: str = "test", root=None, profile: str = "paper",
                 download: bool = False, long_tail: bool = False, device: str | None = None, batch_size: int = 256,
                 workers: int = 0, progress: bool = True, data_kwargs: dict | None = None) -> dict:
    """Accuracy of a trained run on ``data``/``split`` (default: the run's own dataset); with
    ``long_tail`` also many/medium/few-shot accuracy from the run's training class counts."""
    from gifkit.data import load_dataset

    dev = _device(device)
    model, result = load_run(run, dev)
    cfg = result["config"]
    name = data or cfg["data"]
    kwargs = data_kwargs or cfg.get("data_kwargs") or {}
    dataset, classes = load_dataset(name, split, root=root if root is not None else cfg.get("data_root"),
                                    profile=profile, **_dl(download), **kwargs)
    n_model = result["model"]["num_classes"]
    if len(classes) != n_model:
        raise ValueError(f"{name} has {len(classes)} classes but the model of {run} has {n_model}")
    preds, labels = predict(model, dataset, _eval_transform(result), batch_size, workers, dev, progress,
                            f"eval {name}")
    out = {"run": str(run), "data": name, "split": split, "units": "percent",
           **classification_metrics(preds, labels, classes)}
    if long_tail:
        counts = result["dataset"]["train_class_counts_original"]
        out["shot_accuracy"] = shot_accuracy(list(out["per_class_accuracy"].values()), counts)
    return out


def cifar100c_table(run: str | Path, root=None, corruptions: Sequence[str] | None = None,
                    severities: Sequence[int] = (1, 2, 3, 4, 5), download: bool = False, device: str | None = None,
                    batch_size: int = 256, workers: int = 0, progress: bool = True) -> dict:
    """Micro accuracy (%) of a run on every CIFAR-100-C corruption and severity, with the averages
    per corruption, per severity and overall (Table 2 is the severity-3 column)."""
    from gifkit.data.paper import CORRUPTIONS, _root, read_cifar100c

    dev = _device(device)
    model, result = load_run(run, dev)
    transform = _eval_transform(result)
    table: dict[str, dict[str, float]] = {}
    corruptions = list(corruptions or CORRUPTIONS)
    for c in tqdm(corruptions, desc="CIFAR-100-C", disable=not progress):
        table[c] = {}
        for s in severities:
            ds = read_cifar100c(_root(root), c, s, download)
            preds, labels = predict(model, ds, transform, batch_size, workers, dev)
            table[c][str(s)] = 100.0 * float((preds == labels).mean())
    by_sev = {str(s): float(np.mean([table[c][str(s)] for c in corruptions])) for s in severities}
    by_cor = {c: float(np.mean(list(table[c].values()))) for c in corruptions}
    return {"run": str(run), "units": "percent", "metric": "accuracy_micro", "accuracy": table,
            "average_per_corruption": by_cor, "average_per_severity": by_sev,
            "average": float(np.mean(list(by_cor.values())))}


# ----------------------------------------------------------------------------- CLIP zero-shot


def _clip(profile: str, device, clip_name: str = "ViT-B-32", clip_pretrained: str = "openai"):
    from gifkit import hub
    bundle = hub.tiny_clip() if profile == "smoke" else hub.load_clip(clip_name, clip_pretrained, device=device)
    return bundle


def clip_zero_shot(data: str, split: str = "test", root=None, profile: str = "paper", download: bool = False,
                   device: str | None = None, batch_size: int = 256, workers: int = 0, progress: bool = True,
                   clip_name: str = "ViT-B-32", clip_pretrained: str = "openai",
                   data_kwargs: dict | None = None) -> dict:
    """The CLIP zero-shot baseline of Table 1: GIF's classifier (template "This is a photo of a {}",
    logit scale 100) with CLIP's own preprocessing; ``profile="smoke"`` uses ``hub.tiny_clip()``."""
    import torch
    from torch.utils.data import DataLoader

    from gifkit.data import load_dataset
    from gifkit.guidance import ZeroShotClassifier

    dev = _device(device)
    dataset, classes = load_dataset(data, split, root=root, profile=profile, **_dl(download), **(data_kwargs or {}))
    bundle = _clip(profile, dev, clip_name, clip_pretrained)
    clf = ZeroShotClassifier(bundle.model.to(dev), bundle.tokenizer, classes).to(dev)
    loader = DataLoader(_Transformed(dataset, bundle.preprocess), batch_size=batch_size, num_workers=workers)
    preds, labels = [], []
    for x, y in tqdm(loader, desc=f"CLIP zero-shot {data}", unit="batch", disable=not progress, leave=False):
        with torch.no_grad():
            feats = clf.model.encode_image(x.to(dev, dtype=next(clf.model.parameters()).dtype))
        preds.append(clf.probs_from_features(feats).argmax(1).cpu())
        labels.append(y)
    metrics = classification_metrics(torch.cat(preds).numpy(), torch.cat(labels).numpy(), classes)
    return {"baseline": "clip-zero-shot", "data": data, "split": split, "units": "percent",
            "clip": "tiny_clip (smoke)" if profile == "smoke" else f"{clip_name} ({clip_pretrained})", **metrics}


# ----------------------------------------------------------------------------- FID


class FIDUnavailable(RuntimeError):
    """FID cannot run: torchmetrics / torch-fidelity missing, or the Inception weights are not available."""


def fid_weights_path(weights: str | Path | None = None) -> str | None:
    """The local InceptionV3 weights file for FID, or None to let torch-fidelity download it.

    Order: ``weights`` (must exist), then torch's hub cache
    (``<torch.hub.get_dir()>/checkpoints/weights-inception-2015-12-05-6726825d.pth``).
    Offline (``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE``) with neither, raise :class:`FIDUnavailable` at once.
    """
    import torch

    from gifkit.hub import is_offline

    cached = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE
    how = (f"Get them on a machine with internet: `curl -L -o {INCEPTION_FILE} {INCEPTION_URL}`, then pass "
           f"--fid-weights <file> (Python: weights=...) or copy the file to {cached}.")
    if weights is not None:
        if not Path(weights).expanduser().is_file():
            raise FIDUnavailable(f"FID Inception weights {str(weights)!r} do not exist. {how}")
        return str(Path(weights).expanduser())
    if cached.is_file():
        return str(cached)
    if is_offline():
        raise FIDUnavailable(f"FID needs torch-fidelity's InceptionV3 weights ({INCEPTION_FILE}); they are not in "
                             f"{cached} and offline mode is on. {how}")
    return None


def _fid_metric(feature, weights):
    try:
        from torchmetrics.image.fid import FrechetInceptionDistance
    except ImportError as e:
        raise FIDUnavailable("FID needs torchmetrics and torch-fidelity: pip install 'gifkit[fid]' "
                             "(or pip install torchmetrics torch-fidelity)") from e
    if not isinstance(feature, int):
        return FrechetInceptionDistance(feature=feature, normalize=False)
    path = fid_weights_path(weights)
    try:
        return FrechetInceptionDistance(feature=feature, normalize=False, feature_extractor_weights_path=path)
    except ModuleNotFoundError as e:
        raise FIDUnavailable(f"FID needs torch-fidelity: pip install torch-fidelity ({e})") from e
    except Exception as e:  # download errors: URLError, HTTPError, OSError, RuntimeError
        raise FIDUnavailable(f"could not load the FID Inception weights ({type(e).__name__}: {e}). "
                             f"Download {INCEPTION_URL} and pass it with --fid-weights.") from e


def _uint8_batches(images: Iterable, size: int, batch_size: int):
    import torch
    from PIL import Image
    batch = []
    for im in images:
        im = im.convert("RGB")
        if im.size != (size, size):
            im = im.resize((size, size), Image.Resampling.BICUBIC)
        batch.append(torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1))
        if len(batch) == batch_size:
            yield torch.stack(batch)
            batch = []
    if batch:
        yield torch.stack(batch)


def compute_fid(real: Iterable, fake: Iterable, feature=2048, weights=None,
                device: str | None = None, size: int = 299, batch_size: int = 50, progress: bool = False) -> float:
    """FID between two collections of PIL images through ``torchmetrics``' ``FrechetInceptionDistance``
    (torch-fidelity's InceptionV3, 2048-d pool features by default). Images are resized to
    ``size`` (bicubic) and fed as uint8. ``feature`` may be an ``nn.Module`` (custom extractor)."""
    dev = _device(device)
    metric = _fid_metric(feature, weights).to(dev)
    for flag, images in ((True, real), (False, fake)):
        for batch in tqdm(_uint8_batches(images, size, batch_size), desc="FID real" if flag else "FID fake",
                          disable=not progress, leave=False):
            metric.update(batch.to(dev), real=flag)
    return float(metric.compute())


def clip_fid_features(bundle) -> "torch.nn.Module":
    """A Frechet-distance feature extractor from a CLIP image encoder (a :func:`gifkit.hub.load_clip` or
    :func:`gifkit.hub.tiny_clip` bundle), for ``compute_fid(..., feature=f, size=f.size)``.

    Maps uint8 images [N, 3, S, S] (S = ``f.size``, the encoder's input size) to CLIP image embeddings
    [N, D] (float64; ``f.num_features`` = D), normalised with the encoder's own mean and std. Where the
    InceptionV3 weights are unavailable (offline, smoke profile) this gives a Frechet distance in CLIP space;
    its values are not comparable with the paper's Inception FID.
    """
    import torch

    visual = bundle.model.visual
    cfg = visual.preprocess_cfg

    class ClipFIDFeatures(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.clip = bundle.model.eval().requires_grad_(False)
            self.size = int(visual.image_size[0] if isinstance(visual.image_size, (tuple, list)) else visual.image_size)
            self.register_buffer("mean", torch.tensor(cfg["mean"]).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(cfg["std"]).view(1, 3, 1, 1))
            with torch.no_grad():
                self.num_features = int(self(torch.zeros(1, 3, self.size, self.size, dtype=torch.uint8)).shape[-1])

        def forward(self, x):  # uint8 [N, 3, S, S] -> [N, D]
            return self.clip.encode_image((x.float() / 255 - self.mean) / self.std).double()

    return ClipFIDFeatures()


def fid_expanded(expanded_root: str | Path, original, **kwargs) -> float:
    """FID between an expansion folder's generated images and the original images."""
    from PIL import Image

    from gifkit.store import read_metadata

    root = Path(expanded_root)
    files = [root / f for f in read_metadata(root)["file_name"]]
    if len(files) < 2 or len(original) < 2:
        raise ValueError("FID needs at least 2 images on each side")
    fake = (Image.open(f) for f in files)
    real = (original[i][0] for i in range(len(original)))
    return compute_fid(real, fake, **kwargs)


# ----------------------------------------------------------------------------- CLI


def _parse_kv(items: Sequence[str] | None) -> dict:
    from gifkit.train import parse_kv
    return parse_kv(items)


def cmd_evaluate(args) -> int:
    """``gifkit evaluate``: one of --run (+ --cifar100c / --long-tail), --clip-zero-shot, --fid."""
    try:
        return _evaluate_cli(args)
    except FIDUnavailable as e:
        import sys
        print(f"gifkit evaluate: error: {e}", file=sys.stderr)
        return 2


def _evaluate_cli(args) -> int:
    kw = dict(device=args.device, batch_size=args.batch_size, workers=args.workers, progress=not args.no_progress)
    data_kwargs = _parse_kv(args.data_arg)
    if args.fid:
        from gifkit.data import load_dataset
        if not args.data:
            raise ValueError("--fid needs --data (the original dataset) and its --split (default train)")
        split = args.split or "train"
        original, _ = load_dataset(args.data, split, root=args.data_root, profile=args.profile,
                                   **_dl(args.download), **data_kwargs)
        value = fid_expanded(args.fid, original, weights=args.fid_weights, device=args.device,
                             batch_size=min(args.batch_size, 100), progress=not args.no_progress)
        out = {"metric": "fid", "expanded": args.fid, "original": args.data, "split": split, "fid": value}
    elif args.clip_zero_shot:
        if not args.data:
            raise ValueError("--clip-zero-shot needs --data")
        out = clip_zero_shot(args.data, args.split or "test", args.data_root, args.profile, args.download,
                             data_kwargs=data_kwargs, **kw)
    elif args.run:
        if args.cifar100c:
            out = cifar100c_table(args.run, args.data_root, args.corruptions, args.severities, args.download, **kw)
        else:
            out = evaluate_run(args.run, args.data, args.split or "test", args.data_root, args.profile, args.download,
                               args.long_tail, data_kwargs=data_kwargs or None, **kw)
    else:
        raise ValueError("gifkit evaluate needs --run RUN_DIR, --clip-zero-shot or --fid EXPANDED_DIR")
    text = json.dumps(out, indent=1, allow_nan=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    _print_summary(out)
    if args.out:
        print(f"written to {args.out}")
    return 0


def _print_summary(out: dict) -> None:
    if "fid" in out:
        print(f"FID({out['expanded']}, {out['original']}/{out['split']}) = {out['fid']:.3f}")
    elif "average_per_severity" in out:
        sev = "  ".join(f"s{k} {v:.1f}" for k, v in out["average_per_severity"].items())
        print(f"CIFAR-100-C micro accuracy (%): average {out['average']:.2f}; by severity {sev}")
        for c, row in out["accuracy"].items():
            print(f"  {c:18s} " + "  ".join(f"{v:5.1f}" for v in row.values()))
    else:
        print(f"{out.get('baseline', out.get('run'))} on {out['data']}/{out['split']}: micro accuracy "
              f"{out['accuracy_micro']:.2f} %, macro accuracy {out['accuracy_macro']:.2f} % ({out['n_test']} images)")
        if "shot_accuracy" in out:
            s = out["shot_accuracy"]
            print("  many/medium/few-shot: " + " / ".join("n/a" if s[k] is None else f"{s[k]:.2f}"
                                                         for k in ("many", "medium", "few")))


def add_cli(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``evaluate`` subcommand to ``gifkit``'s parser."""
    p = sub.add_parser("evaluate", help="accuracy of a trained run, CIFAR100-C table, long-tail groups, "
                                        "CLIP zero-shot, FID")
    p.add_argument("--run", default=None, help="a `gifkit train` output folder (result.json + model.safetensors)")
    p.add_argument("--data", default=None, help="dataset (default: the run's)")
    p.add_argument("--split", default=None, help="split (default test; train for --fid)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--data-arg", action="append", default=None, metavar="KEY=VALUE",
                   help="extra dataset argument, e.g. n_per_class=8 (repeatable)")
    p.add_argument("--download", action="store_true", help="allow downloading the dataset")
    p.add_argument("--profile", default="paper", choices=["smoke", "mini", "paper"],
                   help="smoke: tiny random CLIP for --clip-zero-shot")
    p.add_argument("--cifar100c", action="store_true", help="the CIFAR100-C table (15 corruptions x severities)")
    p.add_argument("--corruptions", nargs="+", default=None)
    p.add_argument("--severities", nargs="+", type=int, default=[1, 2, 3, 4, 5])
    p.add_argument("--long-tail", action="store_true", help="many/medium/few-shot accuracy")
    p.add_argument("--clip-zero-shot", action="store_true", help="the CLIP zero-shot baseline on --data")
    p.add_argument("--fid", default=None, metavar="EXPANDED_DIR", help="FID between this expansion and --data")
    p.add_argument("--fid-weights", default=None, help="local InceptionV3 weights for FID (offline use)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--out", default=None, help="write the JSON result here")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_evaluate)
    return p

