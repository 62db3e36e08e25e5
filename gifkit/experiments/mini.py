"""The ``mini`` experiment: GIF's whole mechanism on real data, offline, on a 2-core CPU.

Small-data scenario: 20 labelled Fashion-MNIST images per class (200 in all,
a fixed seeded sample of the official training set); the official 10,000 test
images for testing. Arms, all at the same expansion ratio (5x) and trained for
the same number of update steps (gifkit's equal-steps protocol):

========================  =====================================================================
``original``              the 200 labelled images only
``randaugment``           + 5 RandAugment copies per image (:mod:`gifkit.methods.augment`)
``vae``                   + 5 unguided samples of the mini VAE prior (:mod:`gifkit.priors.vae`)
``gif-vae``               + 5 GIF samples: S_inf + S_div, channel-wise noise (the official update)
``vae-random``            (ablation) the same random channel-wise perturbation, no guidance step
``gif-vae-inf``           (ablation) S_inf only
``gif-vae-div``           (ablation) S_div only
``gif-vae-pixel``         (ablation) S_inf + S_div with pixel-wise noise
========================  =====================================================================

Expansions run through :func:`gifkit.methods.expand` (the methods of
:mod:`gifkit.methods.vae` on profile ``mini`` and :mod:`gifkit.methods.augment`); classifiers are trained by
:func:`gifkit.train.loop.train` (a ResNet-18 adapted to 28 px, width 16, from
scratch). Each seed s expands with random seed s and trains with seed s, so the
spread over seeds covers both the expansion's and the training's randomness.

Outputs in ``out`` (default ``results/mini``): ``runs.csv`` (one row per arm x
seed), ``summary.csv`` (mean, std), ``diagnostics.csv`` (what the guidance
model sees in each expansion: p[y_hat], entropy, label agreement, diversity),
``timings.csv``, ``mini.png`` (seaborn), ``grid_<arm>.png`` and
``grid_compare.png`` (one row per class: the seed, then its variants),
``config.json`` and ``RESULTS.md``. Expansions and training runs live in
``out/work/grid`` (ignored by git), a :func:`gifkit.experiments.study.run_grid` folder that the mini
notebooks and :mod:`gifkit.experiments.guidance_study` share (:func:`grid_settings`), and are resumed when a
run is repeated. Arms are compared paired by seed with a 95 % interval (:mod:`gifkit.experiments.stats`).
"""
from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from gifkit.config import NO_HFLIP, TRAIN_PRESETS, option
from gifkit.io.files import read_json, write_csv, write_json, write_text

# torch, pandas and the models are imported inside the functions that use them.

__all__ = ["Arm", "ARMS", "QUICK_ARMS", "FULL_ARMS", "FLIP", "MiniConfig", "grid_settings", "arm_specs", "run_mini"]


@dataclass(frozen=True)
class Arm:
    """One row of the experiment: how its training data is expanded."""

    name: str
    method: str | None = None  # gifkit method name (gifkit.methods.create_method); None: the original data
    options: dict = field(default_factory=dict, hash=False)  # the method's options of the arm
    label: str = ""
    group: str = "main"

    @property
    def generative(self) -> bool:
        """Whether the arm's method is a prior with a guide (whose view of the expansion the report shows)."""
        from gifkit.methods import Imagination, get_method

        return self.method is not None and issubclass(get_method(self.method), Imagination)


ARMS: dict[str, Arm] = {a.name: a for a in [
    Arm("original", None, {}, "original (20 per class)"),
    Arm("randaugment", "randaugment", {}, "RandAugment 5x"),
    Arm("vae", "vae", {}, "unguided VAE prior 5x"),
    Arm("gif-vae", "gif-vae", {}, "GIF-VAE 5x (S_inf + S_div, channel noise)"),
    Arm("vae-random", "gif-vae", {"opt_steps": 0}, "random channel perturbation, no guidance step",
        "ablation"),
    Arm("gif-vae-inf", "gif-vae", {"w_div": 0.0}, "GIF-VAE, S_inf only", "ablation"),
    Arm("gif-vae-div", "gif-vae", {"w_inf": 0.0}, "GIF-VAE, S_div only", "ablation"),
    Arm("gif-vae-pixel", "gif-vae", {"noise": "pixel"}, "GIF-VAE, pixel-wise noise", "ablation"),
]}
QUICK_ARMS = ("original", "randaugment", "vae", "gif-vae")
FULL_ARMS = tuple(ARMS)
FLIP = {name: name not in NO_HFLIP for name in ("fashion-mnist", "mnist")}  # gifkit.config.NO_HFLIP


