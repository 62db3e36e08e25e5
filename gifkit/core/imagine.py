"""The guided imagination loop over seeds x K variants (Algorithm 1 of the paper).

For a batch of seeds, every (seed, variant) job gets a latent f from the prior.
Guided methods then draw channel-wise noise (z, b) per job (Eq. 1), compute
the GIF score S = S_inf + S_div (Eqs. 5, 6) of the decoded, *unprojected*
perturbed latents, take the update step(s) on (z, b), project the final latent
into the L-infinity ball of radius eps around f and decode it without
gradients. Unguided methods decode f as it is.

Work is cut into batches of ``batch_size`` seeds (``batch_size * K`` images
through the prior's sampler at once). The guidance pass (decode with
gradients + CLIP + backward) runs ``seeds_per_pass`` seeds at a time (SD and
MAE: one seed, its K variants together for S_div), so its memory does not
grow with the batch size. Batches are the unit of resume and of sharding: batch j
runs on process ``j % num_processes``, and a batch whose part file and images
exist is skipped, so a resumed or sharded run writes what one uninterrupted
run writes.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from gifkit.config import Check, check_fields, option
from gifkit.core.guidance import CIFAR_MEAN, CIFAR_STD, GuidanceTerms, entropy, guidance_terms
from gifkit.core.perturb import NOISE_MODES, UPDATE_RULES, LatentOptimizer, init_noise, perturb, project_linf
from gifkit.core.prior import Job, Prior
from gifkit.core.rng import derive_seed, generator
from gifkit.io.datasets import seed_path
from gifkit.io.files import read_json
from gifkit.io.images import to_pil, to_tensor01
from gifkit.io.runs import ExpansionRun, run_environment
from gifkit.io.store import RUN_FILE, SKIPPED_FILE

__all__ = ["GuidanceConfig", "ExpandResult", "group_slices", "score_groups", "job_noise", "imagine_batch",
           "provenance", "auto_batch_size", "expand"]


@dataclass
class GuidanceConfig:
    """Settings of the guided latent optimisation (defaults: the official GIF-SD code).

    ``eps``: L-inf radius of the projection; ``noise``: "channel" (paper) or "pixel" (App. B.2); ``update``:
    "sign" (one step of ``step_size``, official) or "adam" (``opt_steps`` steps at ``lr``); ``w_inf`` /
    ``w_div`` weight the two criteria (Tables 20-21 ablate them); ``div_group`` / ``div_temperature``: how
    S_div groups a seed's variants and how sharp its softmax is (:func:`score_groups`).
    """

    eps: float = option(0.8, "L-inf radius of the latent projection (Eq. 1)", check=Check(0))
    noise: str = option("channel", "channel-wise (the paper) or pixel-wise (App. B.2) noise", choices=NOISE_MODES)
    update: str = option("sign", "signed-gradient step (official) or Adam", choices=UPDATE_RULES)
    opt_steps: int = option(1, "guidance steps on (z, b) (official 1; 0: random perturbation only)",
                            check=Check(0, 10_000, integer=True))
    step_size: float = option(0.1, "size of each signed step (official 0.1)", check=Check(0))
    lr: float | None = option(None, "Adam learning rate (--update adam; default: the step size)",
                              check=Check(0, lo_open=True))
    w_inf: float = option(1.0, "weight of S_inf (0 ablates it)", check=Check())
    w_div: float = option(1.0, "weight of S_div (0 ablates it)", check=Check())
    div_group: int = option(2, "S_div over groups of this many variants of a seed (official: 2, as its "
                               "--expanded_batch_size; 0: all K variants together)", check=Check(0, integer=True))
    div_temperature: float = option(1.0, "softmax temperature of S_div (official and paper: 1, at which S_div "
                                         "hardly moves a sign; smaller makes it matter, docs/design.md §1.5)",
                                    check=Check(0, lo_open=True))
    div_diagnostics: bool = option(False, "measure, per variant, how many signs of the (z, b) gradient S_div "
                                          "flips and the ratio of the two gradients' norms (one extra backward)",
                                   action="store_true")
    official_clip_norm: bool = option(
        False, "reproduce the official code's quirk: seeds normalised with CIFAR mean/std for CLIP, created images "
               "not normalised (default: CLIP's own preprocessing for both)", action="store_true")

    def __post_init__(self):
        check_fields(self)
        if self.noise not in NOISE_MODES:
            raise ValueError(f"noise must be one of {NOISE_MODES}, got {self.noise!r}")
        if self.update not in UPDATE_RULES:
            raise ValueError(f"update must be one of {UPDATE_RULES}, got {self.update!r}")


def group_slices(k: int, group: int) -> list[slice]:
    """The variants ``0..k-1`` of one seed cut into consecutive groups of ``group`` (``0``: one group of all).

    ``group_slices(5, 2) == [slice(0, 2), slice(2, 4), slice(4, 5)]``: the official run's pairs, whose last group
    holds one variant (its S_div is 0).
    """
    if group <= 0 or group >= k:
        return [slice(0, k)]
    return [slice(a, min(a + group, k)) for a in range(0, k, group)]


def score_groups(p_seed: torch.Tensor, p_var: torch.Tensor, feats: torch.Tensor, y_hat: int,
                 guidance: GuidanceConfig) -> list[tuple[slice, GuidanceTerms]]:
    """The GIF score terms of one seed's K variants, group by group (:func:`group_slices`).

    Each group ``g`` is scored as the official code scores one batch: ``S_g = w_inf S_inf(g) + w_div S_div(g)``
    (Eqs. 5, 6, :func:`gifkit.core.guidance.guidance_terms`); the loop ascends ``sum_g S_g``, so a variant's
    gradient comes from its own group only. ``p_var`` ``[K, C]``, ``feats`` ``[K, D]``.
    """
    return [(g, guidance_terms(p_seed, p_var[g], feats[g], guidance.w_inf, guidance.w_div, y_hat=y_hat,
                               div_temperature=guidance.div_temperature))
            for g in group_slices(p_var.shape[0], guidance.div_group)]


@dataclass
class ExpandResult:
    """Summary of one :func:`expand` call (this process's share)."""

    out: Path
    written: int = 0
    existing: int = 0  # images already on disk (resume)
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (seed index, reason)
    flagged: int = 0  # variants left unperturbed because the score was not finite
    div_flips: int = 0  # with div_diagnostics: gradient signs S_div flipped (this process's written images)
    div_entries: int = 0  # ... out of this many (z, b) gradient entries
    div_ratios: list = field(default_factory=list)  # ... and |grad S_div| / |grad of the rest| per variant
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=lambda: {"prior": 0.0, "guidance": 0.0, "decode": 0.0, "io": 0.0})

    @property
    def seconds_per_image(self) -> float:
        return self.seconds / self.written if self.written else float("nan")

    def summary(self) -> str:
        lines = [f"expansion in {self.out}: {self.written} written, {self.existing} already there, "
                 f"{len(self.skipped)} seeds skipped, {self.flagged} variants flagged (non-finite score)",
                 f"{self.seconds:.1f} s, " + (f"{self.seconds_per_image:.3f} s per written image "
                                                 if self.written else "nothing new to write ")
                 + "(" + ", ".join(f"{k} {v:.1f} s" for k, v in self.timings.items()) + ")"]
        if self.div_entries:
            med = float(np.nanmedian(self.div_ratios)) if self.div_ratios else float("nan")
            lines.append(f"S_div flipped {self.div_flips} of {self.div_entries} gradient signs "
                         f"({100 * self.div_flips / self.div_entries:.3g} %); median |grad S_div| / |grad rest| "
                         f"= {med:.3g}")
        lines += [f"  skipped seed {i}: {why}" for i, why in self.skipped[:20]]
        if len(self.skipped) > 20:
            lines.append(f"  ... and {len(self.skipped) - 20} more (see {SKIPPED_FILE})")
        return "\n".join(lines)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def job_noise(f: torch.Tensor, jobs: list[Job], mode: str = "channel", channel_dim: int = 1):
    """Initial (z, b) of Eq. 1 for every job, each drawn from its own generator keyed by ``job.key``.

    Row j of ``f`` belongs to ``jobs[j]``; returns float32 ``z, b`` of shape [N, C, 1, 1]
    (channel mode) or [N, *f.shape[1:]] (pixel mode), independent of batching.
    """
    z, b = zip(*[init_noise(f[j:j + 1], 1, mode, generator(*job.key, "noise"), channel_dim)
                 for j, job in enumerate(jobs)])
    return torch.cat(z).float(), torch.cat(b).float()


