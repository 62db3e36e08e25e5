"""CLIP guidance: zero-shot probabilities, the two GIF criteria and the score.

A CLIP zero-shot classifier scores each perturbed variant (docs/design.md §1.3-1.5):

    w_j = normalize(T("This is a photo of a {c_j}")),  u = normalize(I(x))
    p   = softmax(100 * u @ W^T)                       (fixed logit scale 100)

Class-maintained informativeness, with y_hat = argmax p_seed (CLIP's own
prediction on the seed, not the dataset label):

    S_inf = mean_k p'_k[y_hat] + mean_k ( H(p'_k) - H(p_seed) )         (Eq. 5)

Sample diversity over the K L2-normalised features v_k of one seed's variants,
with a softmax over the feature dimension (temperature 1):

    S_div = (1/K) sum_k KL( softmax(mean_k v_k) || softmax(v_k) )       (Eq. 6)

and the score maximised w.r.t. the perturbation is S = S_inf + S_div. The official code before its fix of
2023-12-06 computed ``KLDivLoss(mean v, log_softmax(mean v))`` instead, which is ``-LSE(mean v)``
(:func:`diversity_pre_fix`, ``div_quirk="pre-2023-12"``).
"""
from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from gifkit.config import Check, check_fields, option
from gifkit.core.perturb import NOISE_MODES, UPDATE_RULES

__all__ = [
    "FeatureClassifier",
    "CLIP_MEAN",
    "CLIP_STD",
    "zero_shot_probs",
    "entropy",
    "informativeness",
    "diversity",
    "diversity_pre_fix",
    "DIV_QUIRKS",
    "RECORD_IF_SET",
    "GuidanceTerms",
    "guidance_terms",
    "gif_score",
    "GuidanceConfig",
    "group_slices",
    "score_groups",
    "clip_preprocess",
    "square_size",
    "DEFAULT_TEMPLATES",
    "CIFAR_MEAN",
    "CIFAR_STD",
]

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
# what every official script normalises the *seeds* with before CLIP (CIFAR-10's statistics, whatever the dataset;
# the generated images go to CLIP unnormalised): the `official_clip_norm` quirk (docs/design.md §2)
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
DEFAULT_TEMPLATES = ("This is a photo of a {}",)


def zero_shot_probs(
    image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: float = 100.0
) -> torch.Tensor:
    """Zero-shot class probabilities ``p = softmax(s * u @ w^T)`` (docs/design.md §1.3).

    ``u = image_features / |image_features|`` ``[N, D]``, ``w = text_features /
    |text_features|`` ``[C, D]``, ``s = logit_scale`` (100 in GIF, not CLIP's
    learned scale). Returns ``[N, C]``; each row sums to 1.
    """
    if text_features.ndim != 2:
        raise ValueError(f"zero_shot_probs: text_features must be [C, D], got {tuple(text_features.shape)}")
    if image_features.shape[-1] != text_features.shape[-1]:
        raise ValueError(
            f"zero_shot_probs: feature dims differ: image {tuple(image_features.shape)}, "
            f"text {tuple(text_features.shape)}"
        )
    u = F.normalize(image_features, dim=-1)  # [N, D]
    w = F.normalize(text_features, dim=-1).to(u.dtype)  # [C, D]
    return torch.softmax(logit_scale * u @ w.T, dim=-1)  # [N, C]


def entropy(p: torch.Tensor) -> torch.Tensor:
    """Shannon entropy ``H(p) = -sum_c p_c log p_c`` over the last dim (Eq. 5).

    Uses ``0 log 0 = 0``: entries that are exactly 0 (e.g. a softmax that
    underflowed) contribute 0 to the value and 0 to the gradient, so neither is
    NaN. ``[..., C] -> [...]``.
    """
    positive = p > 0
    safe = torch.where(positive, p, torch.ones_like(p))  # log(1) = 0 where p == 0
    terms = torch.where(positive, -p * torch.log(safe), torch.zeros_like(p))  # [..., C]
    return terms.sum(dim=-1)


