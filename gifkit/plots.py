"""Figures: grids of seeds and their generated variants."""
from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF
from torchvision.utils import make_grid

from gifkit.store import read_metadata

__all__ = ["expansion_grid"]


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
        ims = [dataset[s][0]] + [Image.open(root / f).convert("RGB") for f in rows["file_name"]]
        ims += [Image.new("RGB", (size, size))] * (k + 1 - len(ims))
        tiles += [TF.to_dtype(TF.to_image(im.resize((size, size), Image.Resampling.BICUBIC)), torch.float32, scale=True)
                  for im in ims]
    grid = make_grid(torch.stack(tiles), nrow=k + 1, padding=2, pad_value=1.0)  # [3, H, W]
    return TF.to_pil_image(grid)
