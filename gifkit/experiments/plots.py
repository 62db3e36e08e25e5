"""Figures: grids of seeds and their generated variants (by seed, or one row per class), the GIF pipeline drawn
by code (per prior), and paired differences with their 95 % intervals."""
from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF
from torchvision.utils import make_grid

from gifkit.io.images import open_rgb
from gifkit.io.store import read_metadata

__all__ = ["expansion_grid", "class_grid", "PIPELINE_STEPS", "pipeline_steps", "pipeline_figure", "difference_plot"]


def expansion_grid(dataset, root: str | Path, n_seeds: int = 8, size: int = 64) -> Image.Image:
    """One row per seed: the seed image, then its generated variants in variant order.

    Reads ``root/metadata.csv``; seeds are the first ``n_seeds`` seed indices listed. A row is as long as the
    most variants any seed has (a selection keeps, say, 5 of candidates numbered 0-19: 5 tiles, not 20); a seed
    with fewer ends in black tiles.
    """
    root = Path(root)
    meta = read_metadata(root)
    seeds = sorted(meta["seed_index"].astype(int).unique())[:n_seeds]
    k = int(meta.groupby("seed_index").size().max())
    tiles = []
    for s in seeds:
        rows = meta[meta["seed_index"].astype(int) == s].sort_values("variant")
        ims = [dataset[s][0]] + [open_rgb(root / f) for f in rows["file_name"]]
        ims += [Image.new("RGB", (size, size))] * (k + 1 - len(ims))
        tiles += [TF.to_dtype(TF.to_image(im.resize((size, size), Image.Resampling.BICUBIC)), torch.float32, scale=True)
                  for im in ims]
    grid = make_grid(torch.stack(tiles), nrow=k + 1, padding=2, pad_value=1.0)  # [3, H, W]
    return TF.to_pil_image(grid)


def class_grid(dataset, roots: dict[str, Path], ratio: int, size: int = 56, per_class: int = 1, labels: bool = True):
    """One row per class (its first ``per_class`` seeds): the seed, then ``ratio`` variants from each root in turn,
    groups separated by a blank tile; with ``labels``, a header names the columns ("seed", then each root's name
    over its group). Returns a PIL image."""
    metas = {name: read_metadata(r).sort_values(["seed_index", "variant"]) for name, r in roots.items()}
    classes = [int(dataset[i][1]) for i in range(len(dataset))]
    firsts = [i for c in sorted(set(classes)) for i in [j for j, y in enumerate(classes) if y == c][:per_class]]

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
            row += [tile(open_rgb(Path(roots[name]) / f)) for f in files]
            row += [blank] * (ratio - len(files))
        tiles += row
    grid = TF.to_pil_image(make_grid(torch.stack(tiles), nrow=ncol, padding=2, pad_value=1.0))
    if not labels:
        return grid
    spans = [("seed", 0, 1)] + [(name, 1 + g * (ratio + 1), ratio) for g, name in enumerate(roots)]
    return _with_header(grid, [(text, 2 + first * (size + 2), n * (size + 2) - 2) for text, first, n in spans])


def _with_header(grid: Image.Image, spans, height: int = 16) -> Image.Image:
    """``grid`` under a white strip naming column spans: ``[(text, x, width)]`` in pixels, text centred on its span."""
    from PIL import ImageDraw

    out = Image.new("RGB", (grid.width, grid.height + height), "white")
    out.paste(grid, (0, height))
    draw = ImageDraw.Draw(out)
    for text, x, width in spans:
        draw.text((x + width / 2, height / 2), text, fill="black", anchor="mm")
    return out


PIPELINE_STEPS = (
    ("seed x", "a small dataset's image"),
    ("prior latent f", "E(x); GIF-SD: the denoised\nimg2img latent"),
    ("K perturbations", "(1 + z_k) f + b_k\nz ~ U[0,1), b ~ N(0,1)  (Eq. 1)"),
    ("decode", "D((1 + z_k) f + b_k)\n(unprojected)"),
    ("CLIP", "p'_k = softmax(100 u W^T)\nfeatures v_k"),
    ("score", "S = S_inf (Eq. 5)\n  + S_div (Eq. 6)"),
    ("update", "z, b += 0.1 sign(dS/dz, dS/db)\n(one step, official)"),
    ("projection", "P_f,eps: clamp into\n[f - eps, f + eps]"),
    ("decode", "D(final latent)\nno gradients"),
    ("store", "<class>/<seed>_<k>.png\n+ metadata.csv"),
)


# what differs per prior: (latent, how the guidance sees a perturbed latent, the final decode)
_PRIOR_STEPS = {
    "sd": (("prior latent f", "SD img2img, fully denoised\n[K, 4, 64, 64], own prompt"),
           ("decode", "VAE decoder D(f'_k)\n(unprojected, with grad)"),
           ("decode", "VAE decoder D(final)\nno gradients")),
    "dalle": (("prior latent f", "CLIP image embedding\nof the seed [K, E]"),
              ("no decode", "f'_k is scored directly:\nv_k = normalize(f'_k)"),
              ("decode", "unCLIP decoder from\nthe final embedding")),
    "mae": (("prior latent f", "MAE encoder tokens\n[K, 1+L, D], mask ratio 0"),
            ("decode", "MAE decoder: patches\n-> 224 px (with grad)"),
            ("decode", "MAE decoder\nno gradients")),
    "vae": (("prior latent f", "mini VAE posterior sample\n[K, 4, 7, 7]"),
            ("decode", "VAE decoder D(f'_k)\n(unprojected, with grad)"),
            ("decode", "VAE decoder D(final)\nno gradients")),
}


