"""Figures: grids of seeds and their generated variants (by seed, or one row per class)."""
from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF
from torchvision.utils import make_grid

from gifkit.io.images import open_rgb
from gifkit.io.store import read_metadata

__all__ = ["expansion_grid", "class_grid"]


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

