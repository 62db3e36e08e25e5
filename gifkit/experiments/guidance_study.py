"""Does GIF's guidance matter, and does its diversity term? Two studies on the mini profile (Fashion-MNIST,
the VAE prior, the EfficientNet-Lite0 prototype guide), run through :func:`gifkit.experiments.study.run_grid`
into the mini experiment's grid folder, so the cells they share with ``gifkit mini`` are not run twice.

* :func:`diversity_study`: S_div at the paper's temperature 1 and below. Per temperature: the share of the
  (z, b) gradient signs S_div flips and the ratio of its gradient's norm to the rest's (the per-variant
  diagnostic of :class:`gifkit.methods.callbacks.DivDiagnostics`), how many created images differ from the
  S_inf-only expansion, the guide's feature diversity of a seed's variants, and, for some temperatures,
  the accuracy of classifiers trained on the expansion, paired by seed against S_inf only.
* :func:`guidance_study`: the official single signed step against several signed or Adam steps, a larger
  eps, and the same random perturbation without any guidance step (the control), each paired by seed.

Which guide GIF-VAE uses, and whether that matters, is :mod:`gifkit.experiments.guide_study`'s question.

Both return tables (pandas) and write them as CSV into ``out``; the text that interprets them is the
README's and notebook 06's.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from gifkit.experiments.mini import ARMS, MiniConfig, arm_specs, grid_settings
from gifkit.io.files import write_csv, write_json
from gifkit.io.store import read_metadata

__all__ = ["DIVERSITY_TEMPERATURES", "GUIDANCE_ARMS", "diversity_study", "guidance_study"]

DIVERSITY_TEMPERATURES = (1.0, 0.1, 0.03, 0.01)
# label -> options of the mini method "gif-vae" (the controls: vae-random, and its eps-2 twin)
GUIDANCE_ARMS = {
    "vae-random": {"opt_steps": 0},
    "gif-vae": {},
    "gif-vae-sign3": {"opt_steps": 3},
    "gif-vae-adam5": {"update": "adam", "opt_steps": 5, "lr": 0.1},
    "vae-random-eps2": {"opt_steps": 0, "eps": 2.0},
    "gif-vae-eps2": {"eps": 2.0},
}


def _setup(cfg: MiniConfig):
    from gifkit.data import load_dataset
    from gifkit.methods.vae import prototype_guide

    settings = grid_settings(cfg)
    kw = {k: v for k, v in settings["train"].get("data_kwargs", {"n_per_class": cfg.n_per_class}).items()
          if k != "test_per_class"}
    dataset, class_names = load_dataset(cfg.dataset, "train", root=cfg.data_root, profile="mini", **kw)
    guide = prototype_guide(class_names, dataset, cfg.guide_size, cfg.logit_scale)
    return settings, dataset, class_names, guide


def _differing_images(a: Path, b: Path) -> tuple[int, int]:
    """``(differing, compared)``: images of store ``a`` whose bytes differ from the same file of store ``b``."""
    from gifkit.io.store import read_metadata

    files = list(read_metadata(a)["file_name"])
    return sum((a / f).read_bytes() != (b / f).read_bytes() for f in files), len(files)


def diversity_study(cfg: MiniConfig | None = None, *, temperatures: Sequence[float] = DIVERSITY_TEMPERATURES,
                    train_temperatures: Sequence[float] = (1.0, 0.03), out: str | Path | None = None,
                    progress: bool = False) -> dict:
    """What S_div does at temperature ``T`` (docs/design.md §1.5): see the module docstring.

    Returns ``{"per_temperature": DataFrame, "runs": DataFrame, "paired": DataFrame}``. ``per_temperature``:
    ``T``, ``flipped_signs`` (share of gradient entries whose sign S_div changes), ``grad_ratio_median``,
    ``images_changed`` (of the expansion's images, against S_inf only, seed ``cfg.seeds[0]``) and
    ``feature_diversity`` (the guide's mean pairwise 1 - cos among a seed's variants; ``inf_only`` row:
    S_inf alone). ``runs`` / ``paired``: the grid rows of the trained temperatures and their paired differences
    to S_inf only and to the random perturbation.
    """
    import pandas as pd

    from gifkit.experiments.mini_report import diagnostics
    from gifkit.experiments.stats import paired_differences
    from gifkit.experiments.study import run_grid
    from gifkit.methods import create_method, expand

    cfg = cfg or MiniConfig()
    out = Path(out or Path(cfg.out) / "diversity_study")
    grid_dir = Path(cfg.out) / "work" / "grid"
    settings, dataset, class_names, guide = _setup(cfg)
    seed = cfg.seeds[0]
    # the S_inf-only expansion of the first seed: the mini experiment's `gif-vae-inf` cell
    base = run_grid(cfg.dataset, arm_specs(["gif-vae-inf"]), out=grid_dir, seeds=(seed,), progress=progress,
                    **settings)
    inf_dir = Path(base["expanded_dir"].iloc[0])
    gif = create_method("gif-vae", class_names, profile="mini", device="cpu", support=dataset,
                        **settings["expand"]["options"])
    rows = [{"T": float("nan"), "arm": "inf_only", "flipped_signs": 0.0, "grad_ratio_median": 0.0,
             "images_changed": 0, "images": 0,
             "feature_diversity": diagnostics(guide, dataset, inf_dir, cfg.ratio).get("feature_diversity")}]
    for t in temperatures:
        d = out / f"expansion_T{t:g}_seed{seed}"
        res = expand(gif.replace(div_temperature=float(t), div_diagnostics=True), dataset, d, ratio=cfg.ratio,
                     seed=seed, batch_size=cfg.expand_batch, progress=progress)
        meta = read_metadata(d)
        changed, n = _differing_images(d, inf_dir)
        rows.append({"T": float(t), "arm": f"T={t:g}",
                     "flipped_signs": float(meta["div_sign_flips"].sum() / meta["div_grad_entries"].sum()),
                     "grad_ratio_median": float(meta["div_grad_ratio"].median()), "images_changed": changed,
                     "images": n, "feature_diversity": diagnostics(guide, dataset, d, cfg.ratio).get(
                         "feature_diversity"), "expand_seconds": res.seconds})
    per_t = pd.DataFrame(rows)
    specs = arm_specs(["vae-random", "gif-vae-inf"]) + [
        arm_specs(["gif-vae"])[0] if t == 1 else (f"gif-vae-T{t:g}", "gif-vae", {"div_temperature": float(t)})
        for t in train_temperatures]
    runs = run_grid(cfg.dataset, specs, out=grid_dir, seeds=cfg.seeds, progress=progress, **settings)
    paired = pd.concat([paired_differences(runs, c) for c in ("gif-vae-inf", "vae-random")], ignore_index=True) \
        if len(cfg.seeds) > 1 else pd.DataFrame()
    write_csv(out / "per_temperature.csv", per_t, float_format="%.6g")
    write_csv(out / "runs.csv", runs.drop(columns=["run_dir", "expanded_dir"]), float_format="%.4f")
    write_csv(out / "paired.csv", paired, float_format="%.4f")
    write_json(out / "settings.json", {"temperatures": list(temperatures), "seeds": list(cfg.seeds),
                                       "train_temperatures": list(train_temperatures)})
    return {"per_temperature": per_t, "runs": runs, "paired": paired}


def guidance_study(cfg: MiniConfig | None = None, *, arms: dict | None = None, out: str | Path | None = None,
                   progress: bool = False) -> dict:
    """The guidance step against the random-perturbation control, at the official settings and beyond.

    ``arms``: label -> options of ``gif-vae`` (default :data:`GUIDANCE_ARMS`). Returns
    ``{"runs": DataFrame, "paired": DataFrame}``: one grid row per arm x seed, and each arm's paired difference
    to ``vae-random`` (and, for the eps-2 arms, to ``vae-random-eps2``).
    """
    import pandas as pd

    from gifkit.experiments.stats import paired_differences
    from gifkit.experiments.study import run_grid

    cfg = cfg or MiniConfig()
    arms = dict(arms or GUIDANCE_ARMS)
    out = Path(out or Path(cfg.out) / "guidance_study")
    settings, _, _, _ = _setup(cfg)
    specs = [arm_specs([label])[0] if label in ARMS and ARMS[label].options == g else (label, "gif-vae", dict(g))
             for label, g in arms.items()]
    runs = run_grid(cfg.dataset, specs, out=Path(cfg.out) / "work" / "grid", seeds=cfg.seeds, progress=progress,
                    **settings)
    paired = pd.DataFrame()
    if len(cfg.seeds) > 1:
        parts = [paired_differences(runs, "vae-random")] if "vae-random" in arms else []
        if "vae-random-eps2" in arms:
            parts.append(paired_differences(runs[runs["method"].str.contains("eps2")], "vae-random-eps2"))
        paired = pd.concat(parts, ignore_index=True) if parts else paired
    write_csv(out / "runs.csv", runs.drop(columns=["run_dir", "expanded_dir"]), float_format="%.4f")
    write_csv(out / "paired.csv", paired, float_format="%.4f")
    return {"runs": runs, "paired": paired}
