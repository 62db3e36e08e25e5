"""Image corruptions shaped after CIFAR-100-C's (Hendrycks & Dietterich 2019): seven simple stand-ins at severities
1..5, shared by the loaders that build corrupted test sets (``fashion-mnist-c``) and by the smoke profile's
CIFAR-100-C stand-in (:func:`gifkit.experiments.prelim.write_fake_cifar100c`).

Each corruption maps a PIL image and a severity ``s`` to a corrupted image, with the parameter
``p = CORRUPTIONS[name][s - 1]`` (pixel values in 0..255):

======================  ================================================================
``gaussian_noise``      ``x + N(0, (255 p)^2)`` per pixel
``impulse_noise``       a share ``p`` of pixels set to 0 or 255 (salt and pepper)
``defocus_blur``        Gaussian blur of radius ``p * width / 32``
``brightness``          ``x + 255 p``
``contrast``            ``(x - mean) p + mean`` (mean over the image, per channel)
``pixelate``            box-downsample by ``p``, then box-upsample
``jpeg_compression``    JPEG at quality ``p``
======================  ================================================================

then rounded and clipped to 0..255. The random draws come from the generator the caller passes (seed it
from the item, e.g. ``np_random(seed, name, severity, index)``, and the set is the same on every machine).
These are stand-ins written for gifkit, not the benchmark's code; the real CIFAR-100-C is read from its
official files (:mod:`gifkit.data.cifar`).
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter

__all__ = ["CORRUPTIONS", "corrupt"]

# severity 1..5 parameters, shaped after Hendrycks & Dietterich's CIFAR settings (stand-ins, not their code)
CORRUPTIONS: dict[str, tuple] = {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),
    "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),
    "defocus_blur": (0.4, 0.6, 0.8, 1.0, 1.5),
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),
    "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65),
    "jpeg_compression": (80, 65, 58, 50, 40),
}


def _noise(a: np.ndarray, rng, sigma: float) -> np.ndarray:
    return a + rng.normal(0, sigma * 255, a.shape)


def _impulse(a: np.ndarray, rng, amount: float) -> np.ndarray:
    a = a.copy()
    m = rng.random(a.shape[:2])
    a[m < amount / 2] = 0
    a[m > 1 - amount / 2] = 255
    return a


def _blur(im: Image.Image, radius: float) -> np.ndarray:
    return np.asarray(im.filter(ImageFilter.GaussianBlur(radius)), dtype=np.float64)


def _pixelate(im: Image.Image, factor: float) -> np.ndarray:
    w, h = im.size
    small = im.resize((max(1, int(w * factor)), max(1, int(h * factor))), Image.Resampling.BOX)
    return np.asarray(small.resize((w, h), Image.Resampling.BOX), dtype=np.float64)


def _jpeg(im: Image.Image, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    with Image.open(buf) as j:
        return np.asarray(j.convert("RGB"), dtype=np.float64)


def corrupt(image: Image.Image, corruption: str, severity: int, rng: np.random.Generator) -> Image.Image:
    """``image`` (any mode; returned as RGB) with ``corruption`` at ``severity`` 1..5 (see the module docstring)."""
    if corruption not in CORRUPTIONS:
        raise ValueError(f"no stand-in for {corruption!r}; known: {', '.join(CORRUPTIONS)}")
    if not 1 <= int(severity) <= 5:
        raise ValueError(f"severity must be 1..5, got {severity}")
    p = CORRUPTIONS[corruption][int(severity) - 1]
    im = image.convert("RGB")
    a = np.asarray(im, dtype=np.float64)
    if corruption == "gaussian_noise":
        a = _noise(a, rng, p)
    elif corruption == "impulse_noise":
        a = _impulse(a, rng, p)
    elif corruption == "defocus_blur":
        a = _blur(im, p * im.size[0] / 32)
    elif corruption == "brightness":
        a = a + p * 255
    elif corruption == "contrast":
        a = (a - a.mean(axis=(0, 1), keepdims=True)) * p + a.mean(axis=(0, 1), keepdims=True)
    elif corruption == "pixelate":
        a = _pixelate(im, p)
    else:
        a = _jpeg(im, int(p))
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8))