def _check_probs(p_seed: torch.Tensor, p_var: torch.Tensor) -> torch.Tensor:
    """Validate shapes; return ``p_seed`` as ``[C]``."""
    if p_var.ndim != 2:
        raise ValueError(f"informativeness: p_var must be [K, C], got {tuple(p_var.shape)}")
    if p_seed.ndim == 2 and p_seed.shape[0] == 1:
        p_seed = p_seed[0]
    if p_seed.ndim != 1:
        raise ValueError(f"informativeness: p_seed must be [C] or [1, C], got {tuple(p_seed.shape)}")
    if p_seed.shape[0] != p_var.shape[1]:
        raise ValueError(
            f"informativeness: p_seed has {p_seed.shape[0]} classes but p_var has {p_var.shape[1]}"
        )
    return p_seed


def _informativeness_parts(
    p_seed: torch.Tensor, p_var: torch.Tensor, y_hat: int | None
) -> tuple[torch.Tensor, int, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(S_inf, y_hat, p'[:, y_hat] [K], H(p') [K], H(p_seed) [])`` of Eq. 5."""
    p_seed = _check_probs(p_seed, p_var)  # [C]
    n_classes = p_var.shape[1]
    if y_hat is None:
        y_hat = int(torch.argmax(p_seed))
    elif not 0 <= int(y_hat) < n_classes:
        raise ValueError(f"informativeness: y_hat={y_hat} outside [0, {n_classes})")
    y_hat = int(y_hat)
    p_yhat = p_var[:, y_hat]  # [K]
    h_var = entropy(p_var)  # [K]
    h_seed = entropy(p_seed)  # []
    s_inf = p_yhat.mean() + (h_var - h_seed).mean()
    return s_inf, y_hat, p_yhat, h_var, h_seed


def informativeness(p_seed: torch.Tensor, p_var: torch.Tensor, y_hat: int | None = None) -> torch.Tensor:
    """Class-maintained informativeness ``S_inf`` (Eq. 5), a scalar.

    ``S_inf = (1/K) sum_k p'_k[y_hat] + (1/K) sum_k ( H(p'_k) - H(p_seed) )``

    The first term keeps the variants in the seed's class, the second rewards
    variants that are less certain (more informative) than the seed.
    ``p_seed``: ``[C]`` or ``[1, C]``, ``p_var``: ``[K, C]``; ``y_hat`` defaults
    to ``argmax p_seed`` (CLIP's prediction on the seed, as in the official
    code); pass it to override (e.g. with the dataset label).
    """
    return _informativeness_parts(p_seed, p_var, y_hat)[0]


def diversity(features: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Sample diversity ``S_div`` (Eq. 6) of one group of ``K`` variants, a scalar.

    With ``q_k = softmax(v_k / T)`` and ``q_bar = softmax((1/K) sum_k v_k / T)`` (softmax
    over the feature dim ``D``, the mean *not* detached):

        S_div = (1/K) sum_k sum_d q_bar[d] ( log q_bar[d] - log q_k[d] )

    i.e. ``KLDivLoss(reduction="batchmean", log_target=True)(log q_k, log q_bar)``.
    ``features``: ``[K, D]``, passed as given (the caller passes L2-normalised
    CLIP features). Exactly 0 for ``K = 1``. ``T = 1`` is the paper's and the
    official code's; for unit features ``S_div <= (1 - |mean v|^2) / (2 D T^2)``
    roughly (docs/design.md §1.5), so a smaller ``T`` makes the term visible.
    """
    if features.ndim != 2 or features.shape[0] < 1:
        raise ValueError(f"diversity: features must be [K, D] with K >= 1, got {tuple(features.shape)}")
    if not temperature > 0:
        raise ValueError(f"diversity: temperature must be > 0, got {temperature}")
    features = features / temperature
    log_q = torch.log_softmax(features, dim=-1)  # [K, D]
    log_q_bar = torch.log_softmax(features.mean(dim=0, keepdim=True), dim=-1)  # [1, D]
    kl = (log_q_bar.exp() * (log_q_bar - log_q)).sum(dim=-1)  # [K]
    return kl.mean()