@dataclass
class MiniConfig:
    """Settings of one mini experiment (defaults: the full experiment; :meth:`quick` the ``make demo`` one)."""

    dataset: str = option("fashion-mnist", "the small-data scenario's dataset", flag="--data",
                          choices=("fashion-mnist", "mnist"))
    data_root: str | None = option(None, "folder with the official idx files")
    download: bool = option(False, "allow torchvision to download the data", action="store_true")
    n_per_class: int = option(20, "labelled training images per class")
    subset_seed: int = 0
    test_per_class: int | None = None  # None: the whole official test set
    ratio: int = 5
    seeds: tuple[int, ...] = option((0, 1, 2, 3, 4), "one expansion and one training run per seed and arm "
                                                     "(arms are compared paired by seed)")
    arms: tuple[str, ...] = option(FULL_ARMS, f"subset of: {' '.join(ARMS)}")
    controls: tuple[str, ...] = option(("original", "vae-random"), "arms every other arm is compared with (paired "
                                                                    "mean difference and its 95 % interval)")
    # the prior and the guidance model
    vae: str | None = None  # dataset name of the cached VAE (default: dataset) or a folder with config.json
    retrain_prior: bool = option(False, "train the VAE prior again first", action="store_true")
    guide_size: int = 112
    logit_scale: float | str = "fit"
    expand_batch: int = 20  # seeds per expansion batch (x ratio images per forward pass)
    # the classifier trained on each arm (gifkit.train; defaults: the "mini" training preset)
    arch: str = TRAIN_PRESETS["mini"]["arch"]
    steps: int = option(TRAIN_PRESETS["mini"]["steps"], "SGD steps of every training run")
    epochs: int = TRAIN_PRESETS["mini"]["epochs"]  # evaluation rounds: the steps are split over this many "epochs"
    batch_size: int = TRAIN_PRESETS["mini"]["batch_size"]
    lr: float = TRAIN_PRESETS["mini"]["lr"]
    weight_decay: float = TRAIN_PRESETS["mini"]["weight_decay"]
    out: str = option("results/mini", "results folder (--quick: results/mini/quick)")
    progress: bool = option(True, "no progress lines", flag="--no-progress", action="store_false")

    @classmethod
    def quick(cls, **kw) -> "MiniConfig":
        """One seed, the four main arms (``make demo``)."""
        return cls(**{"seeds": (0,), "arms": QUICK_ARMS, "out": "results/mini/quick", **kw})

    def __post_init__(self):
        self.seeds, self.arms = tuple(int(s) for s in self.seeds), tuple(self.arms)
        self.controls = tuple(c for c in self.controls if c in self.arms)
        unknown = [a for a in self.arms if a not in ARMS]
        if unknown:
            raise ValueError(f"unknown arm(s) {unknown}; known: {', '.join(ARMS)}")
        if not self.seeds:
            raise ValueError("give at least one seed")


# ----------------------------------------------------------------------------- settings


def _log(cfg: MiniConfig, msg: str) -> None:
    if cfg.progress:
        print(msg, flush=True)


def _data_kwargs(cfg: MiniConfig) -> dict:
    kw = {"n_per_class": cfg.n_per_class, "seed": cfg.subset_seed}
    if cfg.test_per_class is not None:
        kw["test_per_class"] = cfg.test_per_class
    if cfg.download:
        kw["download"] = True
    return kw


