"""Evaluations: a trained run on a test set (micro / macro / per class, long-tail groups), the CIFAR100-C
table, the CLIP zero-shot baseline and FID (the command line is :mod:`gifkit.cli.evaluate`). The metrics are
:mod:`gifkit.train.metrics`; a run folder is read by :func:`gifkit.train.runs.load_run`. The CLIP
knowledge-distillation baseline is a training run (``gifkit train --kd clip``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from gifkit.config import get_profile
from gifkit.errors import UserError
from gifkit.io.images import open_rgb
from gifkit.io.store import read_metadata
from gifkit.models.hub import best_device, is_offline
from gifkit.train.data import Transformed
from gifkit.train.metrics import classification_metrics, shot_accuracy
from gifkit.train.runs import load_run

__all__ = ["predict", "evaluate_run", "cifar100c_table", "clip_zero_shot", "FIDUnavailable", "fid_weights_path",
           "compute_fid", "fid_expanded", "FIDFeatures", "clip_fid_features", "INCEPTION_FILE", "INCEPTION_URL"]

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + INCEPTION_FILE


# ----------------------------------------------------------------------------- models on data


def predict(model, dataset, transform, batch_size: int = 256, workers: int = 0, device=None,
            progress: bool = False, desc: str = "eval"):
    """Predicted class and label of every item: ``(preds, labels)`` as int64 arrays."""
    from torch.utils.data import DataLoader

    device = torch.device(device) if device is not None else next(model.parameters()).device
    loader = DataLoader(Transformed(dataset, transform), batch_size=batch_size, num_workers=workers,
                        pin_memory=device.type == "cuda")
    model.eval()
    preds, labels = [], []
    for x, y in tqdm(loader, desc=desc, unit="batch", disable=not progress, leave=False):
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(x.to(device, non_blocking=True))
        preds.append(logits.argmax(1).cpu())
        labels.append(y)
    return torch.cat(preds).numpy(), torch.cat(labels).numpy()


def _dl(download: bool) -> dict:
    """``download=True`` only when asked (the smoke set and plain folders take no such argument)."""
    return {"download": True} if download else {}


def _device(name: str | None):
    return torch.device(name) if name else best_device()


def evaluate_run(run: str | Path, data: str | None = None, split: str = "test", root=None, profile: str = "paper",
                 download: bool = False, long_tail: bool = False, device: str | None = None, batch_size: int = 256,
                 workers: int = 0, progress: bool = True, data_kwargs: dict | None = None) -> dict:
    """Accuracy of a trained run on ``data``/``split`` (default: the run's own dataset); with
    ``long_tail`` also many/medium/few-shot accuracy from the run's training class counts."""
    from gifkit.data import load_dataset

    dev = _device(device)
    trained = load_run(run, dev)
    model, result = trained.model, trained.result
    cfg = result["config"]
    name = data or cfg["data"]
    kwargs = data_kwargs or cfg.get("data_kwargs") or {}
    dataset, classes = load_dataset(name, split, root=root if root is not None else cfg.get("data_root"),
                                    profile=profile, **_dl(download), **kwargs)
    n_model = result["model"]["num_classes"]
    if len(classes) != n_model:
        raise ValueError(f"{name} has {len(classes)} classes but the model of {run} has {n_model}")
    preds, labels = predict(model, dataset, trained.transform, batch_size, workers, dev, progress, f"eval {name}")
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
    from gifkit.data.base import data_root
    from gifkit.data.cifar import CORRUPTIONS, read_cifar100c

    dev = _device(device)
    trained = load_run(run, dev)
    model, transform = trained.model, trained.transform
    table: dict[str, dict[str, float]] = {}
    corruptions = list(corruptions or CORRUPTIONS)
    for c in tqdm(corruptions, desc="CIFAR-100-C", disable=not progress):
        table[c] = {}
        for s in severities:
            ds = read_cifar100c(data_root(root), c, s, download)
            preds, labels = predict(model, ds, transform, batch_size, workers, dev)
            table[c][str(s)] = 100.0 * float((preds == labels).mean())
    by_sev = {str(s): float(np.mean([table[c][str(s)] for c in corruptions])) for s in severities}
    by_cor = {c: float(np.mean(list(table[c].values()))) for c in corruptions}
    return {"run": str(run), "units": "percent", "metric": "accuracy_micro", "accuracy": table,
            "average_per_corruption": by_cor, "average_per_severity": by_sev,
            "average": float(np.mean(list(by_cor.values())))}


# ----------------------------------------------------------------------------- CLIP zero-shot


def clip_zero_shot(data: str, split: str = "test", root=None, profile: str = "paper", download: bool = False,
                   device: str | None = None, batch_size: int = 256, workers: int = 0, progress: bool = True,
                   clip_name: str = "ViT-B-32", clip_pretrained: str = "openai",
                   data_kwargs: dict | None = None) -> dict:
    """The CLIP zero-shot baseline of Table 1: GIF's classifier (template "This is a photo of a {}",
    logit scale 100) with CLIP's own preprocessing; the CLIP is :func:`gifkit.models.guides.guide_clip`'s."""
    from torch.utils.data import DataLoader

    from gifkit.data import load_dataset
    from gifkit.models.guides import ZeroShotClassifier, guide_clip

    dev = _device(device)
    dataset, classes = load_dataset(data, split, root=root, profile=profile, **_dl(download), **(data_kwargs or {}))
    bundle = guide_clip(profile, dev, clip_name, clip_pretrained)
    clf = ZeroShotClassifier(bundle.model.to(dev), bundle.tokenizer, classes).to(dev)
    loader = DataLoader(Transformed(dataset, bundle.preprocess), batch_size=batch_size, num_workers=workers)
    preds, labels = [], []
    for x, y in tqdm(loader, desc=f"CLIP zero-shot {data}", unit="batch", disable=not progress, leave=False):
        with torch.no_grad():
            feats = clf.model.encode_image(x.to(dev, dtype=next(clf.model.parameters()).dtype))
        preds.append(clf.probs_from_features(feats).argmax(1).cpu())
        labels.append(y)
    metrics = classification_metrics(torch.cat(preds).numpy(), torch.cat(labels).numpy(), classes)
    return {"baseline": "clip-zero-shot", "data": data, "split": split, "units": "percent",
            "clip": "tiny_clip" if get_profile(profile).tiny else f"{clip_name} ({clip_pretrained})", **metrics}


# ----------------------------------------------------------------------------- FID


class FIDUnavailable(UserError, RuntimeError):
    """FID cannot run: torchmetrics / torch-fidelity missing, or the Inception weights are not available."""


def fid_weights_path(weights: str | Path | None = None) -> str | None:
    """The local InceptionV3 weights file for FID, or None to let torch-fidelity download it.

    Order: ``weights`` (must exist), then torch's hub cache
    (``<torch.hub.get_dir()>/checkpoints/weights-inception-2015-12-05-6726825d.pth``).
    Offline (``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE``) with neither, raise :class:`FIDUnavailable` at once.
    """
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


class FIDFeatures(torch.nn.Module):
    """A Fréchet-distance feature extractor from any image encoder, for ``compute_fid(..., feature=f, size=f.size)``
    where torch-fidelity's InceptionV3 weights are unavailable (offline, smoke and mini profiles).

    ``f(x)`` maps uint8 images ``x`` [N, 3, size, size] to ``encode(net, (x / 255 - mean) / std)`` as float64
    [N, D]; ``encode`` default: ``net(x)``. ``f.size`` is ``size``; ``f.num_features`` is D, measured on one black
    image. ``net`` is frozen (eval, no gradients) and moves with ``f``. The distances live in ``net``'s feature
    space: they are not comparable with the paper's Inception FID.
    """

    def __init__(self, net: torch.nn.Module, size: int, mean: Sequence[float] = (0.5, 0.5, 0.5),
                 std: Sequence[float] = (0.5, 0.5, 0.5), encode=None):
        super().__init__()
        self.net, self.size, self.encode = net.eval().requires_grad_(False), int(size), encode
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        param = next(net.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        self.to(device)
        with torch.no_grad():
            blank = torch.zeros(1, 3, self.size, self.size, dtype=torch.uint8, device=device)
            self.num_features = int(self(blank).shape[-1])

    def forward(self, x):  # uint8 [N, 3, S, S] -> float64 [N, D]
        x = (x.float() / 255 - self.mean) / self.std
        return (self.net(x) if self.encode is None else self.encode(self.net, x)).double()


def clip_fid_features(bundle) -> FIDFeatures:
    """:class:`FIDFeatures` of a CLIP image encoder (a :func:`gifkit.models.hub.load_clip` or
    :func:`gifkit.models.tiny.tiny_clip` bundle): CLIP image embeddings at the encoder's input size, normalised
    with the encoder's own mean and std."""
    visual = bundle.model.visual
    cfg = visual.preprocess_cfg
    size = visual.image_size[0] if isinstance(visual.image_size, (tuple, list)) else visual.image_size
    return FIDFeatures(bundle.model, size, cfg["mean"], cfg["std"], encode=lambda clip, x: clip.encode_image(x))


def fid_expanded(expanded_root: str | Path, original, **kwargs) -> float:
    """FID between an expansion folder's generated images and the original images."""
    root = Path(expanded_root)
    files = [root / f for f in read_metadata(root)["file_name"]]
    if len(files) < 2 or len(original) < 2:
        raise ValueError("FID needs at least 2 images on each side")
    fake = (open_rgb(f) for f in files)
    real = (original[i][0] for i in range(len(original)))
    return compute_fid(real, fake, **kwargs)
