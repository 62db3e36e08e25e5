"""The ``colab`` profile end to end: real GIF-SD on a free Colab T4, downloads included.

:func:`run_colab` runs five resumable stages and times each (``summary.json``):

1. **data**: 10 CIFAR-100 classes (the first ten by name) x 5 training images as seeds, 20 test images per class
   (``download=True`` fetches CIFAR-100, 161 MB);
2. **expand**: the arms ``sd`` and ``gif-sd`` (K = 5, the cifar100s preset: CFG 50, strength 0.9, eps 0.8, at the
   profile's 20 DDIM steps), each into ``<out>/<arm>/`` (a folder resumes after a disconnect);
3. **grids**: seeds and their variants per arm (``grid_<arm>.png``);
4. **diagnostics**: the zero-shot figures of every created image from ``metadata.csv``: CLIP's p[y_hat], entropy,
   S_inf, S_div (mean per arm, ``diagnostics.csv``);
5. **probe**: a linear probe (multinomial logistic regression, full-batch L-BFGS, weight decay 1e-3) on frozen CLIP
   image features of the original seeds, and of seeds + each arm's images, scored on the test images
   (``probe.csv``).

``out`` defaults to ``/content/drive/MyDrive/gifkit-colab`` when Google Drive is mounted (so a disconnect loses
nothing), else ``results/colab``. ``profile="smoke"`` with ``data="smoke"`` runs the same stages on tiny models in
seconds (what the tests do). Its time on a T4 is not measured yet: docs/gpu.md estimates it from public SD
throughputs and gifkit's FLOP counts (about 52-85 minutes with these defaults; the expansion's share scales with
classes x seeds per class). From a shell: ``python -m gifkit.experiments.colab [OUT] [--classes N]
[--seeds-per-class N] ...`` (``--help``).
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import torch

from gifkit.config import get_profile
from gifkit.errors import UserError
from gifkit.experiments import nbkit  # nbkit.DRIVE: the one place the Drive folder is named

__all__ = ["output_root", "class_subset", "linear_probe", "run_colab", "main"]

ARMS = ("sd", "gif-sd")


def output_root(out: str | Path | None = None) -> Path:
    """``out``, else ``<Drive>/gifkit-colab`` when Google Drive is mounted, else ``results/colab``."""
    if out is not None:
        return Path(out)
    return nbkit.DRIVE / "gifkit-colab" if nbkit.DRIVE.is_dir() else Path("results") / "colab"


class _Subset(torch.utils.data.Dataset):
    """Items ``indices`` of ``base`` with labels mapped to ``0 .. C-1``."""

    def __init__(self, base, indices, label_map):
        self.base, self.indices, self.label_map = base, list(indices), dict(label_map)
        self.targets = [self.label_map[int(base[i][1])] for i in self.indices]

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        image, label = self.base[self.indices[i]]
        return image, self.label_map[int(label)]


def class_subset(dataset, class_names, n_classes: int, per_class: int):
    """The first ``per_class`` items of each of the first ``n_classes`` classes (by label), as a dataset with
    labels ``0 .. n_classes-1``, and those classes' names."""
    from gifkit.io.datasets import dataset_labels

    labels = dataset_labels(dataset)
    keep = sorted(set(labels))[:n_classes]
    picked = [i for c in keep for i in [j for j, y in enumerate(labels) if y == c][:per_class]]
    return _Subset(dataset, picked, {c: k for k, c in enumerate(keep)}), [class_names[c] for c in keep]


