"""Latent perturbation (Eq. 1), its projection and the update rules.

GIF turns one seed latent ``f`` into ``K`` variants by a multiplicative noise
``z_k`` and an additive bias ``b_k``, then keeps each variant within an
L-infinity ball around ``f``:

    f'_k = P_{f,eps}( (1 + z_k) * f + b_k )                              (Eq. 1)

``(z, b)`` are then moved uphill on the guidance score ``S`` (see
``gifkit.core.guidance``). The official code does this with **one** signed-gradient
ascent step of size 0.1 (docs/design.md §1.6):

    z <- z + 0.1 * sign(dS/dz),    b <- b + 0.1 * sign(dS/db)

Two details of the official code are easy to miss and are kept here:

* the score is computed on the *unprojected* latent ``(1 + z) * f + b``
  (``perturb``), not on ``P_{f,eps}(...)``;
* the projection ``project_linf`` is applied only to the *final* latent, the
  one that is decoded (without gradients) and saved.

``LatentOptimizer`` exposes the number of steps, the step size and the update
rule ("sign", the official one, or "adam") so both the official procedure and
the paper's wording ("optimise z and b") can be run.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch

__all__ = [
    "UPDATE_RULES",
    "perturb",
    "project_linf",
    "init_noise",
    "sign_step",
    "LatentOptimizer",
]

UPDATE_RULES = ("sign", "adam")
NOISE_MODES = ("channel", "pixel")


def perturb(f: torch.Tensor, z: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The unprojected perturbation of Eq. 1: ``(1 + z) * f + b``.

    ``f`` is the seed latent, e.g. ``[1, C, H, W]`` (SD latent) or ``[1, T, D]``
    (MAE tokens); ``z`` and ``b`` broadcast against it, e.g. ``[K, C, 1, 1]``
    for channel-wise noise, so the result holds the ``K`` variants
    ``[K, C, H, W]``.
    """
    try:
        torch.broadcast_shapes(f.shape, z.shape, b.shape)
    except RuntimeError as err:
        raise ValueError(
            f"perturb: shapes do not broadcast: f {tuple(f.shape)}, "
            f"z {tuple(z.shape)}, b {tuple(b.shape)}"
        ) from err
    return f * (1 + z) + b


def project_linf(x: torch.Tensor, center: torch.Tensor, eps: float) -> torch.Tensor:
    """The projection P_{f,eps} of Eq. 1: clamp ``x`` element-wise into ``[c - eps, c + eps]``.

    ``P(x)_i = min(max(x_i, c_i - eps), c_i + eps)``, so ``|P(x) - c| <= eps``
    everywhere and ``P(x) = x`` where ``x`` is already inside the ball.
    ``center`` broadcasts against ``x`` (``[1, C, H, W]`` against
    ``[K, C, H, W]``). The gradient w.r.t. ``x`` is 1 inside the ball and 0
    where the clamp is active.
    """
    eps = float(eps)
    if math.isnan(eps) or eps < 0:
        raise ValueError(f"project_linf: eps must be a number >= 0, got {eps}")
    center = center.to(dtype=x.dtype, device=x.device)
    return torch.clamp(x, min=center - eps, max=center + eps)


def _channel_shape(f: torch.Tensor, k: int, channel_dim: int) -> list[int]:
    """``[k, 1, ..., C, ..., 1]``: ``C = f.shape[channel_dim]``, ones elsewhere."""
    dim = channel_dim % f.ndim if -f.ndim <= channel_dim < f.ndim else None
    if dim is None or dim == 0:
        raise ValueError(
            f"init_noise: channel_dim={channel_dim} must name a non-batch dim of f "
            f"with shape {tuple(f.shape)} (1..{f.ndim - 1} or a negative index)"
        )
    shape = [k] + [1] * (f.ndim - 1)
    shape[dim] = f.shape[dim]
    return shape


