"""Accuracy figures in percent: micro (the fraction of correct test images, the paper's figure for natural
images), macro (the mean of the per-class accuracies, its figure for medical images), per class, and the
long-tail groups (many-shot: > 100 training images, medium: 20..100, few: < 20)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["SHOT_THRESHOLDS", "classification_metrics", "shot_groups", "shot_accuracy"]

SHOT_THRESHOLDS = (100, 20)  # many-shot: > 100 train images; few-shot: < 20; medium: 20..100


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
