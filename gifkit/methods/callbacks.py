"""What runs around the imagination step without being the algorithm: callbacks of :class:`~gifkit.methods.gif.Imagination`.

The step (:meth:`gifkit.methods.gif.Imagination.__call__`) is Algorithm 1 and nothing else; it tells its callbacks
where it is, and they keep time, guard against non-finite scores, measure what S_div does to the gradient,
reproduce a quirk of the official code and write the metadata rows. A callback implements the events it needs
(every method of :class:`Callback` is a no-op by default); :class:`Callbacks` calls them in order.

Events, in the order the step reaches them: ``stage`` (a context around each stage, for timing),
``scoring_seeds`` / ``scoring_variants`` (contexts around the guide's look at the seeds and at the perturbed
variants), ``on_score`` (one group's score terms; a callback that returns ``False`` keeps the group out of the
ascent), ``before_backward`` (the kept terms of one guidance pass, before their gradient is taken),
``before_step`` (the gradients of (z, b), before the update), ``on_final`` (the projected latents, before they are
decoded; a callback may replace rows) and ``rows`` (the decoded images; callbacks fill each job's metadata).
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Iterator

import torch

from gifkit.core.guidance import CIFAR_MEAN, CIFAR_STD, GuidanceConfig, GuidanceTerms, entropy
from gifkit.core.prior import Job

__all__ = ["StepState", "Callback", "Callbacks", "Timer", "NonFiniteGuard", "DivDiagnostics", "OfficialClipNorm",
           "MetadataRows", "default_callbacks"]


@dataclass
class StepState:
    """What the step knows about its batch: the ``jobs`` (K = ``k`` per seed), the guide's probabilities on the
    seeds (``p_seed`` [B, C]) and its prediction ``y_hat`` [B], which jobs are ``flagged`` (left unperturbed), the
    score terms of each job's group, the ``prompts``, and the ``seconds`` per stage; callbacks may keep their own
    figures in ``extra``."""

    jobs: list[Job]
    k: int
    guidance: GuidanceConfig | None
    p_seed: torch.Tensor | None = None
    y_hat: torch.Tensor | None = None
    flagged: torch.Tensor | None = None
    terms: list = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        self.flagged = torch.zeros(len(self.jobs), dtype=torch.bool)
        self.terms = [None] * len(self.jobs)


class Callback:
    """A no-op for every event; subclasses implement the events they need (module docstring)."""

    def stage(self, state: StepState, name: str) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def scoring_seeds(self, state: StepState) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def scoring_variants(self, state: StepState) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def on_score(self, state: StepState, rows: slice, terms: GuidanceTerms) -> bool:
        return True

    def before_backward(self, state: StepState, kept: list[GuidanceTerms], z: torch.Tensor, b: torch.Tensor) -> None:
        pass

    def before_step(self, state: StepState, z: torch.Tensor, b: torch.Tensor) -> None:
        pass

    def on_final(self, state: StepState, f: torch.Tensor, final: torch.Tensor) -> torch.Tensor:
        return final

    def rows(self, state: StepState, images: torch.Tensor, rows: list[dict]) -> None:
        pass


class Callbacks:
    """The step's callbacks, called in order (contexts nest in order; ``on_score`` is ``False`` when any callback
    says so; ``on_final`` passes each callback's result to the next)."""

    def __init__(self, callbacks):
        self.callbacks = list(callbacks)

    @contextlib.contextmanager
    def _nested(self, event: str, *args) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            for c in self.callbacks:
                stack.enter_context(getattr(c, event)(*args))
            yield

    def stage(self, state, name):
        return self._nested("stage", state, name)

    def scoring_seeds(self, state):
        return self._nested("scoring_seeds", state)

    def scoring_variants(self, state):
        return self._nested("scoring_variants", state)

    def on_score(self, state, rows, terms) -> bool:
        return all([c.on_score(state, rows, terms) is not False for c in self.callbacks])

    def before_backward(self, state, kept, z, b) -> None:
        for c in self.callbacks:
            c.before_backward(state, kept, z, b)

    def before_step(self, state, z, b) -> None:
        for c in self.callbacks:
            c.before_step(state, z, b)

    def on_final(self, state, f, final):
        for c in self.callbacks:
            final = c.on_final(state, f, final)
        return final

    def rows(self, state, images) -> list[dict]:
        rows = [{} for _ in state.jobs]
        for c in self.callbacks:
            c.rows(state, images, rows)
        return rows


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Timer(Callback):
    """Seconds per stage into ``state.seconds`` (CUDA synchronised at each edge, so the split is honest)."""

    def __init__(self, device: torch.device):
        self.device = device

    @contextlib.contextmanager
    def stage(self, state, name):
        _sync(self.device)
        t = time.perf_counter()
        try:
            yield
        finally:
            _sync(self.device)
            state.seconds[name] = state.seconds.get(name, 0.0) + time.perf_counter() - t


class NonFiniteGuard(Callback):
    """A group whose score is not finite stays out of the ascent; a variant whose gradient is not finite does not
    move; both are ``flagged`` and left unperturbed (their final latent is f)."""

    def on_score(self, state, rows, terms):
        if math.isfinite(terms.s_inf + terms.s_div + sum(terms.extra.values())):
            return True
        state.flagged[rows] = True
        return False

    def before_step(self, state, z, b):
        with torch.no_grad():
            bad = ~(torch.isfinite(z.grad.flatten(1)).all(1) & torch.isfinite(b.grad.flatten(1)).all(1))
            state.flagged |= bad.cpu()
            for g in (z.grad, b.grad):
                g[state.flagged.to(g.device)] = 0.0

    def on_final(self, state, f, final):
        keep = state.flagged.to(f.device).view(-1, *[1] * (f.ndim - 1))
        return torch.where(keep, f, final)