def imagine_batch(prior: Prior, classifier, jobs: list[Job], ratio: int,
                  guidance: GuidanceConfig | None, timings: dict[str, float] | None = None,
                  seeds_per_pass: int | None = None):
    """Create the images of ``jobs`` (seed-major: K consecutive jobs per seed).

    The guidance pass runs ``seeds_per_pass`` seeds (``seeds_per_pass * K`` variants) at a time (default: the
    prior's ``guidance_seeds_per_pass``, 1 for the SD and MAE priors whose decoders dominate memory, else the whole
    batch): decode with
    gradients, CLIP, the seed's score, backward (gradients of later seeds accumulate in (z, b); a seed's score
    depends on its own rows only, so the update equals one pass over the batch). Returns
    ``(images01 [N, 3, R, R], rows)``: ``rows[j]`` holds job j's figures for metadata (prompt, CLIP's p[y_hat]
    and entropy on the seed and on the created image, the score terms, and whether it was flagged).
    """
    timings = timings if timings is not None else {}
    tick = lambda: (_sync(prior.device), time.perf_counter())[1]  # noqa: E731
    n, k = len(jobs), ratio
    if n % k:
        raise ValueError(f"imagine_batch: {n} jobs do not hold K = {k} variants for every seed")
    seeds = n // k
    if seeds_per_pass is None:
        seeds_per_pass = getattr(prior, "guidance_seeds_per_pass", None) or max(seeds, 1)
    if int(seeds_per_pass) < 1:
        raise ValueError(f"seeds_per_pass must be >= 1, got {seeds_per_pass}")

    t0 = tick()
    lat = prior.prepare(jobs)
    f = lat.f.detach()  # [N, ...]
    t1 = tick()
    timings["prior"] = timings.get("prior", 0.0) + t1 - t0

    seed_norm = gen_norm = contextlib.nullcontext
    if guidance is not None and guidance.official_clip_norm:
        if not hasattr(classifier, "normalization"):
            raise ValueError("official_clip_norm applies to CLIP-guided image priors (ZeroShotClassifier) only")
        seed_norm = lambda: classifier.normalization(CIFAR_MEAN, CIFAR_STD)  # noqa: E731
        gen_norm = lambda: classifier.normalization((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))  # noqa: E731
    with torch.no_grad(), seed_norm():
        p_seed = torch.cat([classifier.probs(to_tensor01(jobs[s * k].image)[None]) for s in range(seeds)])  # [B, C]
    y_hat = p_seed.argmax(-1)  # [B]: CLIP's prediction on the seed, not the dataset label
    flagged = torch.zeros(n, dtype=torch.bool)
    terms: list = [None] * n  # the score terms of each job's group
    diag = {"flips": torch.zeros(n, dtype=torch.long), "ratio": torch.full((n,), float("nan"))}
    if guidance is not None:
        z, b = job_noise(f, jobs, guidance.noise, prior.channel_dim)  # [N, C, 1, 1] each (channel mode)
        z, b = z.requires_grad_(True), b.requires_grad_(True)
        opt = LatentOptimizer([z, b], rule=guidance.update, steps=guidance.opt_steps,
                              step_size=guidance.step_size, lr=guidance.lr)
        per = int(seeds_per_pass)
        for _ in range(opt.steps):
            z.grad, b.grad = torch.zeros_like(z), torch.zeros_like(b)
            g_div = [torch.zeros_like(z), torch.zeros_like(b)]  # with div_diagnostics: the S_div part of the gradient
            for first in range(0, seeds, per):  # one pass per group of seeds: memory bounded by the group
                last = min(seeds, first + per)
                part = slice(first * k, last * k)
                with gen_norm():
                    feats = prior.guidance_features(perturb(f[part].float(), z[part], b[part]), classifier,
                                                    part)  # [n_part, D], unprojected latent
                p_var = classifier.probs_from_features(feats)  # [n_part, C]
                total, div_part = feats.new_zeros(()), feats.new_zeros(())
                for s in range(first, last):
                    local = slice((s - first) * k, (s - first + 1) * k)
                    for g, t in score_groups(p_seed[s], p_var[local], feats[local], int(y_hat[s]), guidance):
                        rows = slice(s * k + g.start, s * k + g.stop)
                        terms[rows] = [t] * (g.stop - g.start)
                        if math.isfinite(t.s_inf + t.s_div):
                            total = total + t.score
                            div_part = div_part + guidance.w_div * t.s_div_tensor
                        else:
                            flagged[rows] = True
                if guidance.div_diagnostics and div_part.requires_grad:
                    for acc, g in zip(g_div, torch.autograd.grad(div_part, [z, b], retain_graph=True,
                                                                 allow_unused=True)):
                        if g is not None:
                            acc += g
                if total.requires_grad:
                    total.backward()
                del feats, p_var, total, div_part
            if guidance.div_diagnostics:
                with torch.no_grad():  # sign(g) vs sign(g - g_div): what S_div changes in the signed step
                    g_all = torch.cat([z.grad.flatten(1), b.grad.flatten(1)], 1)
                    g_d = torch.cat([g.flatten(1) for g in g_div], 1)
                    diag["flips"] += (torch.sign(g_all) != torch.sign(g_all - g_d)).sum(1).cpu()
                    diag["entries"] = g_all.shape[1]
                    diag["ratio"] = (g_d.norm(dim=1) / (g_all - g_d).norm(dim=1)).cpu()
            with torch.no_grad():
                bad_grad = ~(torch.isfinite(z.grad.flatten(1)).all(1) & torch.isfinite(b.grad.flatten(1)).all(1))
                flagged |= bad_grad.cpu()
                for g in (z.grad, b.grad):
                    g[flagged.to(g.device)] = 0.0  # flagged variants do not move
            opt.step()
        with torch.no_grad():
            final = project_linf(perturb(f.float(), z, b), f.float(), guidance.eps).to(f.dtype)  # Eq. 1 with P
            keep = flagged.to(f.device).view(-1, *[1] * (f.ndim - 1))
            final = torch.where(keep, f, final)  # non-finite score: leave unperturbed
    else:
        final = f
    t2 = tick()
    timings["guidance"] = timings.get("guidance", 0.0) + t2 - t1

    images = prior.generate(final, jobs)  # [N, 3, R, R]
    t3 = tick()
    timings["decode"] = timings.get("decode", 0.0) + t3 - t2

    with torch.no_grad():
        p_out = classifier.probs(images)  # [N, C]
    h_out, h_seed = entropy(p_out), entropy(p_seed)
    rows = []
    for j, job in enumerate(jobs):
        s = j // k
        row = {
            "prompt": lat.prompts[j] if lat.prompts else "",
            "clip_y_hat": int(y_hat[s]),
            "p_seed_yhat": float(p_seed[s, y_hat[s]]),
            "entropy_seed": float(h_seed[s]),
            "p_yhat": float(p_out[j, y_hat[s]]),
            "entropy": float(h_out[j]),
            "flagged": int(flagged[j]),
        }
        if terms[j] is not None:
            row.update(s_inf=terms[j].s_inf, s_div=terms[j].s_div)
        if guidance is not None and guidance.div_diagnostics:
            row.update(div_sign_flips=int(diag["flips"][j]), div_grad_entries=int(diag.get("entries", 0)),
                       div_grad_ratio=float(diag["ratio"][j]))
        rows.append(row)
    timings["guidance"] += tick() - t3
    return images, rows


