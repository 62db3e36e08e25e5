"""Deterministic random streams.

Every random draw in gifkit comes from a ``torch.Generator`` seeded from
``(global seed, item index, variant index)``. The derivation is a hash, so
streams for different items never overlap and do not depend on how work is
batched, sharded or resumed.

The draws fix what is random; the arithmetic is another matter. On a CPU, runs under the same condition (torch
version, thread count, ...) give the same bytes. On CUDA some kernels (cuDNN's autotuned convolutions, atomic
adds, cuBLAS's workspace) may differ from run to run: :func:`deterministic_kernels` (``--deterministic``) asks
torch, cuDNN and cuBLAS for their deterministic versions.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import random

import numpy as np
import torch

__all__ = ["derive_seed", "generator", "generators", "py_random", "np_random", "deterministic_kernels",
           "CUBLAS_WORKSPACE"]

CUBLAS_WORKSPACE = ":4096:8"  # CUBLAS_WORKSPACE_CONFIG for deterministic cuBLAS (CUDA >= 10.2)


@contextlib.contextmanager
def deterministic_kernels(enabled: bool = True):
    """Within the block, deterministic kernels on CUDA (``--deterministic``): ``torch.use_deterministic_algorithms
    (True, warn_only=True)`` (an op without a deterministic kernel warns, naming itself, instead of failing the
    run), ``cudnn.benchmark = False``, ``cudnn.deterministic = True``, and ``CUBLAS_WORKSPACE_CONFIG`` (set to
    :data:`CUBLAS_WORKSPACE` when unset; cuBLAS reads it when it first runs, so for certainty set it before
    starting Python). The previous state comes back after the block. A no-op with ``enabled=False``."""
    if not enabled:
        yield
        return
    cudnn = torch.backends.cudnn
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             cudnn.benchmark, cudnn.deterministic, os.environ.get("CUBLAS_WORKSPACE_CONFIG"))
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(True, warn_only=True)
    cudnn.benchmark, cudnn.deterministic = False, True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        cudnn.benchmark, cudnn.deterministic = saved[2], saved[3]
        if saved[4] is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
        else:
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = saved[4]


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