class DivDiagnostics(Callback):
    """What S_div does to the signed step (``--div-diagnostics``), per variant: how many signs of the (z, b)
    gradient it flips, summed over steps (``div_sign_flips``), out of the entries compared (``div_grad_entries``:
    the gradient's entries times the steps), and the ratio of the S_div part's norm to the rest's (last step).

    The sign without S_div comes from its own backward of ``score - w_div S_div`` (the S_div branch gets an exact
    zero gradient there), never from the difference of two float32 gradients, which loses the rest where the
    S_div part is many times larger (a small ``div_temperature``) and then miscounts. Two extra backwards per
    guidance pass."""

    def __init__(self, guidance: GuidanceConfig):
        self.w_div = guidance.w_div

    def before_backward(self, state, kept, z, b):
        parts = state.extra.setdefault("g_parts", {name: [torch.zeros_like(z), torch.zeros_like(b)]
                                                    for name in ("div", "rest")})
        div_part, rest_part = z.new_zeros(()), z.new_zeros(())
        for t in kept:
            div_part = div_part + self.w_div * t.s_div_tensor
            rest_part = rest_part + (t.score - self.w_div * t.s_div_tensor)
        for name, part in (("div", div_part), ("rest", rest_part)):
            if part.requires_grad:
                for a, g in zip(parts[name], torch.autograd.grad(part, [z, b], retain_graph=True, allow_unused=True)):
                    if g is not None:
                        a += g

    def before_step(self, state, z, b):
        n = len(state.jobs)
        flips = state.extra.setdefault("div_flips", torch.zeros(n, dtype=torch.long))
        entries = state.extra.setdefault("div_entries", torch.zeros(n, dtype=torch.long))
        parts = state.extra.pop("g_parts", None) or {name: [torch.zeros_like(z), torch.zeros_like(b)]
                                                     for name in ("div", "rest")}
        with torch.no_grad():  # sign(g) vs sign(g without S_div): what S_div changes in the signed step
            g_all = torch.cat([z.grad.flatten(1), b.grad.flatten(1)], 1)
            g_div, g_rest = (torch.cat([g.flatten(1) for g in parts[name]], 1) for name in ("div", "rest"))
            flips += (torch.sign(g_all) != torch.sign(g_rest)).sum(1).cpu()
            entries += g_all.shape[1]
            state.extra["div_ratio"] = (g_div.norm(dim=1) / g_rest.norm(dim=1)).cpu()

    def rows(self, state, images, rows):
        n = len(state.jobs)
        flips = state.extra.get("div_flips", torch.zeros(n, dtype=torch.long))
        entries = state.extra.get("div_entries", torch.zeros(n, dtype=torch.long))
        ratio = state.extra.get("div_ratio", torch.full((n,), float("nan")))
        for j, row in enumerate(rows):
            row.update(div_sign_flips=int(flips[j]), div_grad_entries=int(entries[j]), div_grad_ratio=float(ratio[j]))


class OfficialClipNorm(Callback):
    """The official code's quirk (``--official-clip-norm``): the seeds reach CLIP normalised with CIFAR-10's
    mean/std, the perturbed variants not normalised at all."""

    def __init__(self, guide):
        if not hasattr(guide, "normalization"):
            raise ValueError("official_clip_norm applies to CLIP-guided image priors (ZeroShotClassifier) only")
        self.guide = guide

    def scoring_seeds(self, state):
        return self.guide.normalization(CIFAR_MEAN, CIFAR_STD)

    def scoring_variants(self, state):
        return self.guide.normalization((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))


class MetadataRows(Callback):
    """Each job's metadata: its prompt, the guide's prediction ``y_hat`` on the seed with p[y_hat] and the entropy
    on the seed and on the created image, whether it was flagged, and its group's score terms (and any criterion a
    method added to the score). The guide scores the created images here (no gradients)."""

    def __init__(self, guide):
        self.guide = guide

    def rows(self, state, images, rows):
        with torch.no_grad():
            p_out = self.guide.probs(images)  # [N, C]
        h_out, h_seed = entropy(p_out), entropy(state.p_seed)
        for j, row in enumerate(rows):
            s = j // state.k
            y = state.y_hat[s]
            row.update({"prompt": state.prompts[j] if state.prompts else "", "clip_y_hat": int(y),
                        "p_seed_yhat": float(state.p_seed[s, y]), "entropy_seed": float(h_seed[s]),
                        "p_yhat": float(p_out[j, y]), "entropy": float(h_out[j]), "flagged": int(state.flagged[j])})
            t = state.terms[j]
            if t is not None:
                row.update(s_inf=t.s_inf, s_div=t.s_div, **t.extra)

    def on_score(self, state, rows, terms):
        state.terms[rows] = [terms] * (rows.stop - rows.start)
        return True


def default_callbacks(guidance: GuidanceConfig | None, guide, device: torch.device) -> list[Callback]:
    """The callbacks of a method's step: timing, the metadata rows, the quirk and the S_div diagnostics when its
    settings ask for them, and the non-finite guard (after the diagnostics, which read the raw gradient)."""
    callbacks: list[Callback] = [Timer(device), MetadataRows(guide)]
    if guidance is not None and guidance.official_clip_norm:
        callbacks.append(OfficialClipNorm(guide))
    if guidance is not None and guidance.div_diagnostics:
        callbacks.append(DivDiagnostics(guidance))
    callbacks.append(NonFiniteGuard())
    return callbacks
