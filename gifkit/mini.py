"""The ``mini`` experiment: GIF's whole mechanism on real data, offline, on a 2-core CPU (issue 6).

Small-data scenario: 20 labelled Fashion-MNIST images per class (200 in all,
a fixed seeded sample of the official training set); the official 10,000 test
images for testing. Arms, all at the same expansion ratio (5x) and trained for
the same number of update steps:

========================  =====================================================================
``original``              the 200 labelled images only
``randaugment``           + 5 RandAugment copies per image (:mod:`gifkit.augment`)
``vae``                   + 5 unguided samples of the mini VAE prior (:mod:`gifkit.priors.vae`)
``gif-vae``               + 5 GIF samples: S_inf + S_div, channel-wise noise (the official update)
``vae-random``            (ablation) the same random channel-wise perturbation, no guidance step
``gif-vae-inf``           (ablation) S_inf only
``gif-vae-div``           (ablation) S_div only
``gif-vae-pixel``         (ablation) S_inf + S_div with pixel-wise noise
========================  =====================================================================

Expansions run through :func:`gifkit.imagine.expand` (models from
:func:`gifkit.methods.build_models` with profile ``mini``) and
:func:`gifkit.augment.expand_augment`; classifiers are trained by
:func:`gifkit.train.train` (a ResNet-18 adapted to 28 px, width 16, from
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
import math
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

# torch, timm and the rest are imported inside the functions, so that building the `gifkit` command line stays instant.

__all__ = ["Arm", "ARMS", "QUICK_ARMS", "FULL_ARMS", "MiniConfig", "run_mini", "diagnostics", "class_grid", "ARCH",
           "add_cli"]

ARCH = "mini_resnet18"  # gifkit.mininet.MiniResNet18, registered with timm by gifkit.mininet.register_arch


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

    dataset: str = "fashion-mnist"
    data_root: str | None = None
    download: bool = False
    n_per_class: int = 20
    subset_seed: int = 0
    test_per_class: int | None = None  # None: the whole official test set
    ratio: int = 5
    seeds: tuple = (0, 1, 2)
    arms: tuple = FULL_ARMS
    # the prior and the guidance model
    vae: str | None = None  # dataset name of the cached VAE (default: dataset) or a folder with config.json
    retrain_prior: bool = False
    guide_size: int = 112
    logit_scale: float | str = "fit"
    expand_batch: int = 20  # seeds per expansion batch (x ratio images per forward pass)
    # the classifier trained on each arm (gifkit.train)
    arch: str = ARCH
    steps: int = 300
    epochs: int = 2  # evaluation rounds: the steps are split over this many "epochs", each ending with a test pass
    batch_size: int = 64
    lr: float = 0.05
    weight_decay: float = 5e-4
    out: str = "results/mini"
    progress: bool = True

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
    from gifkit.augment import expand_augment
    from gifkit.imagine import GuidanceConfig, expand

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
    """The :class:`gifkit.train.TrainConfig` of one arm x seed (same steps for every arm)."""
    from gifkit.train import make_config

    return make_config("paper", data=cfg.dataset, data_root=cfg.data_root, data_kwargs=_data_kwargs(cfg),
                       expanded=[str(expanded)] if expanded else [], profile="mini", arch=cfg.arch,
                       epochs=cfg.epochs, steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr,
                       weight_decay=cfg.weight_decay, image_size=28, rotation=15.0,
                       hflip=FLIP.get(cfg.dataset, True), precision="no", workers=0, device="cpu", seed=seed,
                       out=str(out), progress=False)


def diagnostics(classifier, dataset, root: Path | None, ratio: int) -> dict:
    """What the guidance model sees in an expansion (or, with ``root=None``, in the seeds alone).

    Per created image x' of seed x (label y, y_hat = argmax p(x)): p(x')[y_hat], H(p(x')), whether
    argmax p(x') == y ("label agreement"), 1 - cos(u(x), u(x')) (feature distance to the seed), the
    mean pairwise 1 - cos among a seed's K variants (feature diversity), and the mean absolute pixel
    change from the seed. For the seeds alone: p(x)[y_hat], H(p(x)) and argmax p(x) == y.
    """
    import torch

    with torch.no_grad():
        return _diagnostics(classifier, dataset, root, ratio)


def _diagnostics(classifier, dataset, root, ratio):
    import torch

    from gifkit.guidance import entropy
    from gifkit.store import read_metadata

    def tensor(images):
        a = np.stack([np.asarray(im.convert("RGB"), dtype=np.uint8) for im in images])
        return torch.from_numpy(a).permute(0, 3, 1, 2).float() / 255.0

    n = len(dataset)
    seeds_x = tensor([dataset[i][0] for i in range(n)])  # [n, 3, 28, 28]
    labels = torch.tensor([int(dataset[i][1]) for i in range(n)])
    u_seed = torch.cat([classifier.image_features(seeds_x[i:i + 200]) for i in range(0, n, 200)])
    p_seed = classifier.probs_from_features(u_seed)
    y_hat = p_seed.argmax(1)
    seed_rows = {"p_yhat": p_seed[torch.arange(n), y_hat], "entropy": entropy(p_seed),
                 "label_agreement": (y_hat == labels).float()}
    if root is None:
        return {k: float(v.mean()) for k, v in seed_rows.items()}
    from PIL import Image

    meta = read_metadata(root).sort_values(["seed_index", "variant"])
    idx = torch.tensor(meta["seed_index"].astype(int).to_numpy())
    images = []
    for f in meta["file_name"]:
        with Image.open(Path(root) / f) as im:
            images.append(im.convert("RGB"))
    x = tensor(images)
    u = torch.cat([classifier.image_features(x[i:i + 200]) for i in range(0, len(x), 200)])
    p = classifier.probs_from_features(u)
    yh = y_hat[idx]
    out = {"seed_p_yhat": float(seed_rows["p_yhat"].mean()), "seed_entropy": float(seed_rows["entropy"].mean()),
           "seed_label_agreement": float(seed_rows["label_agreement"].mean()),
           "p_yhat": float(p[torch.arange(len(p)), yh].mean()), "entropy": float(entropy(p).mean()),
           "label_agreement": float((p.argmax(1) == labels[idx]).float().mean()),
           "feature_distance_to_seed": float((1 - (u * u_seed[idx]).sum(1)).mean()),
           "pixel_change": float((x - seeds_x[idx]).abs().mean())}
    k = ratio
    if len(u) % k == 0 and k > 1:
        g = u.view(-1, k, u.shape[1])  # [n, K, D]
        sim = g @ g.transpose(1, 2)  # [n, K, K]
        off = ~torch.eye(k, dtype=torch.bool)
        out["feature_diversity"] = float((1 - sim[:, off]).mean())
    return out


def class_grid(dataset, roots: dict[str, Path], ratio: int, size: int = 56, per_class: int = 1):
    """One row per class (its first ``per_class`` seeds): the seed, then ``ratio`` variants from each root in turn,
    groups separated by a blank tile. Returns a PIL image."""
    import torch
    from PIL import Image
    from torchvision.transforms.v2 import functional as TF
    from torchvision.utils import make_grid

    from gifkit.store import read_metadata

    metas = {name: read_metadata(r).sort_values(["seed_index", "variant"]) for name, r in roots.items()}
    labels = [int(dataset[i][1]) for i in range(len(dataset))]
    firsts = [i for c in sorted(set(labels)) for i in [j for j, y in enumerate(labels) if y == c][:per_class]]

    def tile(im):
        im = im.convert("RGB").resize((size, size), Image.Resampling.NEAREST)
        return TF.to_dtype(TF.to_image(im), torch.float32, scale=True)

    blank = torch.ones(3, size, size)
    tiles, ncol = [], 1 + len(roots) * (ratio + 1) - 1
    for s in firsts:
        row = [tile(dataset[s][0])]
        for gi, (name, meta) in enumerate(metas.items()):
            if gi:
                row.append(blank)
            files = meta[meta["seed_index"].astype(int) == s]["file_name"].tolist()[:ratio]
            for f in files:
                with Image.open(Path(roots[name]) / f) as im:
                    row.append(tile(im))
            row += [blank] * (ratio - len(files))
        tiles += row
    grid = make_grid(torch.stack(tiles), nrow=ncol, padding=2, pad_value=1.0)
    return TF.to_pil_image(grid)


def _figure(summary, runs, diag, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper")
    order = [a for a in ARMS if a in set(runs["arm"])]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    ax = axes[0]
    sns.barplot(data=runs, x="arm", y="accuracy", order=order, hue="group", dodge=False, errorbar="sd",
                capsize=0.2, ax=ax, alpha=0.8)
    sns.stripplot(data=runs, x="arm", y="accuracy", order=order, color="black", size=4, ax=ax)
    lo = max(0.0, float(runs["accuracy"].min()) - 5)
    ax.set_ylim(lo, min(100.0, float(runs["accuracy"].max()) + 3))
    ax.set_ylabel("test accuracy (%), final step")
    ax.set_xlabel("")
    ax.tick_params(axis="x", rotation=30)
    ax.set_title(f"{summary.attrs.get('title', '')}")
    ax = axes[1]
    if len(diag):
        d = diag.melt(id_vars=["arm"], value_vars=["p_yhat", "entropy", "label_agreement"], var_name="measure")
        d_order = [a for a in ARMS if a in set(diag["arm"])]
        sns.barplot(data=d, x="arm", y="value", hue="measure", order=d_order, errorbar=None, ax=ax)
        ax.tick_params(axis="x", rotation=30)
        ax.set_xlabel("")
        ax.set_ylabel("guidance model on created images")
        ax.set_title("p[y_hat], entropy, agreement with the label")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def _md_table(df, columns: list[str], floatfmt: str = "{:.2f}") -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for _, r in df.iterrows():
        cells = []
        for c in columns:
            v = r[c]
            cells.append(floatfmt.format(v) if isinstance(v, (float, np.floating)) and not math.isnan(v) else
                         ("" if isinstance(v, float) and math.isnan(v) else str(v)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- the driver


def run_mini(cfg: MiniConfig) -> dict:
    """Run (or resume) the experiment and write its results into ``cfg.out``; returns a summary dict."""
    import pandas as pd
    import torch

    from gifkit.data import load_dataset
    from gifkit.mininet import register_arch
    from gifkit.train import train

    register_arch()
    t_start = time.perf_counter()
    timings: list[dict] = []
    out = Path(cfg.out)
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    (work / ".gitignore").write_text("*\n")
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
    from gifkit.store import read_metadata
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
    runs.to_csv(out / "runs.csv", index=False, float_format="%.4f")
    summary.to_csv(out / "summary.csv", index=False, float_format="%.4f")
    diag.to_csv(out / "diagnostics.csv", index=False, float_format="%.4f")
    guidance_meta.to_csv(out / "guidance_metadata.csv", index=False, float_format="%.4f")
    title = f"{cfg.dataset}, {cfg.n_per_class}/class, {cfg.ratio}x, {cfg.steps} steps, {len(cfg.seeds)} seed(s)"
    summary.attrs["title"] = title
    _figure(summary, runs, diag[diag["arm"] != "seeds (no expansion)"] if len(diag) else diag, out / "mini.png")
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
    tim.to_csv(out / "timings.csv", index=False, float_format="%.1f")

    vae_meta = {}
    prior_entry = next((v for k, v in cache.items() if k not in ("classifier",)), None)
    if prior_entry is not None:
        from gifkit.priors.vae import cache_dir
        p = Path(cfg.vae) if cfg.vae and Path(cfg.vae).is_dir() else cache_dir(cfg.vae or cfg.dataset)
        if (p / "config.json").is_file():
            vae_meta = json.loads((p / "config.json").read_text())
            vae_meta["folder"] = str(p)
    info = {"config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
            "subset_indices": [int(i) for i in getattr(dataset, "indices", [])],
            "guidance_model": classifier.describe() if classifier is not None else None,
            "vae": vae_meta, "total_seconds": total,
            "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                        "torch": torch.__version__, "python": platform.python_version(),
                        "platform": platform.platform(),
                        "load_average_at_end": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}}
    (out / "config.json").write_text(json.dumps(info, indent=1) + "\n")
    (out / "RESULTS.md").write_text(_results_md(cfg, summary, diag, guidance_meta, tim, info))
    _log(cfg, f"mini experiment done in {total / 60:.1f} min: {out}/RESULTS.md, summary.csv, mini.png, grid_*.png")
    return {"summary": summary, "runs": runs, "diagnostics": diag, "guidance_metadata": guidance_meta,
            "timings": tim, "total_seconds": total, "out": out}


def _results_md(cfg: MiniConfig, summary, diag, guidance_meta, tim, info) -> str:
    s = summary.copy()
    s["accuracy (%)"] = [f"{m:.2f} ± {sd:.2f}" if n > 1 else f"{m:.2f}"
                         for m, sd, n in zip(s["accuracy_mean"], s["accuracy_std"], s["n_seeds"])]
    lines = [f"# Mini experiment: {cfg.dataset}, {cfg.n_per_class} labelled images per class",
             "",
             f"Written by `gifkit mini` ({'quick' if len(cfg.seeds) == 1 else 'full'} run). Test accuracy on the "
             f"{'official test set' if cfg.test_per_class is None else f'{cfg.test_per_class} test images per class'}"
             f", final step, mean ± sample std over seeds {list(cfg.seeds)} (each seed: its own expansion draw and "
             f"training run). Every arm: {cfg.ratio}x expansion (except `original`), {cfg.steps} SGD steps of "
             f"batch {cfg.batch_size}, lr {cfg.lr} cosine, weight decay {cfg.weight_decay}, {cfg.arch} "
             f"(ResNet-18 adapted to 28 px, width 16) from scratch, random rotation 15° and flips.",
             "",
             _md_table(s, ["arm", "description", "n_train", "accuracy (%)", "best_over_epochs_mean", "n_seeds"]),
             ""]
    base = dict(zip(summary["arm"], summary["accuracy_mean"]))
    if "gif-vae" in base:
        cmp = [f"{other}: {base['gif-vae'] - base[other]:+.2f}" for other in ("original", "randaugment", "vae",
                                                                               "vae-random") if other in base]
        lines += [f"GIF-VAE minus the others (accuracy points, means): {'; '.join(cmp)}.", ""]
    if len(diag):
        lines += ["What the guidance model (EfficientNet-Lite0 prototypes) sees in the first seed's expansions: "
                  "p[y_hat] and entropy of the created images (y_hat: its prediction on the seed), agreement of its "
                  "prediction with the dataset label, feature distance to the seed, pairwise feature diversity "
                  "among a seed's variants, mean absolute pixel change. These are measured with the model that "
                  "guided the expansion, so they favour GIF by construction.", "",
                  _md_table(diag, [c for c in ["arm", "p_yhat", "entropy", "label_agreement",
                                               "feature_distance_to_seed", "feature_diversity", "pixel_change"]
                                   if c in diag.columns], "{:.3f}"), ""]
    if len(guidance_meta):
        lines += ["From the expansions' metadata.csv (means; p_seed_yhat / entropy_seed on the seed, p_yhat / "
                  "entropy on the final created image, s_inf / s_div the score terms at the guidance step):", "",
                  _md_table(guidance_meta, list(guidance_meta.columns), "{:.3f}"), ""]
    g = info.get("guidance_model") or {}
    v = info.get("vae") or {}
    vs = v.get("stats", {})
    lines += ["Models:", "",
              f"- prior: conv VAE, latent [4, 7, 7], trained on {vs.get('n_images', '?')} unlabelled training "
              f"images in {vs.get('seconds', '?')} s ({(v.get('config') or {}).get('epochs', '?')} epochs; "
              f"latent std per channel {vs.get('latent_std_per_channel', '?')}, scaling factor "
              f"{vs.get('scaling_factor', float('nan')):.3f})" if v else "- prior: none",
              f"- guidance: {g.get('backbone', '?')}, {g.get('image_size', '?')} px input, prototypes from "
              f"{g.get('prototypes_from', '?')}, logit scale {g.get('logit_scale', float('nan')):.2f} (fitted by "
              f"leave-one-out NLL on the labelled set), leave-one-out accuracy on the labelled set "
              f"{g.get('support_loo_accuracy', float('nan')):.3f}" if g else "- guidance: none",
              "", "Time (s) on this machine "
              f"({info['machine']['cpu_count']} CPUs, {info['machine']['torch_threads']} torch threads; load average "
              f"at the end {info['machine']['load_average_at_end']}):", ""]
    agg = tim.groupby("stage", sort=False)["seconds"].sum().reset_index()
    lines += [_md_table(agg, ["stage", "seconds"], "{:.0f}"), ""]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- command line


def add_cli(sub) -> None:
    """``gifkit mini`` and ``gifkit mini-prior``."""
    p = sub.add_parser("mini", help="the mini profile's experiment: Fashion-MNIST, 20/class, offline, 2-core CPU")
    p.add_argument("--quick", action="store_true", help="1 seed, the 4 main arms (what `make demo` runs)")
    p.add_argument("--out", default=None, help="results folder (default results/mini, --quick results/mini/quick)")
    p.add_argument("--data", default="fashion-mnist", choices=["fashion-mnist", "mnist"])
    p.add_argument("--data-root", default=None, help="folder with the official idx files")
    p.add_argument("--download", action="store_true", help="allow torchvision to download the data")
    p.add_argument("--seeds", type=int, nargs="+", default=None)
    p.add_argument("--arms", nargs="+", default=None, help=f"subset of: {' '.join(ARMS)}")
    p.add_argument("--steps", type=int, default=None, help="SGD steps of every training run (default 300)")
    p.add_argument("--n-per-class", type=int, default=None)
    p.add_argument("--retrain-prior", action="store_true", help="train the VAE prior again first")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_mini)
    q = sub.add_parser("mini-prior", help="train (or show) the mini profile's VAE prior, cached in the user cache")
    q.add_argument("--data", default="fashion-mnist", choices=["fashion-mnist", "mnist"])
    q.add_argument("--data-root", default=None)
    q.add_argument("--retrain", action="store_true", help="train again even when cached")
    q.add_argument("--epochs", type=int, default=None)
    q.set_defaults(func=cmd_mini_prior)


def config_from_args(args) -> MiniConfig:
    over = {k: v for k, v in dict(out=args.out, dataset=args.data, data_root=args.data_root,
                                   download=args.download or None, seeds=tuple(args.seeds) if args.seeds else None,
                                   arms=tuple(args.arms) if args.arms else None, steps=args.steps,
                                   n_per_class=args.n_per_class, retrain_prior=args.retrain_prior or None,
                                   progress=False if args.no_progress else None).items() if v is not None}
    return MiniConfig.quick(**over) if args.quick else MiniConfig(**over)


def cmd_mini(args) -> int:
    from gifkit.data.fashion import DataUnavailable

    try:
        res = run_mini(config_from_args(args))
    except DataUnavailable as e:
        print(f"gifkit mini: {e}")
        return 3
    s = res["summary"]
    for _, r in s.iterrows():
        sd = f" ± {r['accuracy_std']:.2f}" if r["n_seeds"] > 1 else ""
        print(f"  {r['arm']:14s} {r['accuracy_mean']:6.2f}{sd} %   {r['description']}")
    return 0


def cmd_mini_prior(args) -> int:
    from gifkit.priors.vae import cache_dir, get_vae

    kw = {"epochs": args.epochs} if args.epochs else {}
    t = time.perf_counter()
    _, meta = get_vae(args.data, retrain=args.retrain, data_root=args.data_root, **kw)
    st = meta["stats"]
    print(f"mini VAE prior of {args.data}: {cache_dir(args.data)} (sha256 {meta['sha256'][:16]}...), trained on "
          f"{st['n_images']} images in {st['seconds']} s; final -ELBO {st['history'][-1]['loss']:.2f} per image; "
          f"latent std per channel {st.get('latent_std_per_channel')}; ({time.perf_counter() - t:.1f} s now)")
    return 0
