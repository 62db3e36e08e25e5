"""Images: any file mode read as 8-bit RGB, unreadable files told apart, and the one PIL <-> tensor conversion.

Tensors of images are float32 in [0, 1]: ``[3, H, W]`` for one image, ``[N, 3, H, W]`` for a batch.
"""
from __future__ import annotations

from pathlib import Path

from typing import Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")

__all__ = ["IMAGE_EXTENSIONS", "to_rgb", "max_pixels", "open_rgb", "BadImage", "to_tensor01", "stack01", "read01",
           "to_pil", "resize_square"]


class BadImage(ValueError):
    """An image file that cannot be decoded."""


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB.

    16-bit and 32-bit grey ("I;16", "I", "F") are rescaled by their own range
    rather than clipped; palette and RGBA images are composited on black via
    PIL's conversion; "L", "1", "CMYK", "YCbCr" convert directly.
    """
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(img, dtype=np.float64)
        lo, hi = float(a.min()), float(a.max())
        a = (a - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(a)
        return Image.fromarray(a.round().astype(np.uint8), mode="L").convert("RGB")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def max_pixels() -> int:
    """The largest image (width x height) gifkit decodes: PIL's ``Image.MAX_IMAGE_PIXELS`` (about 89
    megapixels), beyond which a file is treated as a decompression bomb."""
    return int(Image.MAX_IMAGE_PIXELS or 0) or 1 << 62


def open_rgb(path: str | Path) -> Image.Image:
    """Open an image file fully (not lazily) as 8-bit RGB; raise :class:`BadImage` if it cannot be decoded:
    damaged, truncated, unreadable (permissions), or larger than :func:`max_pixels` (a decompression bomb:
    refused from its header, before any pixel is decoded)."""
    try:
        with Image.open(path) as im:
            w, h = im.size
            if w * h > max_pixels():
                raise BadImage(f"cannot read image {str(path)!r}: {w} x {h} pixels is over the limit of "
                               f"{max_pixels()} (PIL.Image.MAX_IMAGE_PIXELS; a decompression bomb?)")
            im.load()
            return to_rgb(im)
    except BadImage:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError,
            MemoryError) as e:
        raise BadImage(f"cannot read image {str(path)!r}: {e}") from e


def to_tensor01(image: Image.Image) -> torch.Tensor:
    """A PIL image (any mode) as float32 RGB ``[3, H, W]`` in [0, 1]."""
    a = np.asarray(to_rgb(image), dtype=np.uint8)  # [H, W, 3]
    return torch.from_numpy(a.copy()).permute(2, 0, 1).float() / 255.0


def stack01(images: Sequence[Image.Image], size: int | None = None) -> torch.Tensor:
    """PIL images as one batch ``[N, 3, H, W]`` in [0, 1]; ``size`` resizes each to ``size x size`` (bicubic)
    first (without it the images must share their size)."""
    if size is not None:
        images = [im if im.size == (size, size) else to_rgb(im).resize((size, size), Image.Resampling.BICUBIC)
                  for im in images]
    return torch.stack([to_tensor01(im) for im in images])


def read01(paths: Sequence[str | Path], size: int | None = None) -> torch.Tensor:
    """Image files as one batch ``[N, 3, H, W]`` in [0, 1] (see :func:`stack01`); unreadable files raise
    :class:`BadImage`."""
    return stack01([open_rgb(p) for p in paths], size)


def to_pil(images01: torch.Tensor, size: int | None = None) -> list[Image.Image]:
    """``[N, 3, H, W]`` in [0, 1] -> PIL RGB images (rounded to 8 bits; optionally resized, bicubic, to ``size``)."""
    arr = (images01.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [resize_square(Image.fromarray(a, "RGB"), size) for a in arr]


def resize_square(image: Image.Image, size: int | None) -> Image.Image:
    """``image`` resized (bicubic) to ``size x size``; unchanged when it has that size or ``size`` is None."""
    if size is None or image.size == (size, size):
        return image
    return image.resize((size, size), Image.Resampling.BICUBIC)
