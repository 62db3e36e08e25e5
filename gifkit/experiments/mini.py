"""The ``mini`` experiment: GIF's whole mechanism on real data, offline, on a 2-core CPU.

Small-data scenario: 20 labelled Fashion-MNIST images per class (200 in all,
a fixed seeded sample of the official training set); the official 10,000 test
images for testing. Arms, all at the same expansion ratio (5x) and trained for
the same number of update steps:

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

Expansions run through :func:`gifkit.core.imagine.expand` (models from
:func:`gifkit.methods.build_models` with profile ``mini``) and
:func:`gifkit.methods.augment.expand_augment`; classifiers are trained by
:func:`gifkit.train.loop.train` (a ResNet-18 adapted to 28 px, width 16, from
scratch). Each seed s expands with random seed s and trains with seed s, so the
spread over seeds covers both the expansion's and the training's randomness.

Outputs in ``out`` (default ``results/mini``): ``runs.csv`` (one row per arm x
seed), ``summary.csv`` (mean, std), ``diagnostics.csv`` (what the guidance
model sees in each expansion: p[y_hat], entropy, label agreement, diversity),
``timings.csv``, ``mini.png`` (seaborn), ``grid_<arm>.png`` and
``grid_compare.png`` (one row per class: the seed, then its variants),
``config.json`` and ``RESULTS.md``. Expansions and training runs live in
``out/work/`` (ignored by git) and are resumed when a run is repeated.
"""
from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from gifkit.config import TRAIN_PRESETS, option
from gifkit.io.files import read_json, write_csv, write_json, write_text
from gifkit.train.config import make_config

# torch, pandas and the models are imported inside the functions that use them.

__all__ = ["Arm", "ARMS", "QUICK_ARMS", "FULL_ARMS", "FLIP", "MiniConfig", "expand_arm", "train_config", "run_mini"]


@dataclass(frozen=True)
class Arm:
    """One row of the experiment: how its training data is expanded."""

    name: str
    kind: str  # "original" | "augment" | "prior"
    method: str | None = None  # gifkit method name (build_models / expand_augment)
    guidance: dict = field(default_factory=dict, hash=False)  # GuidanceConfig overrides of the arm
    label: str = ""
    group: str = "main"


ARMS: dict[str, Arm] = {a.name: a for a in [
    Arm("original", "original", None, {}, "original (20 per class)"),
    Arm("randaugment", "augment", "randaugment", {}, "RandAugment 5x"),
    Arm("vae", "prior", "vae", {}, "unguided VAE prior 5x"),
    Arm("gif-vae", "prior", "gif-vae", {}, "GIF-VAE 5x (S_inf + S_div, channel noise)"),
    Arm("vae-random", "prior", "gif-vae", {"opt_steps": 0}, "random channel perturbation, no guidance step",
        "ablation"),
    Arm("gif-vae-inf", "prior", "gif-vae", {"w_div": 0.0}, "GIF-VAE, S_inf only", "ablation"),
    Arm("gif-vae-div", "prior", "gif-vae", {"w_inf": 0.0}, "GIF-VAE, S_div only", "ablation"),
    Arm("gif-vae-pixel", "prior", "gif-vae", {"noise": "pixel"}, "GIF-VAE, pixel-wise noise", "ablation"),
]}
QUICK_ARMS = ("original", "randaugment", "vae", "gif-vae")
FULL_ARMS = tuple(ARMS)
FLIP = {"fashion-mnist": True, "mnist": False}  # horizontal flips keep a garment's class, not a digit's


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
    seeds: tuple[int, ...] = option((0, 1, 2), "one expansion and one training run per seed and arm")
    arms: tuple[str, ...] = option(FULL_ARMS, f"subset of: {' '.join(ARMS)}")
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
        unknown = [a for a in self.arms if a not in ARMS]
        if unknown:
            raise ValueError(f"unknown arm(s) {unknown}; known: {', '.join(ARMS)}")
        if not self.seeds:
            raise ValueError("give at least one seed")


# ----------------------------------------------------------------------------- steps


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


def _build_prior_models(cfg: MiniConfig, method: str, dataset, class_names, cache: dict):
    """build_models once per method (the classifier is shared: built once from the labelled set)."""
    from gifkit.methods import build_models

    if method not in cache:
        prior, classifier, g, params = build_models(
            method, "mini", class_names, device="cpu", support=dataset, model_id=cfg.vae or cfg.dataset,
            flip=FLIP.get(cfg.dataset, True), guide_size=cfg.guide_size, logit_scale=cfg.logit_scale,
            retrain=cfg.retrain_prior and not cache)
        if "classifier" in cache:
            classifier = cache["classifier"]
        cache["classifier"] = classifier
        cache[method] = (prior, g, params)
    prior, g, params = cache[method]
    return prior, cache["classifier"], g, params


