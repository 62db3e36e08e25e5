"""Figures: grids of seeds and their generated variants (by seed, or one row per class)."""
from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF
from torchvision.utils import make_grid

from gifkit.io.images import open_rgb
from gifkit.io.store import read_metadata

__all__ = ["expansion_grid", "class_grid", "PIPELINE_STEPS", "pipeline_figure"]


def expansion_grid(dataset, root: str | Path, n_seeds: int = 8, size: int = 64) -> Image.Image:
    """One row per seed: the seed image, then its generated variants in variant order.

    Reads ``root/metadata.csv``; seeds are the first ``n_seeds`` seed indices listed.
    """
    root = Path(root)
    meta = read_metadata(root)
    seeds = sorted(meta["seed_index"].astype(int).unique())[:n_seeds]
    k = int(meta["variant"].astype(int).max()) + 1
    tiles = []
    for s in seeds:
        rows = meta[meta["seed_index"].astype(int) == s].sort_values("variant")
        ims = [dataset[s][0]] + [open_rgb(root / f) for f in rows["file_name"]]
        ims += [Image.new("RGB", (size, size))] * (k + 1 - len(ims))
        tiles += [TF.to_dtype(TF.to_image(im.resize((size, size), Image.Resampling.BICUBIC)), torch.float32, scale=True)
                  for im in ims]
    grid = make_grid(torch.stack(tiles), nrow=k + 1, padding=2, pad_value=1.0)  # [3, H, W]
    return TF.to_pil_image(grid)


def class_grid(dataset, roots: dict[str, Path], ratio: int, size: int = 56, per_class: int = 1):
    """One row per class (its first ``per_class`` seeds): the seed, then ``ratio`` variants from each root in turn,
    groups separated by a blank tile. Returns a PIL image."""
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
            row += [tile(open_rgb(Path(roots[name]) / f)) for f in files]
            row += [blank] * (ratio - len(files))
        tiles += row
    grid = make_grid(torch.stack(tiles), nrow=ncol, padding=2, pad_value=1.0)
    return TF.to_pil_image(grid)



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


def pipeline_figure(path: str | Path | None = None, steps=PIPELINE_STEPS):
    """The GIF pipeline as a figure drawn by code: seed -> prior latent -> K perturbations -> decode -> CLIP ->
    score -> update -> projection -> decode -> store, with the gradient path (decode, CLIP, score) marked and
    the update looping back to the perturbation. Returns the matplotlib figure (saved to ``path`` if given)."""
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
    grad = {"decode", "CLIP", "score"}
    centers = []
    for i, (title, text) in enumerate(steps):
        row = 0 if i < cols else 1
        col = i if row == 0 else cols - 1 - (i - cols)  # a U: left to right, then back
        x, y = col + 0.5, 1.5 if row == 0 else 0.5
        first_decode = title == "decode" and i < n - 2
        color = "#fde2c8" if (title in grad and (title != "decode" or first_decode)) else "#dbe8f6"
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
    ax.text(0.02, 0.02, "orange: the gradient path (decoder and CLIP only, never the diffusion sampler)",
            transform=ax.transAxes, fontsize=7, color="#a0522d")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