def linear_probe(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                 n_classes: int, weight_decay: float = 1e-3, steps: int = 100) -> float:
    """Test accuracy of ``softmax(W x + b)`` fitted by full-batch L-BFGS on the cross-entropy plus
    ``weight_decay * |W|^2`` (features L2-normalised, float32, deterministic)."""
    x, t = torch.nn.functional.normalize(train_x.float(), dim=-1), torch.nn.functional.normalize(test_x.float(), dim=-1)
    lin = torch.nn.Linear(x.shape[1], n_classes)
    torch.nn.init.zeros_(lin.weight), torch.nn.init.zeros_(lin.bias)
    opt = torch.optim.LBFGS(lin.parameters(), max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(lin(x), train_y) + weight_decay * lin.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return float((lin(t).argmax(-1) == test_y).float().mean())


def _features(clip, images, device, batch: int = 64) -> torch.Tensor:
    from gifkit.io.images import stack01
    from gifkit.models.guides import ZeroShotClassifier

    clf = ZeroShotClassifier(clip.model, clip.tokenizer, ["x"]).to(device)
    with torch.no_grad():
        return torch.cat([clf.image_features(stack01(images[i:i + batch], clf.image_size).to(device)).cpu()
                          for i in range(0, len(images), batch)])


def run_colab(out: str | Path | None = None, *, profile: str = "colab", data: str = "cifar100",
              n_classes: int = 10, seeds_per_class: int = 5, test_per_class: int = 20, ratio: int | None = None,
              arms=ARMS, device=None, download: bool = True, progress: bool = True) -> dict:
    """The colab profile's five stages into ``out`` (see the module docstring); returns the summary."""
    from PIL import Image

    from gifkit.data import load_dataset
    from gifkit.experiments.plots import expansion_grid
    from gifkit.methods import create_method, expand
    from gifkit.io.files import write_json
    from gifkit.models.guides import guide_clip
    from gifkit.models.hub import best_device

    prof = get_profile(profile)
    ratio = ratio or prof.ratio or 5
    root = output_root(out)
    root.mkdir(parents=True, exist_ok=True)
    device = torch.device(device) if device is not None else best_device()
    seconds: dict[str, float] = {}
    kw = {"download": download} if data != "smoke" else {}

    t = time.perf_counter()
    full, names = load_dataset(data, "train", profile=profile, **kw)
    seeds, classes = class_subset(full, names, n_classes, seeds_per_class)
    test_full, test_names = load_dataset(data, "test", profile=profile, **kw)
    test, _ = class_subset(test_full, test_names, n_classes, test_per_class)
    seconds["data"] = time.perf_counter() - t

    t = time.perf_counter()
    results = {}
    for arm in arms:  # one method's models at a time
        method = create_method(arm, classes, profile=profile, device=device, preset="cifar100s")
        r = expand(method, seeds, root / arm, ratio=ratio, seed=0, batch_size=1, progress=progress)
        results[arm] = {"written": r.written, "existing": r.existing, "seconds_per_image": r.seconds_per_image}
        del method
    seconds["expand"] = time.perf_counter() - t

    t = time.perf_counter()
    for arm in arms:
        expansion_grid(seeds, root / arm, n_seeds=min(8, len(seeds))).save(root / f"grid_{arm}.png")
    seconds["grids"] = time.perf_counter() - t

    t = time.perf_counter()
    diag = []
    for arm in arms:
        with open(root / arm / "metadata.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        row = {"arm": arm, "images": len(rows)}
        for col in ("p_yhat", "entropy", "s_inf", "s_div", "p_seed_yhat", "entropy_seed"):
            vals = [float(r[col]) for r in rows if r.get(col) not in (None, "")]
            row[col] = sum(vals) / len(vals) if vals else None
        diag.append(row)
    with open(root / "diagnostics.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(diag[0]))
        w.writeheader(), w.writerows(diag)
    seconds["diagnostics"] = time.perf_counter() - t

    t = time.perf_counter()
    clip = guide_clip(profile, device)
    seed_images, seed_y = [seeds[i][0] for i in range(len(seeds))], [seeds[i][1] for i in range(len(seeds))]
    test_x = _features(clip, [test[i][0] for i in range(len(test))], device)
    test_y = torch.tensor([test[i][1] for i in range(len(test))])
    seed_x = _features(clip, seed_images, device)
    probe = [{"train": "original", "n_train": len(seed_y),
              "accuracy": linear_probe(seed_x, torch.tensor(seed_y), test_x, test_y, len(classes))}]
    for arm in arms:
        with open(root / arm / "metadata.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        made = [Image.open(root / arm / r["file_name"]).convert("RGB") for r in rows]
        x = torch.cat([seed_x, _features(clip, made, device)])
        y = torch.tensor(seed_y + [int(r["label"]) for r in rows])
        probe.append({"train": f"original + {arm}", "n_train": len(y),
                      "accuracy": linear_probe(x, y, test_x, test_y, len(classes))})
    with open(root / "probe.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(probe[0]))
        w.writeheader(), w.writerows(probe)
    seconds["probe"] = time.perf_counter() - t

    summary = {"profile": profile, "data": data, "classes": classes, "seeds_per_class": seeds_per_class,
               "ratio": ratio, "device": str(device), "arms": results, "diagnostics": diag, "probe": probe,
               "seconds": {k: round(v, 1) for k, v in seconds.items()}}
    write_json(root / "summary.json", summary)
    return summary


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def main(argv=None) -> int:
    """``python -m gifkit.experiments.colab [OUT] [options]``: :func:`run_colab` with its settings as flags; prints
    the summary as JSON."""
    from gifkit.config import PROFILE_NAMES

    p = argparse.ArgumentParser(prog="python -m gifkit.experiments.colab", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", nargs="?", default=None, help="output folder (default: <Drive>/gifkit-colab when Google "
                                                        "Drive is mounted, else results/colab)")
    p.add_argument("--profile", default="colab", choices=list(PROFILE_NAMES), help="default colab (smoke: tiny models)")
    p.add_argument("--data", default="cifar100", help="dataset name (default cifar100; smoke: the built-in set)")
    p.add_argument("--classes", type=_positive, default=10, help="classes kept, the first by label (default 10)")
    p.add_argument("--seeds-per-class", type=_positive, default=5, help="seed images per class (default 5)")
    p.add_argument("--test-per-class", type=_positive, default=20, help="test images per class (default 20)")
    p.add_argument("--ratio", type=_positive, default=None, help="K, images per seed (default: the profile's, 5)")
    p.add_argument("--arms", nargs="+", default=list(ARMS), help=f"methods to expand with (default {' '.join(ARMS)})")
    p.add_argument("--device", default=None, help="cuda, cpu, ... (default: the best available)")
    p.add_argument("--no-download", action="store_true", help="use the dataset already on disk")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    a = p.parse_args(argv)
    try:
        summary = run_colab(a.out, profile=a.profile, data=a.data, n_classes=a.classes,
                            seeds_per_class=a.seeds_per_class, test_per_class=a.test_per_class, ratio=a.ratio,
                            arms=tuple(a.arms), device=a.device, download=not a.no_download,
                            progress=not a.no_progress)
    except (UserError, ValueError, OSError) as e:  # e.g. the dataset is missing offline: one line, what to get
        print(f"gifkit colab: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