def expand_arm(cfg: MiniConfig, arm: Arm, seed: int, dataset, class_names, cache: dict, work: Path):
    """Write the arm's expansion for ``seed`` (resumes); returns (folder, ExpandResult)."""
    from gifkit.core.imagine import GuidanceConfig, expand
    from gifkit.methods.augment import expand_augment

    out = work / "expansions" / arm.name / f"seed_{seed}"
    if arm.kind == "augment":
        res = expand_augment(dataset, class_names, out, method=arm.method, ratio=cfg.ratio, seed=seed,
                             batch_size=cfg.expand_batch, progress=cfg.progress)
        return out, res
    prior, classifier, g, params = _build_prior_models(cfg, arm.method, dataset, class_names, cache)
    if g is not None and arm.guidance:
        g = GuidanceConfig(**{**asdict(g), **arm.guidance})
    res = expand(dataset, class_names, prior, classifier, out, ratio=cfg.ratio, method=arm.name, guidance=g,
                 seed=seed, batch_size=cfg.expand_batch, params=params, progress=cfg.progress)
    return out, res


def train_config(cfg: MiniConfig, seed: int, expanded: Path | None, out: Path):
    """The :class:`gifkit.train.config.TrainConfig` of one arm x seed (the ``mini`` training preset, same steps
    for every arm)."""
    return make_config("mini", data=cfg.dataset, data_root=cfg.data_root, data_kwargs=_data_kwargs(cfg),
                       expanded=[str(expanded)] if expanded else [], arch=cfg.arch, epochs=cfg.epochs,
                       steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr, weight_decay=cfg.weight_decay,
                       hflip=FLIP.get(cfg.dataset, True), seed=seed, out=str(out), progress=False)


# ----------------------------------------------------------------------------- the driver