def diversity_pre_fix(features: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """The official S_div before its fix of 2023-12-06 (``div_quirk="pre-2023-12"``), a scalar with a gradient.

    That code fed the *mean feature itself* as the log-probabilities of ``KLDivLoss(reduction="batchmean",
    log_target=True)`` against ``log_softmax`` of it, over ``K`` repeated rows: with ``a = mean_k v_k / T``,

        sum_d softmax(a)[d] (log softmax(a)[d] - a[d]) = -LSE(a),   LSE(a) = log sum_d exp(a[d]),

    so the term rewards a mean feature with a *small* log-sum-exp; its gradient w.r.t. ``a`` is ``-softmax(a)``.
    ``features``: ``[K, D]``; ``T = 1`` is the official code's.
    """
    if features.ndim != 2 or features.shape[0] < 1:
        raise ValueError(f"diversity: features must be [K, D] with K >= 1, got {tuple(features.shape)}")
    if not temperature > 0:
        raise ValueError(f"diversity: temperature must be > 0, got {temperature}")
    return -torch.logsumexp(features.mean(dim=0) / temperature, dim=-1)


# div_quirk -> the S_div the score uses: "none" the fixed Eq. 6, "pre-2023-12" the official code before its fix
DIV_QUIRKS = {"none": diversity, "pre-2023-12": diversity_pre_fix}


@dataclass
class GuidanceTerms:
    """The GIF score and the figures recorded with each variant.

    ``score`` (scalar tensor, with graph) ``= w_inf * S_inf + w_div * S_div``;
    everything else is detached: ``s_inf``, ``s_div`` and the seed figures are
    floats, the per-variant figures are CPU tensors ``[K]``.
    """

    score: torch.Tensor
    s_inf: float
    s_div: float
    s_div_tensor: torch.Tensor  # S_div with its graph (the diversity part of the score is w_div * this)
    y_hat: int
    p_yhat_seed: float  # p_seed[y_hat]
    entropy_seed: float  # H(p_seed)
    p_yhat_var: torch.Tensor  # [K] p'_k[y_hat]
    entropy_var: torch.Tensor  # [K] H(p'_k)
    extra: dict[str, float] = field(default_factory=dict)  # criteria added to the score (:meth:`plus`)

    def plus(self, name: str, value: torch.Tensor, weight: float = 1.0) -> "GuidanceTerms":
        """These terms with one more criterion: ``score + weight * value`` (``value`` a scalar tensor with its
        graph), its value recorded as ``extra[name]`` (a metadata column of every variant it scored)."""
        if name in ("s_inf", "s_div") or name in self.extra:
            raise ValueError(f"criterion {name!r} is already in the score")
        return dataclasses.replace(self, score=self.score + weight * value,
                                   extra={**self.extra, name: float(value.detach())})


def guidance_terms(
    p_seed: torch.Tensor,
    p_var: torch.Tensor,
    features: torch.Tensor,
    w_inf: float = 1.0,
    w_div: float = 1.0,
    y_hat: int | None = None,
    div_temperature: float = 1.0,
    div_quirk: str = "none",
) -> GuidanceTerms:
    """The GIF score ``S = w_inf * S_inf + w_div * S_div`` (Eqs. 5, 6) and its parts.

    ``p_seed`` ``[C]`` or ``[1, C]``, ``p_var`` ``[K, C]``, ``features`` ``[K, D]``
    (L2-normalised CLIP features of the same K variants). The official GIF uses
    ``w_inf = w_div = 1`` and ``div_temperature = 1`` (see :func:`diversity`); ``div_quirk`` picks the S_div
    (:data:`DIV_QUIRKS`: ``"pre-2023-12"`` is the official code's before its fix, :func:`diversity_pre_fix`).
    """
    if features.ndim == 2 and p_var.ndim == 2 and features.shape[0] != p_var.shape[0]:
        raise ValueError(
            f"guidance_terms: {p_var.shape[0]} variant probabilities but {features.shape[0]} feature rows"
        )
    s_inf, y_hat, p_yhat, h_var, h_seed = _informativeness_parts(p_seed, p_var, y_hat)
    if div_quirk not in DIV_QUIRKS:
        raise ValueError(f"div_quirk must be one of {', '.join(DIV_QUIRKS)}, got {div_quirk!r}")
    s_div = DIV_QUIRKS[div_quirk](features, div_temperature)
    p_seed_1d = _check_probs(p_seed, p_var)
    return GuidanceTerms(
        score=w_inf * s_inf + w_div * s_div,
        s_inf=float(s_inf.detach()),
        s_div=float(s_div.detach()),
        s_div_tensor=s_div,
        y_hat=y_hat,
        p_yhat_seed=float(p_seed_1d[y_hat].detach()),
        entropy_seed=float(h_seed.detach()),
        p_yhat_var=p_yhat.detach().float().cpu(),
        entropy_var=h_var.detach().float().cpu(),
    )


def gif_score(
    p_seed: torch.Tensor,
    p_var: torch.Tensor,
    features: torch.Tensor,
    w_inf: float = 1.0,
    w_div: float = 1.0,
    y_hat: int | None = None,
    div_temperature: float = 1.0,
) -> torch.Tensor:
    """The scalar GIF score ``S = w_inf * S_inf + w_div * S_div`` (``guidance_terms(...).score``)."""
    return guidance_terms(p_seed, p_var, features, w_inf, w_div, y_hat, div_temperature).score


def square_size(image_size: int | Sequence[int]) -> int:
    """``224`` or ``(224, 224)`` -> ``224``; other shapes are rejected."""
    if isinstance(image_size, (tuple, list)):
        if len(image_size) != 2 or image_size[0] != image_size[1]:
            raise ValueError(f"clip_preprocess: image_size must be an int or a square (s, s), got {image_size}")
        image_size = image_size[0]
    image_size = int(image_size)
    if image_size < 1:
        raise ValueError(f"clip_preprocess: image_size must be >= 1, got {image_size}")
    return image_size


def clip_preprocess(
    images: torch.Tensor,
    image_size: int | Sequence[int],
    mean: Sequence[float] = CLIP_MEAN,
    std: Sequence[float] = CLIP_STD,
) -> torch.Tensor:
    """CLIP's eval preprocessing as differentiable tensor ops.

    ``x -> (center_crop_s(resize_shortest_s(x)) - mean) / std`` for images in
    ``[0, 1]`` ``[N, 3, H, W]``: bicubic resize (antialiased) of the shortest
    side to ``s = image_size`` (the long side becomes ``int(s * long / short)``
    as in torchvision), a centre crop to ``s x s`` and per-channel
    normalisation. Returns ``[N, 3, s, s]``.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"clip_preprocess: images must be [N, 3, H, W], got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(f"clip_preprocess: images must be floating in [0, 1], got {images.dtype}")
    if len(mean) != 3 or len(std) != 3:
        raise ValueError(f"clip_preprocess: mean and std need 3 values, got {mean}, {std}")
    s = square_size(image_size)
    h, w = images.shape[-2:]
    short, long = min(h, w), max(h, w)
    new_long = int(s * long / short)
    new_h, new_w = (s, new_long) if h <= w else (new_long, s)
    if (new_h, new_w) != (h, w):
        images = F.interpolate(images, size=(new_h, new_w), mode="bicubic", align_corners=False, antialias=True)
    top, left = int(round((new_h - s) / 2.0)), int(round((new_w - s) / 2.0))
    images = images[:, :, top : top + s, left : left + s]  # [N, 3, s, s]
    mean_t = torch.tensor(mean, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images - mean_t) / std_t


class FeatureClassifier(torch.nn.Module):
    """What GIF's guidance needs from a classifier: subclasses define ``image_features(images01)`` (L2-normalised
    features [N, D], differentiable w.r.t. the images), the buffer ``text_features`` [C, D] (one unit vector per
    class) and ``logit_scale``; this base turns them into ``p = softmax(logit_scale * u @ W^T)``.

    The step reads a guide through three members: :meth:`representation` (what its class head reads, from the
    images), :meth:`probs_from_features` (the head: representation -> probabilities) and :meth:`unit_features`
    (representation -> the L2-normalised features S_div compares). For a zero-shot or prototype classifier the
    representation *is* the unit feature vector, so the defaults pass it through; a classifier with a linear head
    (:class:`gifkit.models.guides.LinearHeadClassifier`) reads its unnormalised penultimate features and
    normalises them only for S_div.

    The networks a subclass wraps are frozen: they stay in eval mode whatever ``train()`` asks. A subclass that
    normalises its input with ``self.mean`` / ``self.std`` supports :meth:`normalization`.
    """

    text_features: torch.Tensor
    logit_scale: float
    mean: tuple[float, ...]
    std: tuple[float, ...]
    provenance: dict | None = None  # where its weights came from (run.json); None for random or gifkit's own

    def train(self, mode: bool = True) -> "FeatureClassifier":
        """Keep the wrapped (frozen) networks in eval mode whatever the caller asks."""
        super().train(mode)
        for child in self.children():
            child.eval()
        return self

    @contextlib.contextmanager
    def normalization(self, mean: Sequence[float], std: Sequence[float]):
        """Temporarily normalise the input with another mean/std (the ``official_clip_norm`` quirk)."""
        if not hasattr(self, "mean") or not hasattr(self, "std"):
            raise ValueError(f"{type(self).__name__} has no input normalisation to replace")
        saved = self.mean, self.std
        self.mean, self.std = tuple(mean), tuple(std)
        try:
            yield self
        finally:
            self.mean, self.std = saved

    def image_features(self, images01: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def representation(self, images01: torch.Tensor) -> torch.Tensor:
        """What the class head reads, ``[N, D]``, differentiable w.r.t. the images (default: ``image_features``)."""
        return self.image_features(images01)

    def unit_features(self, representation: torch.Tensor) -> torch.Tensor:
        """The L2-normalised features S_div compares (default: the representation itself, already unit)."""
        return representation

    def probs_from_features(self, features: torch.Tensor) -> torch.Tensor:
        """The head on a :meth:`representation`: ``softmax(logit_scale * normalize(features) @ W^T)`` ``[N, C]``
        (e.g. GIF-DALLE's embeddings)."""
        return zero_shot_probs(features.float(), self.text_features, self.logit_scale)

    def probs(self, images01: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``[N, C]`` of images in ``[0, 1]`` ``[N, 3, H, W]``."""
        return self.probs_from_features(self.representation(images01))

    def forward(self, images01: torch.Tensor) -> torch.Tensor:
        """Same as ``probs``."""
        return self.probs(images01)


# ----------------------------------------------------------------------------- the settings of the guided step


# GuidanceConfig fields left out of run.json and the metadata while they hold these values
RECORD_IF_SET = {"div_quirk": "none"}


@dataclass
class GuidanceConfig:
    """Settings of the guided latent optimisation (defaults: the official GIF-SD code).

    ``eps``: L-inf radius of the projection; ``noise``: "channel" (paper) or "pixel" (App. B.2); ``update``:
    "sign" (one step of ``step_size``, official) or "adam" (``opt_steps`` steps at ``lr``); ``w_inf`` /
    ``w_div`` weight the two criteria (Tables 20-21 ablate them); ``div_group`` / ``div_temperature``: how
    S_div groups a seed's variants and how sharp its softmax is (:func:`score_groups`). Each method's config
    (:mod:`gifkit.methods`) derives from this class and sets its own defaults.
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
    div_quirk: str = option("none", "S_div as the official code computed it before its fix of 2023-12-06 "
                                    "(pre-2023-12: -LSE of the mean feature, with a gradient; docs/design.md §2)",
                            choices=tuple(DIV_QUIRKS))
    official_clip_norm: bool = option(
        False, "reproduce the official code's quirk: seeds normalised with CIFAR mean/std for CLIP, created images "
               "not normalised (default: CLIP's own preprocessing for both)", action="store_true")

    def __post_init__(self):
        check_fields(self)
        if self.noise not in NOISE_MODES:
            raise ValueError(f"noise must be one of {NOISE_MODES}, got {self.noise!r}")
        if self.update not in UPDATE_RULES:
            raise ValueError(f"update must be one of {UPDATE_RULES}, got {self.update!r}")
        if self.div_quirk not in DIV_QUIRKS:
            raise ValueError(f"div_quirk must be one of {', '.join(DIV_QUIRKS)}, got {self.div_quirk!r}")

    def record(self) -> dict:
        """The settings as ``run.json`` records them: every field, except those at their :data:`RECORD_IF_SET`
        value (so a folder recorded before such a field existed still resumes)."""
        return {k: v for k, v in dataclasses.asdict(self).items()
                if not (k in RECORD_IF_SET and v == RECORD_IF_SET[k])}

    @classmethod
    def of(cls, config) -> "GuidanceConfig":
        """The guidance settings held by ``config`` (an instance of a subclass: a method's config)."""
        return cls(**{f.name: getattr(config, f.name) for f in dataclasses.fields(cls)})


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
    (Eqs. 5, 6, :func:`guidance_terms`); the step ascends ``sum_g S_g``, so a variant's gradient comes from its
    own group only. ``p_var`` ``[K, C]``, ``feats`` ``[K, D]``.
    """
    return [(g, guidance_terms(p_seed, p_var[g], feats[g], guidance.w_inf, guidance.w_div, y_hat=y_hat,
                               div_temperature=guidance.div_temperature, div_quirk=guidance.div_quirk))
            for g in group_slices(p_var.shape[0], guidance.div_group)]