def grid_settings(cfg: MiniConfig | None = None) -> dict:
    """The :func:`gifkit.experiments.study.run_grid` arguments (``profile``, ``ratio``, ``train``, ``expand``)
    of a mini experiment: whoever runs a grid with them into the same folder shares its cells (expansions and
    trained runs) with ``gifkit mini``. Only the settings that differ from :class:`MiniConfig`'s defaults are
    training overrides, so default runs keep short folder names."""
    cfg = cfg or MiniConfig()
    default = MiniConfig()
    train = {k: getattr(cfg, k) for k in ("arch", "steps", "epochs", "batch_size", "lr", "weight_decay")
             if getattr(cfg, k) != getattr(default, k)}
    if _data_kwargs(cfg) != _data_kwargs(default) or cfg.data_root is not None:
        train.update(data_kwargs=_data_kwargs(cfg), data_root=cfg.data_root)
    options = {"model_id": cfg.vae or cfg.dataset, "flip": FLIP.get(cfg.dataset, True),
               "guide_size": cfg.guide_size, "logit_scale": cfg.logit_scale}
    return {"profile": "mini", "ratio": cfg.ratio, "train": train,
            "expand": {"batch_size": cfg.expand_batch, "device": "cpu", "options": options}}


def arm_specs(arms) -> list:
    """``run_grid`` method entries of mini arms: ``(label, method, options)``."""
    return [(a, ARMS[a].method or "original", dict(ARMS[a].options)) for a in arms]


# ----------------------------------------------------------------------------- the driver