def init_noise(
    f: torch.Tensor,
    k: int,
    mode: str = "channel",
    generator: torch.Generator | None = None,
    channel_dim: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Initial noise and bias of Eq. 1 for ``k`` variants: ``z ~ U[0, 1)``, ``b ~ N(0, 1)``.

    The official code's init. ``z`` is drawn first, then ``b``, both from
    ``generator``. Shapes, for ``f`` of shape ``[N, C, H, W]``:

    * ``mode="channel"`` (the paper's default): ``[k, C, 1, 1]``, shared over
      space. For token features ``f`` of shape ``[N, T, D]`` pass
      ``channel_dim=-1`` to get ``[k, 1, D]`` (shared over tokens).
    * ``mode="pixel"`` (ablation, App. B.2): ``[k, *f.shape[1:]]``.

    The draws are made in float32 on the generator's device (``f``'s device
    without a generator) and then cast to ``f``'s dtype and device, so the same
    generator state gives the same values for any ``f`` dtype/device. (Casting
    to a half-precision dtype can round a ``z`` just below 1 up to 1.)
    The returned tensors do not require grad; call ``requires_grad_()``.
    """
    if mode not in NOISE_MODES:
        raise ValueError(f"init_noise: unknown mode {mode!r}; expected one of {NOISE_MODES}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"init_noise: k must be an int >= 1, got {k!r}")
    if f.ndim < 2:
        raise ValueError(f"init_noise: f needs a batch dim and at least one more, got shape {tuple(f.shape)}")
    if not f.is_floating_point():
        raise ValueError(f"init_noise: f must be a floating tensor, got {f.dtype}")
    if mode == "channel":
        shape = _channel_shape(f, k, channel_dim)  # [k, C, 1, 1] or [k, 1, D]
    else:
        shape = [k, *f.shape[1:]]  # [k, C, H, W]
    device = generator.device if generator is not None else f.device
    z = torch.rand(shape, generator=generator, dtype=torch.float32, device=device)
    b = torch.randn(shape, generator=generator, dtype=torch.float32, device=device)
    return z.to(device=f.device, dtype=f.dtype), b.to(device=f.device, dtype=f.dtype)


def _as_list(params: torch.Tensor | Iterable[torch.Tensor]) -> list[torch.Tensor]:
    """Accept one tensor or an iterable of tensors."""
    return [params] if isinstance(params, torch.Tensor) else list(params)


@torch.no_grad()
def sign_step(
    params: torch.Tensor | Sequence[torch.Tensor],
    grads: torch.Tensor | Sequence[torch.Tensor],
    step_size: float = 0.1,
) -> None:
    """One signed-gradient *ascent* step, in place: ``p <- p + step_size * sign(g)``.

    The official GIF update (docs/design.md §1.6) with ``step_size = 0.1``. Every
    entry with a nonzero gradient moves by exactly ``step_size``; entries whose
    gradient is exactly 0 do not move (``sign(0) = 0``).
    """
    params, grads = _as_list(params), _as_list(grads)
    if len(params) != len(grads):
        raise ValueError(f"sign_step: {len(params)} params but {len(grads)} grads")
    if not step_size > 0:
        raise ValueError(f"sign_step: step_size must be > 0, got {step_size}")
    for i, (p, g) in enumerate(zip(params, grads)):
        if g is None:
            raise ValueError(f"sign_step: param {i} has no gradient (was backward() called?)")
        if g.shape != p.shape:
            raise ValueError(f"sign_step: param {i} has shape {tuple(p.shape)} but grad {tuple(g.shape)}")
        p.add_(torch.sign(g), alpha=step_size)


class LatentOptimizer:
    """Ascent on the guidance score w.r.t. the perturbation ``(z, b)``.

    ``rule="sign"`` (default, official): each ``step()`` is ``sign_step`` with
    ``step_size``; the official GIF is ``steps=1, step_size=0.1``.
    ``rule="adam"``: ``torch.optim.Adam(params, lr=lr or step_size,
    maximize=True)``. ``steps`` is how many times the caller should compute the
    score (on the unprojected latent), call ``backward()`` and ``step()``;
    ``steps=0`` means no guidance (random perturbation only). After each step
    the gradients are zeroed.

    Usage::

        opt = LatentOptimizer([z, b], steps=1, step_size=0.1)
        for _ in range(opt.steps):
            score = gif_score(...(perturb(f, z, b))...)
            score.backward()
            opt.step()
        final = project_linf(perturb(f, z, b), f, eps)
    """

    def __init__(
        self,
        params: torch.Tensor | Iterable[torch.Tensor],
        rule: str = "sign",
        steps: int = 1,
        step_size: float = 0.1,
        lr: float | None = None,
    ) -> None:
        if rule not in UPDATE_RULES:
            raise ValueError(f"LatentOptimizer: unknown rule {rule!r}; expected one of {UPDATE_RULES}")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"LatentOptimizer: steps must be an int >= 0, got {steps!r}")
        if not step_size > 0:
            raise ValueError(f"LatentOptimizer: step_size must be > 0, got {step_size}")
        if lr is not None and rule != "adam":
            raise ValueError("LatentOptimizer: lr only applies to rule='adam'; use step_size for 'sign'")
        if lr is not None and not lr > 0:
            raise ValueError(f"LatentOptimizer: lr must be > 0, got {lr}")
        self.params = _as_list(params)
        if not self.params:
            raise ValueError("LatentOptimizer: no parameters given")
        self.rule, self.steps, self.step_size = rule, steps, float(step_size)
        self.lr = float(lr) if lr is not None else self.step_size
        self.n_steps = 0  # updates applied so far
        self._adam = (
            torch.optim.Adam(self.params, lr=self.lr, maximize=True) if rule == "adam" else None
        )

    def step(self) -> None:
        """Apply one ascent update from the params' ``.grad``, then zero the grads."""
        for i, p in enumerate(self.params):
            if p.grad is None:
                raise ValueError(f"LatentOptimizer.step: param {i} has no gradient (was backward() called?)")
        if self._adam is not None:
            self._adam.step()
        else:
            sign_step(self.params, [p.grad for p in self.params], self.step_size)
        for p in self.params:
            p.grad.zero_()
        self.n_steps += 1