def provenance(prior: Prior | None, classifier) -> dict:
    """Which models made a run's images, for ``run.json``: the profile and every model's id / path with its Hub
    revision or weight-file sha256 (the ``provenance`` the prior and the guiding classifier report; ``None`` for
    the tiny random models and the mini profile's own models). The dtypes, the device and the library versions are
    the run's condition, recorded beside it (:func:`gifkit.io.runs.run_environment`)."""
    return {"profile": getattr(prior, "profile", None),
            "models": {"prior": getattr(prior, "provenance", None), "guide": getattr(classifier, "provenance", None)}}


def auto_batch_size(prior: Prior, ratio: int, device: torch.device | str | None = None, *, limit: int = 16) -> int:
    """``--batch-size auto``: seeds per batch from the free memory of a CUDA device.

    The prior tells what one image costs (``prior.memory_per_image(grad)``, bytes: the sampler pass without
    gradients, and the guidance pass with them); a batch of B seeds needs about
    ``B * K * m(no grad) + seeds_per_pass * K * m(grad)``; B is the largest that fits in 85 % of the free memory
    (at least 1, at most ``limit``). On a CPU or a prior without an estimate: 4 (the default batch size).
    """
    dev = torch.device(device if device is not None else getattr(prior, "device", "cpu"))
    estimate = getattr(prior, "memory_per_image", None)
    if dev.type != "cuda" or estimate is None:
        return 4
    free, _ = torch.cuda.mem_get_info(dev)
    budget = 0.85 * free - ratio * estimate(True)
    per_seed = max(1.0, ratio * estimate(False))
    return int(max(1, min(limit, budget // per_seed)))


def expand(dataset, class_names: Sequence[str], prior: Prior | None, classifier, out: str | Path, *,
           ratio: int, method: str, guidance: GuidanceConfig | None = None, seed: int = 0,
           batch_size: int | str = 4, limit: int | None = None, output_size: int | None = None,
           params: dict | None = None, shard: tuple[int, int] = (0, 1), barrier: Callable[[], None] | None = None,
           progress: bool = True, seeds_per_pass: int | None = None) -> ExpandResult:
    """Expand ``dataset`` K = ``ratio`` times into the store at ``out``.

    ``dataset`` yields ``(PIL image, label)``; unreadable seeds are skipped and
    listed (in the result and in ``out/skipped.json``). ``guidance=None`` is the
    unguided baseline. ``shard=(index, count)`` runs this process's batches only;
    ``barrier`` (e.g. accelerate's ``wait_for_everyone``) lets shard 0 finalize
    ``metadata.csv`` once all shards are done. ``limit`` takes the first seeds
    only and may grow on a later run into the same folder. ``batch_size="auto"``:
    :func:`auto_batch_size` (a folder that already holds a run keeps its batch
    size); ``seeds_per_pass``: seeds per guidance pass (:func:`imagine_batch`).
    ``run.json`` records the settings and their :func:`provenance`.
    """
    if batch_size == "auto":
        old = read_json(Path(out) / RUN_FILE, None, "an expansion run")
        batch_size = int(old["batch_size"]) if isinstance(old, dict) and "batch_size" in old else \
            auto_batch_size(prior, ratio) if prior is not None else 4
    batch_size = int(batch_size)
    # One output folder holds one run: refuse to mix settings (limit may grow).
    settings = {"method": method, "ratio": int(ratio), "seed": seed, "batch_size": batch_size,
                "output_size": output_size, "params": params or {}, "guidance": asdict(guidance) if guidance else None,
                "provenance": provenance(prior, classifier)}
    run = ExpansionRun(out, dataset, class_names, settings, ratio=ratio, batch_size=batch_size, limit=limit,
                       shard=shard, barrier=barrier,
                       environment=run_environment(getattr(prior, "device", None), (prior, classifier)))
    store, class_names = run.store, run.class_names
    result = ExpandResult(out=Path(out))
    start = time.perf_counter()
    for batch in run.pending(dataset, result, progress=progress, desc=f"{method} x{ratio}"):
        jobs = [Job(i, v, image, label, class_names[label], key=(seed, i, v))
                for i, image, label in batch.items for v in range(ratio)]
        rows = []
        if jobs:
            images, figures = imagine_batch(prior, classifier, jobs, ratio, guidance, result.timings,
                                            seeds_per_pass)
            t = time.perf_counter()
            for job, pil, fig in zip(jobs, to_pil(images, output_size), figures):
                rel = store.relpath(job.label, job.index, job.variant)
                if store.save_image(rel, pil):
                    result.written += 1
                else:
                    result.existing += 1
                result.flagged += fig["flagged"]
                if "div_sign_flips" in fig:
                    result.div_flips += fig["div_sign_flips"]
                    result.div_entries += fig["div_grad_entries"]
                    result.div_ratios.append(fig["div_grad_ratio"])
                rows.append({"file_name": rel, "label": job.label, "seed_index": job.index,
                             "seed_path": seed_path(dataset, job.index), "variant": job.variant, "method": method,
                             "random_seed": derive_seed(*job.key), "ratio": ratio, **(params or {}),
                             **({"eps": guidance.eps, "noise": guidance.noise, "update": guidance.update,
                                 "opt_steps": guidance.opt_steps, "step_size": guidance.step_size,
                                 "w_inf": guidance.w_inf, "w_div": guidance.w_div, "div_group": guidance.div_group,
                                 "div_temperature": guidance.div_temperature} if guidance else {}),
                             **fig})
            result.timings["io"] += time.perf_counter() - t
        run.commit(batch, rows)
    result.seconds = time.perf_counter() - start

    run.finish()
    return result
