"""What a mini run reports: the guide's view of each expansion, the figure and ``RESULTS.md``."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from gifkit.core.guidance import entropy
from gifkit.io.images import read01, stack01
from gifkit.io.store import read_metadata

__all__ = ["diagnostics", "figure", "redraw", "title", "ONE_SEED", "md_table", "results_md"]


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

    n = len(dataset)
    seeds_x = stack01([dataset[i][0] for i in range(n)])  # [n, 3, 28, 28]
    labels = torch.tensor([int(dataset[i][1]) for i in range(n)])
    u_seed = torch.cat([classifier.image_features(seeds_x[i:i + 200]) for i in range(0, n, 200)])
    p_seed = classifier.probs_from_features(u_seed)
    y_hat = p_seed.argmax(1)
    seed_rows = {"p_yhat": p_seed[torch.arange(n), y_hat], "entropy": entropy(p_seed),
                 "label_agreement": (y_hat == labels).float()}
    if root is None:
        return {k: float(v.mean()) for k, v in seed_rows.items()}
    meta = read_metadata(root).sort_values(["seed_index", "variant"])
    idx = torch.tensor(meta["seed_index"].astype(int).to_numpy())
    x = read01([Path(root) / f for f in meta["file_name"]])
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



ONE_SEED = ("One seed: each arm is one expansion and one training run, so a difference between two arms mixes "
            "the method with that run's luck (which variants were drawn, the order of the batches, the "
            "initial weights), and no interval can be computed. It shows that every step runs and what each arm "
            "produces; it cannot show that one arm is better than another. That needs several seeds paired by "
            "seed, as in the committed 5-seed results: results/mini/RESULTS.md and results/mini/mini.png.")


def figure(summary, runs, paired, diag, path: Path | None = None):
    """``mini.png``: accuracy per arm (mean, 95 % interval, seeds as dots), each arm's paired difference to the
    controls with its 95 % interval (:func:`gifkit.experiments.plots.difference_plot`; with one seed, what one
    seed can and cannot show instead), and what the guide sees in each expansion. Returns the figure (saved to
    ``path`` if given)."""
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    from gifkit.experiments.plots import difference_plot

    sns.set_theme(style="whitegrid", context="paper")
    order = list(dict.fromkeys(runs["arm"]))
    height = max(4.4, 0.3 * len(paired) + 1.6)
    fig, axes = plt.subplots(1, 3, figsize=(17, height), gridspec_kw={"width_ratios": [3, 2.2, 2]})
    ax = axes[0]
    sns.pointplot(data=runs, x="arm", y="accuracy", order=order, errorbar=("ci", 95), linestyles="none",
                  capsize=0.2, color="tab:blue", ax=ax)  # bootstrap 95 % interval of the mean
    sns.stripplot(data=runs, x="arm", y="accuracy", order=order, color="black", size=3, alpha=0.6, ax=ax)
    ax.set_ylabel("test accuracy (%), final step")
    ax.set_xlabel("")
    ax.tick_params(axis="x", rotation=30)
    ax.set_title(f"{summary.attrs.get('title', '')}")
    ax = axes[1]
    if len(paired):
        difference_plot(paired, arm="arm", ax=ax, unit="points",
                        title="an effect (filled) only where the interval excludes 0")
        ax.xaxis.label.set_size(8)
        ax.tick_params(axis="y", labelsize=7)
    else:
        ax.axis("off")
        ax.set_title("paired differences: none with one seed")
        ax.text(0.02, 0.95, textwrap.fill(ONE_SEED, 46), transform=ax.transAxes, va="top", fontsize=9)
    ax = axes[2]
    if len(diag):
        d = diag.melt(id_vars=["arm"], value_vars=["p_yhat", "entropy", "label_agreement"], var_name="measure")
        d_order = list(dict.fromkeys(diag["arm"]))
        sns.barplot(data=d, x="arm", y="value", hue="measure", order=d_order, errorbar=None, ax=ax)
        ax.tick_params(axis="x", rotation=30)
        ax.set_xlabel("")
        ax.set_ylabel("guidance model on created images")
        ax.set_title("p[y_hat], entropy, agreement with the label")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=130)
        plt.close(fig)
    return fig


def redraw(folder: str | Path, results: bool = True):
    """Draw ``<folder>/mini.png`` again, and write its ``RESULTS.md`` again (``results``), from the CSV files and
    ``config.json`` a mini run wrote there (no training); returns the figure."""
    import pandas as pd

    from gifkit.io.files import read_json

    folder = Path(folder)
    info = read_json(folder / "config.json", None, "the mini run's record")
    if info is None:
        raise FileNotFoundError(f"{folder / 'config.json'} is missing: redraw needs a folder `gifkit mini` wrote")

    def csv(name):
        path = folder / name
        return pd.read_csv(path) if path.is_file() and path.stat().st_size > 1 else pd.DataFrame()

    summary, diag, paired = csv("summary.csv"), csv("diagnostics.csv"), csv("paired.csv")
    summary.attrs["title"] = title(info["config"])
    fig = figure(summary, csv("runs.csv"), paired, diag[diag["arm"] != "seeds (no expansion)"] if len(diag) else diag,
                 folder / "mini.png")
    if results:
        from types import SimpleNamespace

        from gifkit.io.files import write_text

        cfg = SimpleNamespace(**{k: tuple(v) if isinstance(v, list) else v for k, v in info["config"].items()})
        write_text(folder / "RESULTS.md", results_md(cfg, summary, paired, diag, csv("guidance_metadata.csv"),
                                                     csv("timings.csv"), info))
    return fig


def title(config: dict) -> str:
    """The figure's title from a run's settings (a :class:`gifkit.experiments.mini.MiniConfig` as a dict)."""
    return (f"{config['dataset']}, {config['n_per_class']}/class, {config['ratio']}x, {config['steps']} steps, "
            f"{len(config['seeds'])} seed(s)")


def md_table(df, columns: list[str], floatfmt: str = "{:.2f}") -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for _, r in df.iterrows():
        cells = []
        for c in columns:
            v = r[c]
            cells.append(floatfmt.format(v) if isinstance(v, (float, np.floating)) and not math.isnan(v) else
                         ("" if isinstance(v, float) and math.isnan(v) else str(v)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)



def paired_table(summary, paired):
    """One row per arm: accuracy mean ± sd and, per control, the paired difference with its interval and verdict."""
    from gifkit.experiments.stats import format_difference

    t = summary[["arm", "description", "n_train", "n_seeds"]].copy()
    t["accuracy (%)"] = [f"{m:.2f} ± {sd:.2f}" if n > 1 else f"{m:.2f}"
                         for m, sd, n in zip(summary["accuracy_mean"], summary["accuracy_std"], summary["n_seeds"])]
    for control, g in (paired.groupby("control", sort=False) if len(paired) else []):
        cell = {r["arm"]: f"{format_difference(r['mean_diff'], r['ci_low'], r['ci_high'])} {r['verdict']}"
                for _, r in g.iterrows()}
        t[f"minus {control} [95 % CI]"] = [cell.get(a, "(control)" if a == control else "") for a in t["arm"]]
    return t


def results_md(cfg, summary, paired, diag, guidance_meta, tim, info) -> str:
    """``RESULTS.md`` of a mini run (``cfg``: its :class:`gifkit.experiments.mini.MiniConfig`)."""
    t = paired_table(summary, paired)
    lines = [f"# Mini experiment: {cfg.dataset}, {cfg.n_per_class} labelled images per class",
             "",
             f"Written by `gifkit mini` ({'quick' if len(cfg.seeds) == 1 else 'full'} run). Test accuracy on the "
             f"{'official test set' if cfg.test_per_class is None else f'{cfg.test_per_class} test images per class'}"
             f", final step, mean ± sample std over seeds {list(cfg.seeds)} (each seed: its own expansion draw and "
             f"training run). Every arm: {cfg.ratio}x expansion (except `original`), the same {cfg.steps} SGD steps "
             f"of batch {cfg.batch_size} (gifkit's equal-steps protocol), lr {cfg.lr} cosine, weight decay "
             f"{cfg.weight_decay}, {cfg.arch} (ResNet-18 adapted to 28 px, width 16) from scratch, random rotation "
             "15° and flips." + (" The difference columns pair the arms by seed: mean difference in points and its "
                                  "95 % Student-t interval; `higher` / `lower` only when the interval excludes 0."
                                  if len(paired) else ""),
             "",
             md_table(t, list(t.columns)),
             ""]
    if len(cfg.seeds) == 1:
        lines += [f"**{ONE_SEED}**", ""]
    if len(paired):
        eff = paired[paired["verdict"].isin(["higher", "lower"])]
        none = paired[paired["verdict"] == "no effect"]
        lines += ["Effects (the interval excludes 0): " + ("; ".join(
            f"{r['arm']} {r['verdict']} than {r['control']} by {r['mean_diff']:+.2f}" for _, r in eff.iterrows())
            or "none") + ".",
                  "No effect measurable at this number of seeds (the interval holds 0): " + ("; ".join(
                      f"{r['arm']} vs {r['control']}" for _, r in none.iterrows()) or "none") + ".", ""]
    if len(diag):
        lines += ["What the guidance model (EfficientNet-Lite0 prototypes) sees in the first seed's expansions: "
                  "p[y_hat] and entropy of the created images (y_hat: its prediction on the seed), agreement of its "
                  "prediction with the dataset label, feature distance to the seed, pairwise feature diversity "
                  "among a seed's variants, mean absolute pixel change. These are measured with the model that "
                  "guided the expansion, so they favour GIF by construction.", "",
                  md_table(diag, [c for c in ["arm", "p_yhat", "entropy", "label_agreement",
                                               "feature_distance_to_seed", "feature_diversity", "pixel_change"]
                                   if c in diag.columns], "{:.3f}"), ""]
    if len(guidance_meta):
        lines += ["From the expansions' metadata.csv (means; p_seed_yhat / entropy_seed on the seed, p_yhat / "
                  "entropy on the final created image, s_inf / s_div the score terms at the guidance step):", "",
                  md_table(guidance_meta, list(guidance_meta.columns), "{:.3f}"), ""]
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
              f"at the end {', '.join(f'{x:.2f}' for x in info['machine']['load_average_at_end'] or [])}):", ""]
    agg = tim.groupby("stage", sort=False)["seconds"].sum().reset_index()
    lines += [md_table(agg, ["stage", "seconds"], "{:.0f}"), ""]
    return "\n".join(lines) + "\n"