def pipeline_steps(prior: str = "sd") -> tuple:
    """:data:`PIPELINE_STEPS` with the latent and the decode steps of ``prior`` (``sd``, ``dalle``, ``mae``, ``vae``;
    also the method names ``gif-sd``, ``gif-dalle``, ``gif-mae``, ``gif-vae``)."""
    key = prior.removeprefix("gif-")
    if key not in _PRIOR_STEPS:
        raise ValueError(f"pipeline_steps: prior must be one of {', '.join(_PRIOR_STEPS)}, got {prior!r}")
    latent, guided, final = _PRIOR_STEPS[key]
    steps = list(PIPELINE_STEPS)
    steps[1], steps[3], steps[8] = latent, guided, final
    if key == "vae":  # the mini profile's guide stands in for CLIP
        steps[4] = ("guide", "Lite0 + prototypes:\np'_k = softmax(s cos(u_k, w_c))")
    return tuple(steps)


def pipeline_figure(path: str | Path | None = None, steps=PIPELINE_STEPS):
    """The GIF pipeline as a figure drawn by code: seed -> prior latent -> K perturbations -> decode -> CLIP ->
    score -> update -> projection -> decode -> store, with the gradient path (steps 4-6: decode, CLIP, score)
    marked and the update looping back to the perturbation (``steps``: :func:`pipeline_steps` of a prior).
    Returns the matplotlib figure (saved to ``path`` if given)."""
    import matplotlib

    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    if path is not None:
        matplotlib.use("Agg")
    n = len(steps)
    cols = (n + 1) // 2
    fig, ax = plt.subplots(figsize=(2.3 * cols, 4.6))
    ax.set_xlim(0, cols)
    ax.set_ylim(0, 2)
    ax.axis("off")
    grad = {3, 4, 5}  # positions on the gradient path: decode (or the embedding itself), CLIP, score
    centers = []
    for i, (title, text) in enumerate(steps):
        row = 0 if i < cols else 1
        col = i if row == 0 else cols - 1 - (i - cols)  # a U: left to right, then back
        x, y = col + 0.5, 1.5 if row == 0 else 0.5
        color = "#fde2c8" if i in grad else "#dbe8f6"
        ax.add_patch(FancyBboxPatch((x - 0.45, y - 0.36), 0.9, 0.72, boxstyle="round,pad=0.02", fc=color, ec="#444"))
        ax.text(x, y + 0.2, title, ha="center", va="center", fontsize=9, weight="bold")
        ax.text(x, y - 0.08, text, ha="center", va="center", fontsize=6.5)
        centers.append((x, y))
    for (x0, y0), (x1, y1) in zip(centers, centers[1:]):
        if y0 == y1:
            start, end = (x0 + (0.46 if x1 > x0 else -0.46), y0), (x1 + (-0.46 if x1 > x0 else 0.46), y1)
        else:
            start, end = (x0, y0 - 0.37), (x1, y1 + 0.37)
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=12, color="#333"))
    names = [t for t, _ in steps]
    if "update" in names and "K perturbations" in names:
        (xu, yu), (xp, yp) = centers[names.index("update")], centers[names.index("K perturbations")]
        ax.add_patch(FancyArrowPatch((xu, yu + 0.37), (xp, yp - 0.37), connectionstyle="arc3,rad=0.3",
                                     arrowstyle="-|>", mutation_scale=12, color="#c0392b", ls="--"))
        ax.text(xp + 0.55, 1.02, "opt_steps > 1: score again", fontsize=6.5, color="#c0392b", ha="left")
    ax.text(0.02, 0.02, "orange: the gradient path from the score back to z and b (never through a diffusion sampler)",
            transform=ax.transAxes, fontsize=7, color="#a0522d")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def difference_plot(table, arm: str = "method", ax=None, title: str = "", unit: str = "accuracy points"):
    """Paired differences (:func:`gifkit.experiments.stats.paired_differences` rows: ``arm``, ``control``,
    ``mean_diff``, ``ci_low``, ``ci_high``) as points with their 95 % intervals and a line at 0; an interval that
    misses 0 is drawn solid (an effect), one that holds 0 hollow. Returns the axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 0.45 * len(table) + 1.2))
    labels = [f"{a} - {c}" for a, c in zip(table[arm], table["control"])]
    for i, (_, r) in enumerate(table.iterrows()):
        lo, hi = r["ci_low"], r["ci_high"]
        has_ci = lo == lo and hi == hi  # not NaN
        effect = has_ci and (lo > 0 or hi < 0)
        if has_ci:
            ax.plot([lo, hi], [i, i], color="#333", lw=1.5)
        ax.plot([r["mean_diff"]], [i], "o", color="#c0392b" if effect else "white", mec="#333", ms=7)
    ax.axvline(0, color="grey", ls="--", lw=1)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlabel(f"paired difference ({unit}), mean and 95 % interval over seeds")
    if title:
        ax.set_title(title)
    return ax
