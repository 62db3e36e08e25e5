"""Deterministic random streams.

Every random draw in gifkit comes from a ``torch.Generator`` seeded from
``(global seed, item index, variant index)``. The derivation is a hash, so
streams for different items never overlap and do not depend on how work is
batched, sharded or resumed.
"""
from __future__ import annotations

import hashlib
import random

import numpy as np
import torch

__all__ = ["derive_seed", "generator", "generators", "py_random", "np_random"]


def derive_seed(*keys: int | str) -> int:
    """Map a tuple of keys, e.g. ``(seed, item, variant)``, to a 63-bit seed.

    ``derive_seed(0, 3, 1) != derive_seed(0, 1, 3)``; the same keys always give
    the same seed on every platform (BLAKE2b of the keys' text).
    """
    text = "/".join(str(k) for k in keys).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1


def generator(*keys: int | str, device: str | torch.device = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with ``derive_seed(*keys)``."""
    g = torch.Generator(device=device)
    g.manual_seed(derive_seed(*keys))
    return g


def generators(keys: list[tuple], device: str | torch.device = "cpu") -> list[torch.Generator]:
    """One generator per key tuple (for diffusers pipelines that take a list)."""
    return [generator(*k, device=device) for k in keys]


def py_random(*keys: int | str) -> random.Random:
    """A ``random.Random`` seeded from the keys (for choices over Python lists)."""
    return random.Random(derive_seed(*keys))


def np_random(*keys: int | str) -> np.random.Generator:
    """A NumPy generator seeded from the keys."""
    return np.random.default_rng(derive_seed(*keys))
