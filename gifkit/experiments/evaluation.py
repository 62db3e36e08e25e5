"""Evaluations the notebooks need beyond :mod:`gifkit.train.evaluate`, for any registered dataset and the mini
profile (small helpers kept here because they serve the studies, not the training layer):

* :func:`corruption_table`: a trained run's accuracy on every ``<corruption>-<severity>`` split of a corrupted
  test set: ``cifar100c`` (the paper's Table 2 / 16, or the smoke profile's stand-in files), ``fashion-mnist-c``
  (the mini profile's). The model is loaded once; accuracy = 100 x mean(prediction == label).
* :func:`lite0_fid_features`: a Fréchet-distance feature extractor from the mini guide's backbone (ImageNet
  EfficientNet-Lite0, 1280-d pooled features), for ``compute_fid(..., feature=f, size=f.size)`` where
  torch-fidelity's InceptionV3 weights are not available (offline). Its distances measure the same thing in
  another feature space; they are not comparable with the paper's Inception FID.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

__all__ = ["corruption_table", "lite0_fid_features"]


def corruption_table(run: str | Path, data: str = "fashion-mnist-c", corruptions: Sequence[str] | None = None,
                     severities: Sequence[int] = (1, 2, 3, 4, 5), *, root=None, profile: str = "mini",
                     data_kwargs: dict | None = None, device: str | None = None, batch_size: int = 256):
    """One row per corruption x severity: ``corruption``, ``severity``, ``accuracy`` (micro, %), ``images``.
    ``corruptions`` default: every corruption of :mod:`gifkit.data.corruptions` (the stand-ins; CIFAR-100-C's
    15 are :data:`gifkit.data.cifar.CORRUPTIONS`). ``data_kwargs`` go to the loader (e.g. ``test_per_class``)."""
    import pandas as pd
    import torch

    from gifkit.data import load_dataset
    from gifkit.data.corruptions import CORRUPTIONS
    from gifkit.train.evaluate import predict
    from gifkit.train.runs import load_run

    dev = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    trained = load_run(run, dev)
    rows = []
    for c in list(corruptions or CORRUPTIONS):
        for s in severities:
            ds, _ = load_dataset(data, f"{c}-{int(s)}", root=root, profile=profile, **(data_kwargs or {}))
            preds, labels = predict(trained.model, ds, trained.transform, batch_size, 0, dev)
            rows.append({"corruption": c, "severity": int(s), "accuracy": 100.0 * float((preds == labels).mean()),
                         "images": len(labels)})
    return pd.DataFrame(rows)


def lite0_fid_features(size: int = 112, backbone=None):
    """:class:`gifkit.train.evaluate.FIDFeatures` of EfficientNet-Lite0: ``f(uint8 [N, 3, size, size]) -> float64
    [N, 1280]`` pooled features of images normalised as the mini guide normalises them, ``(x / 255 - 0.5) / 0.5``.
    ``backbone``: default :func:`gifkit.models.protoguide.load_lite0` (ImageNet weights)."""
    from gifkit.models.protoguide import load_lite0
    from gifkit.train.evaluate import FIDFeatures

    net = backbone if backbone is not None else load_lite0()
    return FIDFeatures(net, size, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5),
                       encode=lambda m, x: m.forward_head(m.forward_features(x), pre_logits=True))