def run_mini(cfg: MiniConfig) -> dict:
    """Run (or resume) the experiment and write its results into ``cfg.out``; returns a summary dict."""
    import pandas as pd
    import torch

    from gifkit.data import load_dataset
    from gifkit.experiments.mini_report import diagnostics, figure, results_md, title
    from gifkit.experiments.plots import class_grid
    from gifkit.experiments.stats import compare
    from gifkit.experiments.study import run_grid
    from gifkit.io.store import read_metadata
    from gifkit.methods.vae import prototype_guide
    from gifkit.priors.vae import get_vae, locate_vae

    t_start = time.perf_counter()
    out = Path(cfg.out)
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    write_text(work / ".gitignore", "*\n")
    kw = _data_kwargs(cfg)
    dataset, class_names = load_dataset(cfg.dataset, "train", root=cfg.data_root, profile="mini", **kw)
    test_set, _ = load_dataset(cfg.dataset, "test", root=cfg.data_root, profile="mini", **kw)
    _log(cfg, f"mini experiment: {cfg.dataset}, {len(dataset)} labelled training images "
              f"({cfg.n_per_class} per class, subset seed {cfg.subset_seed}), {len(test_set)} test images; "
              f"arms {', '.join(cfg.arms)}; seeds {list(cfg.seeds)}; {torch.get_num_threads()} CPU threads")
    t = time.perf_counter()
    uses_prior = any(ARMS[a].generative for a in cfg.arms)
    if uses_prior and cfg.vae is None:
        get_vae(cfg.dataset, retrain=cfg.retrain_prior, data_root=cfg.data_root)  # the shipped one, or trained once
    classifier = prototype_guide(class_names, dataset, cfg.guide_size, cfg.logit_scale) if uses_prior else None
    prep = time.perf_counter() - t
    if classifier is not None:
        _log(cfg, f"guidance model: {json.dumps(classifier.describe())}")

    runs = run_grid(cfg.dataset, arm_specs(cfg.arms), out=work / "grid", seeds=cfg.seeds, progress=cfg.progress,
                    **grid_settings(cfg))
    runs = runs.rename(columns={"method": "arm"})
    runs["group"] = [ARMS[a].group for a in runs["arm"]]
    runs["description"] = [ARMS[a].label for a in runs["arm"]]
    for _, r in runs.iterrows():
        _log(cfg, f"  {r['arm']:14s} seed {r['seed']}: {r['n_train']} images, {r['total_steps']} steps, "
                  f"test accuracy {r['accuracy']:.2f} %")
    summary = (runs.groupby(["arm", "group", "description"], sort=False)
               .agg(accuracy_mean=("accuracy", "mean"), accuracy_std=("accuracy", lambda v: v.std(ddof=1)
                                                                        if len(v) > 1 else 0.0),
                    macro_mean=("accuracy_macro", "mean"), best_over_epochs_mean=("best_accuracy", "mean"),
                    n_seeds=("seed", "count"), n_train=("n_train", "first"), steps=("total_steps", "first"))
               .reset_index())
    paired = compare(runs, cfg.controls, arm="arm") if cfg.controls and len(cfg.seeds) > 1 else pd.DataFrame()
    roots = {(r["arm"], int(r["seed"])): (Path(r["expanded_dir"]) if isinstance(r["expanded_dir"], str) else None)
             for _, r in runs.iterrows()}

    # what the guidance model sees (first seed's expansions; the seeds alone as a reference)
    t = time.perf_counter()
    diag_rows, meta_rows = [], []
    if classifier is not None:
        diag_rows.append({"arm": "seeds (no expansion)", **diagnostics(classifier, dataset, None, 1)})
        for name in cfg.arms:
            root = roots.get((name, cfg.seeds[0]))
            if root is not None:
                diag_rows.append({"arm": name, **diagnostics(classifier, dataset, root, cfg.ratio)})
            if root is not None and ARMS[name].generative:
                m = read_metadata(root)
                meta_rows.append({"arm": name, **{c: float(m[c].mean()) for c in
                                                  ("p_seed_yhat", "p_yhat", "entropy_seed", "entropy", "s_inf",
                                                   "s_div") if c in m.columns}})
    diag, guidance_meta = pd.DataFrame(diag_rows), pd.DataFrame(meta_rows)
    diag_seconds = time.perf_counter() - t

    # files
    write_csv(out / "runs.csv", runs.drop(columns=["run_dir", "expanded_dir"]), float_format="%.4f")
    write_csv(out / "summary.csv", summary, float_format="%.4f")
    write_csv(out / "paired.csv", paired, float_format="%.4f")
    write_csv(out / "diagnostics.csv", diag, float_format="%.4f")
    write_csv(out / "guidance_metadata.csv", guidance_meta, float_format="%.4f")
    summary.attrs["title"] = title(asdict(cfg))
    figure(summary, runs, paired, diag[diag["arm"] != "seeds (no expansion)"] if len(diag) else diag,
           out / "mini.png")
    for name in cfg.arms:
        if roots.get((name, cfg.seeds[0])) is not None:
            class_grid(dataset, {name: roots[name, cfg.seeds[0]]}, cfg.ratio).save(out / f"grid_{name}.png")
    compare = {n: roots[n, cfg.seeds[0]] for n in ("randaugment", "vae", "gif-vae") if roots.get((n, cfg.seeds[0]))}
    if compare:
        class_grid(dataset, compare, cfg.ratio, size=42).save(out / "grid_compare.png")
    total = time.perf_counter() - t_start
    tim = pd.DataFrame([{"stage": "prior + guidance model (load or train)", "seconds": prep},
                        {"stage": "expand (the runs that wrote them)", "seconds": float(runs["expand_seconds"].sum())},
                        {"stage": "train + test", "seconds": float(runs["train_seconds"].sum())},
                        {"stage": "diagnostics", "seconds": diag_seconds}, {"stage": "total (this call)", "seconds": total}])
    write_csv(out / "timings.csv", tim, float_format="%.1f")
    vae_meta = {}
    if uses_prior:
        p = Path(cfg.vae) if cfg.vae and Path(cfg.vae).is_dir() else locate_vae(cfg.vae or cfg.dataset)
        vae_meta = read_json(p / "config.json", {}, "the mini VAE prior's record") if p is not None else {}
        if vae_meta:
            vae_meta["folder"] = str(p)
    info = {"config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
            "subset_indices": [int(i) for i in getattr(dataset, "indices", [])],
            "guidance_model": classifier.describe() if classifier is not None else None,
            "vae": vae_meta, "total_seconds": total,
            "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                        "torch": torch.__version__, "python": platform.python_version(),
                        "platform": platform.platform(),
                        "load_average_at_end": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}}
    write_json(out / "config.json", info)
    write_text(out / "RESULTS.md", results_md(cfg, summary, paired, diag, guidance_meta, tim, info))
    _log(cfg, f"mini experiment done in {total / 60:.1f} min: {out}/RESULTS.md, summary.csv, paired.csv, mini.png")
    return {"summary": summary, "runs": runs, "paired": paired, "diagnostics": diag,
            "guidance_metadata": guidance_meta, "timings": tim, "total_seconds": total, "out": out}
