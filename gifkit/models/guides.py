"""The zero-shot classifiers that guide GIF, and which one each profile uses.

Both are :class:`gifkit.core.guidance.FeatureClassifier`: L2-normalised image features ``u`` (differentiable
w.r.t. the image), one unit text embedding ``w_c`` per class and ``p = softmax(s u W^T)`` with the fixed
logit scale ``s = 100`` of the official code. Class embeddings are the usual template ensemble,

    w_c = normalize( mean_t normalize( T(template_t(c)) ) )

* :class:`ZeroShotClassifier`: an open_clip model (GIF-SD, GIF-MAE, the CLIP baselines);
* :class:`TransformersCLIPZeroShot`: the transformers CLIP parts of an unCLIP pipeline (GIF-DALLE, whose
  latent *is* that CLIP's image embedding).

:func:`guide_clip` is the one place that says which CLIP a profile uses (the tiny random one for ``smoke``,
:data:`gifkit.config.GUIDANCE_CLIP` otherwise, or any open_clip name and pretrained tag / local file).
The mini profile's guide, ImageNet features with class prototypes, is :mod:`gifkit.models.protoguide`.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from gifkit.config import GUIDANCE_CLIP, get_profile
from gifkit.core.guidance import CLIP_MEAN, CLIP_STD, DEFAULT_TEMPLATES, FeatureClassifier, clip_preprocess, square_size
from gifkit.models import hub, tiny

__all__ = ["ZeroShotClassifier", "TransformersCLIPZeroShot", "text_embeddings", "guide_clip",
           "zero_shot_classifier"]


def text_embeddings(encode: Callable[[list[str]], torch.Tensor], class_names: Sequence[str],
                    templates: Sequence[str] = DEFAULT_TEMPLATES, who: str = "zero-shot classifier") -> torch.Tensor:
    """``w_c = normalize(mean_t normalize(encode(template_t(c))))`` as float32 ``[C, E]`` (no gradients).

    ``encode`` maps a list of prompts to text embeddings ``[C, E]``. Class names and templates are checked:
    a list of names (not one string), not empty, every template with a ``{}`` for the class name.
    """
    if isinstance(class_names, str):
        raise ValueError(f"{who}: class_names must be a list of names, not one string")
    names = [str(c) for c in class_names]
    if not names:
        raise ValueError(f"{who}: class_names is empty")
    templates = (templates,) if isinstance(templates, str) else tuple(templates)
    if not templates:
        raise ValueError(f"{who}: templates is empty")
    for t in templates:
        if "{}" not in t:
            raise ValueError(f"{who}: template {t!r} has no '{{}}' for the class name")
    with torch.no_grad():
        per_template = [F.normalize(encode([t.format(c) for c in names]).float(), dim=-1) for t in templates]
        return F.normalize(torch.stack(per_template).mean(dim=0), dim=-1)  # [C, E]


class ZeroShotClassifier(FeatureClassifier):
    """A frozen open_clip model turned into a differentiable zero-shot classifier.

    ``text_features`` ``[C, D]`` (:func:`text_embeddings`) is computed once;
    ``probs(x) = softmax(logit_scale * normalize(I(preprocess(x))) @ W^T)``. Gradients flow to the input
    images, never to the model (frozen, eval).

    ``image_size``/``mean``/``std`` default to what the model declares
    (``model.visual.preprocess_cfg``, else ``model.visual.image_size`` and
    ``image_mean``/``image_std``, else CLIP's mean/std).
    """

    def __init__(self, model: torch.nn.Module, tokenizer, class_names: Sequence[str],
                 templates: Sequence[str] = DEFAULT_TEMPLATES, logit_scale: float = 100.0,
                 image_size: int | Sequence[int] | None = None, mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None) -> None:
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.logit_scale = float(logit_scale)
        visual = getattr(model, "visual", None)
        cfg = dict(getattr(visual, "preprocess_cfg", None) or {})
        size = image_size if image_size is not None else cfg.get("size", getattr(visual, "image_size", None))
        if size is None:
            raise ValueError("ZeroShotClassifier: the model declares no image size; pass image_size")
        self.image_size = square_size(size)
        mean = mean if mean is not None else cfg.get("mean", getattr(visual, "image_mean", None) or CLIP_MEAN)
        std = std if std is not None else cfg.get("std", getattr(visual, "image_std", None) or CLIP_STD)
        self.mean, self.std = tuple(mean), tuple(std)
        device = next(model.parameters()).device
        text = text_embeddings(lambda prompts: model.encode_text(tokenizer(prompts).to(device)), class_names,
                               templates, "ZeroShotClassifier")
        self.class_names, self.templates = [str(c) for c in class_names], tuple(
            (templates,) if isinstance(templates, str) else templates)
        self.register_buffer("text_features", text)
        self.provenance = hub.source_of(model)  # where the CLIP came from (None: a tiny random one)

    def image_features(self, images01: torch.Tensor) -> torch.Tensor:
        """``normalize(I(preprocess(x)))``: L2-normalised float32 features ``[N, D]``."""
        param = next(self.model.parameters())
        pixels = clip_preprocess(images01, self.image_size, self.mean, self.std)  # [N, 3, s, s]
        feats = self.model.encode_image(pixels.to(device=param.device, dtype=param.dtype))  # [N, D]
        return F.normalize(feats.float(), dim=-1)


class TransformersCLIPZeroShot(FeatureClassifier):
    """CLIP zero-shot classifier built from transformers CLIP parts (e.g. an unCLIP pipeline's).

    ``text_features`` [C, E] from the text encoder's projected embeddings (:func:`text_embeddings`),
    ``image_features(x)`` = normalize(I(clip_preprocess(x))) [N, E] (differentiable); the probabilities are
    the base class's ``softmax(100 * normalize(u) @ W^T)``.
    """

    def __init__(self, text_encoder, tokenizer, image_encoder, class_names: Sequence[str], *,
                 image_size: int, mean: Sequence[float], std: Sequence[float],
                 templates: Sequence[str] = DEFAULT_TEMPLATES, logit_scale: float = 100.0,
                 provenance: dict | None = None):
        super().__init__()
        self.provenance = provenance  # where the CLIP parts came from (run.json)
        self.image_encoder = image_encoder.eval().requires_grad_(False)
        self.logit_scale = float(logit_scale)
        self.image_size, self.mean, self.std = int(image_size), tuple(mean), tuple(std)
        text_encoder.eval().requires_grad_(False)
        device = next(text_encoder.parameters()).device

        def encode(prompts: list[str]) -> torch.Tensor:
            tokens = tokenizer(prompts, padding="max_length", truncation=True, max_length=tokenizer.model_max_length,
                               return_tensors="pt")
            return text_encoder(tokens.input_ids.to(device)).text_embeds  # [C, E]

        text = text_embeddings(encode, class_names, templates, "TransformersCLIPZeroShot")
        self.class_names = [str(c) for c in class_names]
        self.templates = (templates,) if isinstance(templates, str) else tuple(templates)
        self.register_buffer("text_features", text)

    @classmethod
    def from_pipeline(cls, pipe, class_names: Sequence[str], **kwargs) -> "TransformersCLIPZeroShot":
        """The classifier of an unCLIP pipeline's own CLIP (text_encoder + tokenizer + image_encoder)."""
        fe = pipe.feature_extractor
        crop = fe.crop_size
        size = crop if isinstance(crop, int) else crop["height"]  # dict or transformers SizeDict
        src = hub.source_of(pipe)
        return cls(pipe.text_encoder, pipe.tokenizer, pipe.image_encoder, class_names, image_size=size,
                   mean=fe.image_mean, std=fe.image_std,
                   provenance={**src, "part": "text_encoder + image_encoder"} if src else None, **kwargs)

    def image_features(self, images01: torch.Tensor) -> torch.Tensor:
        """normalize(I(preprocess(x))): L2-normalised float32 image embeddings [N, E] of images in [0, 1]."""
        param = next(self.image_encoder.parameters())
        pixels = clip_preprocess(images01, self.image_size, self.mean, self.std)  # [N, 3, s, s]
        emb = self.image_encoder(pixel_values=pixels.to(device=param.device, dtype=param.dtype)).image_embeds
        return F.normalize(emb.float(), dim=-1)  # [N, E]


def guide_clip(profile: str, device: str | torch.device = "cpu", name: str | None = None,
               pretrained: str | None = None) -> hub.ClipBundle:
    """The open_clip model a profile guides (and distils, and zero-shot classifies, and ALIA filters) with.

    ``smoke``: :func:`gifkit.models.tiny.tiny_clip`; every other profile: ``hub.load_clip(name, pretrained)``,
    what is not given taken from :data:`gifkit.config.GUIDANCE_CLIP` (CLIP ViT-B/32 with OpenAI's weights and
    QuickGELU; ``gifkit expand --clip-model/--clip-pretrained``). ``pretrained`` may be a local weights file or folder (e.g. a download of
    ``timm/vit_base_patch32_clip_224.openai``).
    """
    if get_profile(profile).tiny:
        return tiny.tiny_clip()
    name = name or GUIDANCE_CLIP[0]
    pretrained = pretrained or GUIDANCE_CLIP[1]
    return hub.load_clip(name, pretrained, device=device)


def zero_shot_classifier(profile: str, class_names: Sequence[str], device: str | torch.device = "cpu",
                         name: str | None = None, pretrained: str | None = None) -> ZeroShotClassifier:
    """GIF's CLIP zero-shot classifier of ``class_names`` on ``device`` (the CLIP of :func:`guide_clip`)."""
    bundle = guide_clip(profile, device, name, pretrained)
    return ZeroShotClassifier(bundle.model.to(device), bundle.tokenizer, list(class_names)).to(device)
