"""Guided imagination: Algorithm 1 of the paper on one batch of (seed, variant) jobs, for any prior and guide.

For every job the prior gives a latent f (1). A guided method draws channel-wise noise (z, b) per job (2, Eq. 1),
scores the decoded, *unprojected* perturbed latents with S = S_inf + S_div (3, Eqs. 5, 6), takes the signed step on
(z, b) (4), projects the final latent into the L-infinity ball of radius eps around f (5) and decodes it without
gradients (6). An unguided method decodes f as it is.

:class:`Imagination` is that step; a method file (``gif_sd.py``, ``gif_mae.py``, ...) subclasses it with its
config and says which prior (:meth:`Imagination.build_prior`) and which guide (:meth:`Imagination.build_guide`)
it uses. What is not the algorithm (timing, the non-finite guard, diagnostics, a quirk of the official code,
metadata) runs in callbacks (:mod:`gifkit.methods.callbacks`). A new criterion in the score is a subclass that
overrides :meth:`Imagination.score` (docs/extending.md).

Memory: the guidance pass (decode with gradients + guide + backward) runs ``prior.guidance_seeds_per_pass`` seeds
at a time (SD and MAE: one seed, its K variants together for S_div), so it does not grow with the batch size.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar, Sequence

import torch

from gifkit.config import DTYPES, option
from gifkit.core.guidance import RECORD_IF_SET, FeatureClassifier, GuidanceConfig, GuidanceTerms, score_groups
from gifkit.core.perturb import LatentOptimizer, init_noise, perturb, project_linf
from gifkit.core.prior import Job, Prior
from gifkit.core.rng import generator
from gifkit.io.images import to_tensor01
from gifkit.io.runs import run_environment
from gifkit.methods.base import Created, ExpansionMethod, MethodConfig, config_values
from gifkit.methods.callbacks import Callbacks, StepState, default_callbacks
from gifkit.models.guides import GUIDE_HELP

__all__ = ["GIFConfig", "CheckpointOptions", "ClipGuideOptions", "Imagination", "job_noise", "jobs_per_seed",
           "checkpoint_dtype"]


@dataclass
class CheckpointOptions:
    """Options of a method with a real checkpoint: where it is and the precision it runs in."""

    model_id: str | None = option(None, "hub id or local folder of the prior's checkpoint (default: the method's)")
    dtype: str | None = option(None, "precision of the real checkpoints (default auto: bf16 on CUDA GPUs of "
                                     "compute capability >= 8, fp16 on older ones, fp32 on a CPU)", choices=DTYPES)


@dataclass
class ClipGuideOptions:
    """Options of a method guided (or scored) by an open_clip CLIP."""

    clip_model: str | None = option(None, "open_clip architecture of the guiding CLIP (default "
                                          "ViT-B-32-quickgelu; alia: of its semantic filter, ViT-L-14-quickgelu)")
    clip_pretrained: str | None = option(None, "the guiding CLIP's weights: an open_clip tag (default openai) or a "
                                               "local file or folder")


@dataclass
class GIFConfig(GuidanceConfig, MethodConfig):
    """The settings of a guided method: the guidance step's (:class:`GuidanceConfig`), the guide and its prior's.

    ``guide``: the classifier that scores the variants, resolved by :func:`gifkit.models.guides.resolve_guide`
    (a name or folder, or in Python a :class:`~gifkit.core.guidance.FeatureClassifier`); ``None``: the method's own.
    """

    guide: str | None = option(None, GUIDE_HELP)


def job_noise(f: torch.Tensor, jobs: list[Job], mode: str = "channel", channel_dim: int = 1):
    """Initial (z, b) of Eq. 1 for every job, each drawn from its own generator keyed by ``job.key``.

    Row j of ``f`` belongs to ``jobs[j]``; returns float32 ``z, b`` of shape [N, C, 1, 1] (channel mode) or
    [N, *f.shape[1:]] (pixel mode), independent of batching.
    """
    z, b = zip(*[init_noise(f[j:j + 1], 1, mode, generator(*job.key, "noise"), channel_dim)
                 for j, job in enumerate(jobs)])
    return torch.cat(z).float(), torch.cat(b).float()


def jobs_per_seed(jobs: Sequence[Job]) -> int:
    """K of a seed-major job list (every seed's K variants consecutive); a clear error for any other list."""
    if not jobs:
        raise ValueError("no jobs")
    k = next((j for j, job in enumerate(jobs) if job.index != jobs[0].index), len(jobs))
    if len(jobs) % k or any(job.index != jobs[j - j % k].index or job.variant != j % k for j, job in enumerate(jobs)):
        raise ValueError(f"jobs must hold K = {k} consecutive variants 0..K-1 of every seed")
    return k


class Imagination(ExpansionMethod):
    """A prior, a guide and (for a guided method) the GIF step: Algorithm 1 per batch (module docstring).

    Subclasses set ``Config`` and ``guided`` and implement :meth:`build_prior`; :meth:`build_guide` defaults to
    the profile's zero-shot CLIP. ``prior`` / ``guide`` given to the constructor are used as they are (shared
    models). ``callbacks``: extra :class:`~gifkit.methods.callbacks.Callback` objects after the default ones.
    """

    Config: ClassVar[type[MethodConfig]] = GIFConfig
    guided: ClassVar[bool] = True
    stages = ("prior", "guidance", "decode")

    def __init__(self, config, class_names, *, profile="smoke", device=None, prior: Prior | None = None,
                 guide: FeatureClassifier | None = None, callbacks=(), seeds_per_pass: int | None = None):
        super().__init__(config, class_names, profile=profile, device=device)
        if seeds_per_pass is not None and int(seeds_per_pass) < 1:
            raise ValueError(f"seeds_per_pass must be >= 1, got {seeds_per_pass}")
        self.seeds_per_pass = seeds_per_pass
        self.guidance = GuidanceConfig.of(config) if self.guided else None
        self.prior = prior if prior is not None else self.build_prior()
        self.guide = guide if guide is not None else self.build_guide()
        self.callbacks = [*default_callbacks(self.guidance, self.guide, self.prior.device), *callbacks]

    @staticmethod
    def default_device() -> torch.device:
        from gifkit.models.hub import best_device

        return best_device()

    @classmethod
    def from_models(cls, prior: Prior, guide: FeatureClassifier, class_names: Sequence[str] | None = None, *,
                    profile: str = "smoke", **options) -> "Imagination":
        """The method on models already built (your own prior or guide, or models several methods share);
        ``options`` set the step (``eps``, ``opt_steps``, ...); ``class_names`` default the guide's."""
        names = class_names if class_names is not None else guide.class_names
        return cls(cls.Config.resolve(profile, cls.name, **options), names, profile=profile, device=prior.device,
                   prior=prior, guide=guide)

    @classmethod
    def from_pretrained(cls, model_id: str, class_names: Sequence[str], *, profile: str = "paper",
                        **options) -> "Imagination":
        """The method on the checkpoint ``model_id`` (a hub id or a local folder) of its prior."""
        return cls.from_profile(class_names, profile=profile, model_id=model_id, **options)

    # ------------------------------------------------------------------ models

    def build_prior(self) -> Prior:
        """The prior of this method's config on its profile and device."""
        raise NotImplementedError(f"{type(self).__name__} builds no prior")

    def build_guide(self) -> FeatureClassifier:
        """The guide: the ``guide`` option's (:meth:`chosen_guide`), else the profile's zero-shot CLIP
        (``clip_model`` / ``clip_pretrained`` choose another)."""
        from gifkit.models.guides import zero_shot_classifier

        if getattr(self.config, "guide", None) is not None:
            return self.chosen_guide()
        return zero_shot_classifier(self.profile, self.class_names, self.device, self.config.clip_model,
                                    self.config.clip_pretrained)

    def chosen_guide(self) -> FeatureClassifier:
        """The guide the ``guide`` option names (:func:`gifkit.models.guides.resolve_guide`; a prototype guide
        takes ``support``, ``guide_size`` and ``logit_scale`` from the config where the method has them)."""
        from gifkit.models.guides import resolve_guide

        cfg = self.config
        return resolve_guide(cfg.guide, self.class_names, profile=self.profile, device=self.device,
                             support=getattr(cfg, "support", None), image_size=getattr(cfg, "guide_size", 112),
                             logit_scale=getattr(cfg, "logit_scale", "fit"))

    def replace(self, **options) -> "Imagination":
        """The method with other options; the prior and the guide are shared when only the step's settings
        (the :class:`GuidanceConfig` fields) change, so ablations of one method share its models."""
        step_fields = {f.name for f in dataclasses.fields(GuidanceConfig)}
        given = {k: v for k, v in options.items() if v is not None}
        config = self.Config.resolve(self.profile, self.name, **{**config_values(self.config), **given})
        shared = set(given) <= step_fields
        return type(self)(config, self.class_names, profile=self.profile, device=self.device,
                          prior=self.prior if shared else None, guide=self.guide if shared else None)

    # ------------------------------------------------------------------ what the driver reads

    def record(self) -> dict:
        return {"params": dict(self.prior.params), "guidance": self.guidance.record() if self.guidance else None,
                "provenance": {"profile": self.profile, "models": {"prior": self.prior.provenance,
                                                                   "guide": self.guide.provenance}}}

    def environment(self) -> dict:
        return run_environment(self.prior.device, (self.prior, self.guide))

    def auto_batch_size(self, ratio: int, *, limit: int = 16) -> int:
        """Seeds per batch from the free memory of a CUDA device: a batch of B seeds needs about
        ``B * K * m(no grad) + seeds_per_pass * K * m(grad)`` (``prior.memory_per_image``); B is the largest
        that fits in 85 % of the free memory (at least 1, at most ``limit``). Elsewhere: the default."""
        grad, sample = self.prior.memory_per_image(True), self.prior.memory_per_image(False)
        if self.prior.device.type != "cuda" or grad is None or sample is None:
            return self.default_batch_size
        free, _ = torch.cuda.mem_get_info(self.prior.device)
        per_pass = self.prior.guidance_seeds_per_pass or 1
        budget = 0.85 * free - per_pass * ratio * grad
        return int(max(1, min(limit, budget // max(1.0, ratio * sample))))

    # ------------------------------------------------------------------ the algorithm

    def __call__(self, jobs: list[Job]) -> Created:
        """Algorithm 1 on ``jobs`` (seed-major, K consecutive jobs per seed): the created images [N, 3, R, R]
        and each job's metadata row (the prior's settings, the step's settings, the callbacks' figures)."""
        k, g = jobs_per_seed(jobs), self.guidance
        state = StepState(jobs, k, g)
        cb = Callbacks(self.callbacks)
        # 1. prior latent f
        with cb.stage(state, "prior"):
            lat = self.prior.prepare(jobs)
            f, state.prompts = lat.f.detach(), lat.prompts  # f [N, ...]
        with cb.stage(state, "guidance"):
            with torch.no_grad(), cb.scoring_seeds(state):  # the guide's prediction y_hat on each seed
                state.p_seed = torch.cat([self.guide.probs(to_tensor01(jobs[s * k].image)[None])
                                          for s in range(len(jobs) // k)])  # [B, C]
            state.y_hat = state.p_seed.argmax(-1)  # [B]
            final = f
            if g is not None:
                # 2. noise z, b (Eq. 1), one draw per job
                z, b = job_noise(f, jobs, g.noise, self.prior.channel_dim)  # [N, C, 1, 1] (channel mode)
                z, b = z.requires_grad_(True), b.requires_grad_(True)
                opt = LatentOptimizer([z, b], rule=g.update, steps=g.opt_steps, step_size=g.step_size, lr=g.lr)
                for _ in range(opt.steps):
                    # 3. score S_inf + S_div (Eqs. 5, 6) of the unprojected (1 + z) f + b, and its gradient
                    self.ascend(state, cb, f, z, b)
                    # 4. signed step (or Adam) on (z, b)
                    cb.before_step(state, z, b)
                    opt.step()
                # 5. project into the eps ball around f
                with torch.no_grad():
                    final = project_linf(perturb(f.float(), z, b), f.float(), g.eps).to(f.dtype)
                    final = cb.on_final(state, f, final)
        # 6. decode
        with cb.stage(state, "decode"):
            images = self.prior.generate(final, jobs)  # [N, 3, R, R]
        with cb.stage(state, "guidance"):
            rows = cb.rows(state, images)
        settings = {**self.prior.params, **(self.step_columns() if g is not None else {})}
        return Created(jobs, images, [{**settings, **row} for row in rows], seconds=state.seconds)

    def ascend(self, state: StepState, cb: Callbacks, f: torch.Tensor, z: torch.Tensor, b: torch.Tensor) -> None:
        """Step 3: the gradient of the score w.r.t. (z, b) into ``z.grad``, ``b.grad``, one pass of seeds at a
        time (a seed's score depends on its own rows only, so the passes add up to one pass over the batch)."""
        k, n_seeds = state.k, len(state.jobs) // state.k
        per = int(self.seeds_per_pass or self.prior.guidance_seeds_per_pass or max(n_seeds, 1))
        z.grad, b.grad = torch.zeros_like(z), torch.zeros_like(b)
        for first in range(0, n_seeds, per):
            last = min(n_seeds, first + per)
            part = slice(first * k, last * k)
            with cb.scoring_variants(state):  # decode with gradients, the guide's features
                feats = self.prior.guidance_features(perturb(f[part].float(), z[part], b[part]), self.guide, part)
            p_var = self.guide.probs_from_features(feats)  # [n_part, C]
            unit = self.guide.unit_features(feats)  # [n_part, D] what S_div compares (CLIP: feats themselves)
            kept = []
            for s in range(first, last):
                local = slice((s - first) * k, (s - first + 1) * k)
                for grp, terms in self.score(state.p_seed[s], p_var[local], unit[local], int(state.y_hat[s])):
                    if cb.on_score(state, slice(s * k + grp.start, s * k + grp.stop), terms):
                        kept.append(terms)
            total = feats.new_zeros(())
            for terms in kept:
                total = total + terms.score
            cb.before_backward(state, kept, z, b)
            if total.requires_grad:
                total.backward()
            del feats, unit, p_var, total, kept

    def score(self, p_seed: torch.Tensor, p_var: torch.Tensor, feats: torch.Tensor,
              y_hat: int) -> list[tuple[slice, GuidanceTerms]]:
        """The score of one seed's K variants, group by group: ``w_inf S_inf + w_div S_div`` (Eqs. 5, 6,
        :func:`gifkit.core.guidance.score_groups`). ``p_seed`` [C], ``p_var`` [K, C], ``feats`` [K, D] (the
        guide's L2-normalised features). Override to add a criterion (``GuidanceTerms.plus``)."""
        return score_groups(p_seed, p_var, feats, y_hat, self.guidance)

    def step_columns(self) -> dict:
        """The step's settings recorded in every metadata row."""
        g = self.guidance
        return {"eps": g.eps, "noise": g.noise, "update": g.update, "opt_steps": g.opt_steps,
                "step_size": g.step_size, "w_inf": g.w_inf, "w_div": g.w_div, "div_group": g.div_group,
                "div_temperature": g.div_temperature,
                **({"div_quirk": g.div_quirk} if g.div_quirk != RECORD_IF_SET["div_quirk"] else {})}


def checkpoint_dtype(profile: str, device: torch.device, dtype: str | None) -> torch.dtype | None:
    """The precision of a real checkpoint: ``dtype`` (``--dtype``) or the profile's (``auto``: bf16 on CUDA GPUs
    of compute capability >= 8, fp16 on older ones, fp32 on a CPU; :func:`gifkit.models.hub.resolve_dtype`).
    Tiny models stay float32 unless ``dtype`` is given (``None``)."""
    from gifkit.config import get_profile
    from gifkit.models.hub import resolve_dtype

    prof = get_profile(profile)
    if prof.tiny and dtype is None:
        return None
    return resolve_dtype(dtype or prof.dtype, device)