def run_mini(cfg: MiniConfig) -> dict:
    """Run (or resume) the experiment and write its results into ``cfg.out``; returns a summary dict."""
    import pandas as pd
    import torch

    from gifkit.data import load_dataset
    from gifkit.experiments.mini_report import diagnostics, figure, results_md
    from gifkit.experiments.plots import class_grid
    from gifkit.io.store import read_metadata
    from gifkit.priors.vae import cache_dir
    from gifkit.train.loop import train

    t_start = time.perf_counter()
    timings: list[dict] = []
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

    cache: dict = {}
    if any(ARMS[a].kind == "prior" for a in cfg.arms):
        t = time.perf_counter()
        _build_prior_models(cfg, next(ARMS[a].method for a in cfg.arms if ARMS[a].kind == "prior"), dataset,
                            class_names, cache)
        timings.append({"stage": "prior + guidance model (load or train)", "arm": "", "seed": "",
                        "seconds": time.perf_counter() - t})
        _log(cfg, f"guidance model: {json.dumps(cache['classifier'].describe())}")

    roots: dict[tuple[str, int], Path | None] = {}
    for seed in cfg.seeds:
        for name in cfg.arms:
            arm = ARMS[name]
            if arm.kind == "original":
                roots[name, seed] = None
                continue
            t = time.perf_counter()
            root, res = expand_arm(cfg, arm, seed, dataset, class_names, cache, work)
            roots[name, seed] = root
            timings.append({"stage": "expand", "arm": name, "seed": seed, "seconds": time.perf_counter() - t})
            _log(cfg, f"[expand] {name} seed {seed}: {res.written} written, {res.existing} already there, "
                      f"{time.perf_counter() - t:.1f} s")

    rows = []
    for seed in cfg.seeds:
        for name in cfg.arms:
            arm = ARMS[name]
            t = time.perf_counter()
            r = train(train_config(cfg, seed, roots[name, seed], work / "runs" / name / f"seed_{seed}"))
            dt = time.perf_counter() - t
            timings.append({"stage": "train + test", "arm": name, "seed": seed, "seconds": dt})
            rows.append({"arm": name, "group": arm.group, "description": arm.label, "seed": seed,
                         "accuracy": r["final"]["accuracy_micro"], "accuracy_macro": r["final"]["accuracy_macro"],
                         "best_over_epochs": r["best_over_epochs"]["accuracy_micro"]["value"],
                         "n_train": r["dataset"]["n_train_total"], "steps": r["total_steps"],
                         "train_images_per_s": r["throughput"]["train_images_per_s"]})
            _log(cfg, f"[train] {name} seed {seed}: {r['dataset']['n_train_total']} images, {r['total_steps']} steps, "
                      f"test accuracy {r['final']['accuracy_micro']:.2f} % ({dt:.1f} s)")
    runs = pd.DataFrame(rows)
    summary = (runs.groupby(["arm", "group", "description"], sort=False)
               .agg(accuracy_mean=("accuracy", "mean"), accuracy_std=("accuracy", lambda v: v.std(ddof=1)
                                                                        if len(v) > 1 else 0.0),
                    macro_mean=("accuracy_macro", "mean"), best_over_epochs_mean=("best_over_epochs", "mean"),
                    n_seeds=("seed", "count"), n_train=("n_train", "first"), steps=("steps", "first"))
               .reset_index())

    # what the guidance model sees (first seed's expansions; the seeds alone as a reference)
    t = time.perf_counter()
    diag_rows = []
    classifier = cache.get("classifier")
    if classifier is not None:
        diag_rows.append({"arm": "seeds (no expansion)", **{f"{k}": v for k, v in
                                                          diagnostics(classifier, dataset, None, 1).items()}})
        for name in cfg.arms:
            if roots.get((name, cfg.seeds[0])) is not None:
                diag_rows.append({"arm": name, **diagnostics(classifier, dataset, roots[name, cfg.seeds[0]],
                                                             cfg.ratio)})
    diag = pd.DataFrame(diag_rows)
    meta_rows = []
    for name in cfg.arms:
        root = roots.get((name, cfg.seeds[0]))
        if root is not None and ARMS[name].kind == "prior":
            m = read_metadata(root)
            meta_rows.append({"arm": name, **{c: float(m[c].mean()) for c in
                                              ("p_seed_yhat", "p_yhat", "entropy_seed", "entropy", "s_inf", "s_div")
                                              if c in m.columns}})
    guidance_meta = pd.DataFrame(meta_rows)
    timings.append({"stage": "diagnostics", "arm": "", "seed": "", "seconds": time.perf_counter() - t})

    # files
    t = time.perf_counter()
    write_csv(out / "runs.csv", runs, float_format="%.4f")
    write_csv(out / "summary.csv", summary, float_format="%.4f")
    write_csv(out / "diagnostics.csv", diag, float_format="%.4f")
    write_csv(out / "guidance_metadata.csv", guidance_meta, float_format="%.4f")
    title = f"{cfg.dataset}, {cfg.n_per_class}/class, {cfg.ratio}x, {cfg.steps} steps, {len(cfg.seeds)} seed(s)"
    summary.attrs["title"] = title
    figure(summary, runs, diag[diag["arm"] != "seeds (no expansion)"] if len(diag) else diag, out / "mini.png")
    for name in cfg.arms:
        root = roots.get((name, cfg.seeds[0]))
        if root is not None:
            class_grid(dataset, {name: root}, cfg.ratio).save(out / f"grid_{name}.png")
    compare = {n: roots[n, cfg.seeds[0]] for n in ("randaugment", "vae", "gif-vae") if roots.get((n, cfg.seeds[0]))}
    if compare:
        class_grid(dataset, compare, cfg.ratio, size=42).save(out / "grid_compare.png")
    timings.append({"stage": "figures", "arm": "", "seed": "", "seconds": time.perf_counter() - t})
    total = time.perf_counter() - t_start
    timings.append({"stage": "total", "arm": "", "seed": "", "seconds": total})
    tim = pd.DataFrame(timings)
    write_csv(out / "timings.csv", tim, float_format="%.1f")

    vae_meta = {}
    prior_entry = next((v for k, v in cache.items() if k not in ("classifier",)), None)
    if prior_entry is not None:
        p = Path(cfg.vae) if cfg.vae and Path(cfg.vae).is_dir() else cache_dir(cfg.vae or cfg.dataset)
        vae_meta = read_json(p / "config.json", {}, "the mini VAE prior's record")
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
    write_text(out / "RESULTS.md", results_md(cfg, summary, diag, guidance_meta, tim, info))
    _log(cfg, f"mini experiment done in {total / 60:.1f} min: {out}/RESULTS.md, summary.csv, mini.png, grid_*.png")
    return {"summary": summary, "runs": runs, "diagnostics": diag, "guidance_metadata": guidance_meta,
            "timings": tim, "total_seconds": total, "out": out}
