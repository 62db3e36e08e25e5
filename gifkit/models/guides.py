"""The zero-shot classifiers that guide GIF, and which one each profile uses.

Both are :class:`gifkit.core.guidance.FeatureClassifier`: L2-normalised image features ``u`` (differentiable
w.r.t. the image), one unit text embedding ``w_c`` per class and ``p = softmax(s u W^T)`` with the fixed
logit scale ``s = 100`` of the official code. Class embeddings are the usual template ensemble,

    w_c = normalize( mean_t normalize( T(template_t(c)) ) )

* :class:`ZeroShotClassifier`: an open_clip model (GIF-SD, GIF-MAE, the CLIP baselines);
* :class:`TransformersCLIPZeroShot`: the transformers CLIP parts of an unCLIP pipeline (GIF-DALLE, whose
  latent *is* that CLIP's image embedding);
* :class:`LinearHeadClassifier`: any trained classifier whose last layer is linear (a ``gifkit train`` run, a timm
  checkpoint with one output per class): its own probabilities ``softmax(W h + b)`` and, for S_div, its normalised
  penultimate features ``h / |h|``.

:func:`guide_clip` is the one place that says which CLIP a profile uses (the tiny random one for ``smoke``,
:data:`gifkit.config.GUIDANCE_CLIP` otherwise, or any open_clip name and pretrained tag / local file).
The mini profile's guide, ImageNet features with class prototypes, is :mod:`gifkit.models.protoguide`.
:func:`resolve_guide` is the one place that turns a user's choice of guide (the GIF methods' ``guide`` option,
``gifkit expand --guide``; :data:`GUIDE_HELP`) into a classifier.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from gifkit.config import GUIDANCE_CLIP, get_profile
from gifkit.core.guidance import CLIP_MEAN, CLIP_STD, DEFAULT_TEMPLATES, FeatureClassifier, clip_preprocess, square_size
from gifkit.models import hub, tiny

__all__ = ["ZeroShotClassifier", "TransformersCLIPZeroShot", "LinearHeadClassifier", "linear_head",
           "text_embeddings", "guide_clip", "zero_shot_classifier", "GUIDE_HELP", "resolve_guide", "prototype_classifier", "train_run_guide",
           "timm_guide"]


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


def linear_head(model: torch.nn.Module) -> torch.nn.Linear:
    """The last linear layer of a classifier: timm's ``get_classifier()``, else its ``main`` (an AMST network's main
    head), ``fc``, ``classifier`` or ``head`` attribute; a clear error when none is a ``torch.nn.Linear``."""
    candidates = []
    if hasattr(model, "get_classifier"):
        candidates.append(model.get_classifier())
    candidates += [getattr(model, name, None) for name in ("main", "fc", "classifier", "head")]
    for head in candidates:
        if isinstance(head, torch.nn.Linear):
            return head
    raise ValueError(f"{type(model).__name__} has no linear head (get_classifier(), main, fc, classifier or head): "
                     f"it cannot guide with its own probabilities")


class LinearHeadClassifier(FeatureClassifier):
    """A trained classifier ending in a linear layer, as GIF's guide.

    ``representation(x)`` is the input ``h`` of its head (the penultimate features, caught by a hook while the
    whole network runs, so any architecture works), ``probs_from_features(h) = softmax(W h + b)``: the classifier's
    own probabilities, and ``unit_features(h) = h / |h|`` what S_div compares. Images in [0, 1] are resized to
    ``image_size`` (bicubic, antialiased: the evaluation transform of ``gifkit train``) and normalised with
    ``mean`` / ``std``. ``text_features`` holds the head's normalised rows (one per class) and ``logit_scale`` is
    1: they describe the head, the probabilities come from ``W`` and ``b`` themselves.
    """

    def __init__(self, model: torch.nn.Module, class_names: Sequence[str], *, image_size: int,
                 mean: Sequence[float], std: Sequence[float], head: torch.nn.Linear | None = None,
                 provenance: dict | None = None):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.head = head if head is not None else linear_head(model)
        self.class_names = [str(c) for c in class_names]
        if self.head.out_features != len(self.class_names):
            raise ValueError(f"the classifier's head has {self.head.out_features} outputs but the dataset has "
                             f"{len(self.class_names)} classes: it cannot guide with its own probabilities")
        self.image_size, self.mean, self.std = square_size(image_size), tuple(mean), tuple(std)
        self.logit_scale = 1.0
        self.register_buffer("text_features", F.normalize(self.head.weight.detach().float(), dim=-1))
        self.provenance = provenance

    def representation(self, images01: torch.Tensor) -> torch.Tensor:
        """The head's input ``h`` [N, D] (float32, differentiable w.r.t. the images)."""
        if images01.ndim != 4 or images01.shape[1] not in (1, 3):
            raise ValueError(f"LinearHeadClassifier: images must be [N, 3, H, W] in [0, 1], got {tuple(images01.shape)}")
        param = next(self.model.parameters())
        x = images01.float().expand(-1, 3, -1, -1) if images01.shape[1] == 1 else images01.float()
        if tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bicubic", align_corners=False,
                              antialias=True)
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        caught: list[torch.Tensor] = []
        hook = self.head.register_forward_pre_hook(lambda module, args: caught.append(args[0]))
        try:
            self.model(((x - mean) / std).to(device=param.device, dtype=param.dtype))
        finally:
            hook.remove()
        return caught[-1].flatten(1).float()

    def describe(self) -> dict:
        """What this guide is, for logs and results files."""
        return {"guide": f"{type(self.model).__name__} with its linear head", "features": self.head.in_features,
                "image_size": self.image_size, **(self.provenance or {})}

    def unit_features(self, representation: torch.Tensor) -> torch.Tensor:
        """``h / |h|``: what S_div compares."""
        return F.normalize(representation, dim=-1)

    def image_features(self, images01: torch.Tensor) -> torch.Tensor:
        """The normalised penultimate features [N, D]."""
        return self.unit_features(self.representation(images01))

    def probs_from_features(self, features: torch.Tensor) -> torch.Tensor:
        """``softmax(W h + b)`` [N, C]: the classifier's own probabilities."""
        w, b = self.head.weight, self.head.bias
        logits = F.linear(features.float(), w.float(), None if b is None else b.float())
        return torch.softmax(logits, dim=-1)


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


GUIDE_HELP = ("the guide (default: the method's): 'clip:<open_clip name>[/<pretrained tag or file>]' (zero-shot), "
              "'timm:<name>' (its pretrained head must have one output per class) or 'timm:<name>:<checkpoint "
              "file>', a 'gifkit train' run folder (e.g. a classifier fine-tuned on the small dataset), "
              "'prototypes' (mini: ImageNet EfficientNet-Lite0 class prototypes from the labelled set) or "
              "'prototypes:random[:<seed>]' (the same network randomly initialised)")


def _mean_std_size(model: torch.nn.Module) -> tuple[tuple, tuple, int]:
    """A timm model's input normalisation and size (its pretrained config's; ImageNet's and 224 px otherwise)."""
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    cfg = getattr(model, "pretrained_cfg", None) or {}
    size = cfg.get("input_size", (3, 224, 224))[-1]
    return tuple(cfg.get("mean", IMAGENET_DEFAULT_MEAN)), tuple(cfg.get("std", IMAGENET_DEFAULT_STD)), int(size)


def _state_dict(path: Path) -> dict:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    return state.get("state_dict", state) if isinstance(state, dict) else state


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def timm_guide(name: str, class_names: Sequence[str], checkpoint: str | None = None,
               device: str | torch.device = "cpu") -> LinearHeadClassifier:
    """A timm classifier as the guide: ``name`` with timm's pretrained weights (cached by huggingface_hub), or with
    the weights of ``checkpoint`` (a ``.safetensors`` / ``.pth`` state dict of ``name`` with one output per class)."""
    from gifkit.models.classifiers import create_model

    if checkpoint is None:
        import timm

        model = create_model(name, timm.create_model(name, pretrained=False).num_classes, pretrained=True)
        provenance = {"guide": f"timm:{name}", "weights": "timm pretrained"}
    else:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"guide checkpoint {path} not found")
        model = create_model(name, len(class_names), pretrained=False)
        state = _state_dict(path)
        head = linear_head(model)
        for key, value in state.items():
            if key.endswith("weight") and value.ndim == 2 and value.shape[1] == head.in_features \
                    and value.shape[0] != len(class_names):
                raise ValueError(f"the classifier's head has {value.shape[0]} outputs but the dataset has "
                                 f"{len(class_names)} classes: it cannot guide with its own probabilities")
        model.load_state_dict(state, strict=True)
        provenance = {"guide": f"timm:{name}:{path}", "file": str(path), "sha256": _sha256(path)}
    mean, std, size = _mean_std_size(model)
    return LinearHeadClassifier(model, class_names, image_size=size, mean=mean, std=std,
                                provenance=provenance).to(device)


def _run_folder(folder: Path) -> Path:
    """The folder of one ``gifkit train`` run: ``folder`` itself, or its only ``seed_<n>`` run."""
    if (folder / "result.json").is_file():
        return folder
    seeds = sorted(p for p in folder.glob("seed_*") if (p / "result.json").is_file())
    if len(seeds) == 1:
        return seeds[0]
    if seeds:
        raise ValueError(f"{folder} holds {len(seeds)} training runs ({', '.join(p.name for p in seeds)}): "
                         f"give one of them as the guide")
    raise FileNotFoundError(f"{folder} is not a gifkit train run (no result.json and model.safetensors)")


def train_run_guide(folder: str | Path, class_names: Sequence[str],
                    device: str | torch.device = "cpu") -> LinearHeadClassifier:
    """The classifier a ``gifkit train`` run wrote (``model.safetensors`` + ``result.json``) as the guide: its
    architecture, input size and normalisation from ``result.json``; its classes must be the dataset's."""
    from gifkit.io.files import read_json
    from gifkit.models.classifiers import create_model

    run = _run_folder(Path(folder).expanduser())
    weights = run / "model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"{run} has no model.safetensors: the training run did not finish")
    result = read_json(run / "result.json", what="a training run's result")
    classes = [str(c) for c in result["dataset"]["classes"]]
    names = [str(c) for c in class_names]
    if len(classes) != len(names):
        raise ValueError(f"the classifier in {run} has {len(classes)} classes but the dataset has {len(names)}: "
                         f"it cannot guide with its own probabilities")
    if classes != names:
        raise ValueError(f"the classifier in {run} was trained on the classes {classes}, not {names}")
    info = result["model"]
    model = create_model(info["arch"], len(classes), pretrained=False)
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(weights)), strict=True)
    final = result.get("final") or {}
    provenance = {"guide": str(folder), "kind": "gifkit train run", "arch": info["arch"],
                  "image_size": int(info["image_size"]), "sha256": _sha256(weights),
                  "trained_on": f"{result['dataset']['name']} {result['config'].get('train_split', 'train')} "
                                f"({result['dataset']['n_train_total']} images)",
                  "test_accuracy": final.get("accuracy_micro")}
    return LinearHeadClassifier(model, classes, image_size=int(info["image_size"]), mean=info["mean"],
                                std=info["std"], provenance=provenance).to(device)


def prototype_classifier(class_names: Sequence[str], support, image_size: int = 112,
                         logit_scale: float | str = "fit", random_seed: int | None = None) -> FeatureClassifier:
    """EfficientNet-Lite0 features with class prototypes from ``support`` (the small labelled set): the ImageNet
    network, or with ``random_seed`` the same architecture randomly initialised from that seed
    (:class:`gifkit.models.protoguide.PrototypeClassifier`)."""
    from gifkit.models.protoguide import PrototypeClassifier, load_lite0, tiny_lite0

    if support is None:
        raise ValueError("a prototype guide needs the small labelled set (support=dataset) for its class prototypes")
    backbone = load_lite0() if random_seed is None else tiny_lite0(random_seed)
    return PrototypeClassifier(backbone, support, class_names, image_size=image_size, logit_scale=logit_scale)


def resolve_guide(spec, class_names: Sequence[str], *, profile: str, device: str | torch.device = "cpu",
                  support=None, image_size: int = 112, logit_scale: float | str = "fit") -> FeatureClassifier:
    """The guide ``spec`` names (:data:`GUIDE_HELP`); a :class:`FeatureClassifier` is used as it is.

    ``support``: the small labelled set (prototype guides); ``image_size`` / ``logit_scale``: a prototype guide's
    input size and logit scale (:class:`gifkit.models.protoguide.PrototypeClassifier`).
    """
    if isinstance(spec, FeatureClassifier):
        if [str(c) for c in getattr(spec, "class_names", class_names)] != [str(c) for c in class_names]:
            raise ValueError(f"the guide classifies {len(spec.class_names)} classes {spec.class_names}, not the "
                             f"dataset's {len(class_names)}")
        return spec.to(device)
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"guide must be a name, a folder or a FeatureClassifier, got {spec!r}")
    spec = spec.strip()
    kind, _, rest = spec.partition(":")
    if kind == "prototypes":
        random, _, seed = rest.partition(":")
        if random not in ("", "random") or not (seed or "0").isdigit():
            raise ValueError(f"unknown prototype guide {spec!r}: 'prototypes' or 'prototypes:random[:<seed>]'")
        guide = prototype_classifier(class_names, support, image_size, logit_scale,
                                     random_seed=int(seed or 0) if random else None)
        guide.provenance = {"guide": spec, **guide.describe()}
        if random:
            guide.provenance["backbone"] = f"EfficientNet-Lite0, random initialisation (seed {int(seed or 0)})"
        return guide.to(device)
    if kind == "clip":
        name, _, pretrained = rest.partition("/")
        guide = zero_shot_classifier(profile, class_names, device, name or None, pretrained or None)
        guide.provenance = {**(guide.provenance or {}), "guide": spec}
        return guide
    if kind == "timm":
        name, _, checkpoint = rest.partition(":")
        if not name:
            raise ValueError(f"guide {spec!r}: give a timm model name, 'timm:<name>[:<checkpoint file>]'")
        return timm_guide(name, class_names, checkpoint or None, device)
    path = Path(spec).expanduser()
    if path.exists():
        if path.is_file():
            raise ValueError(f"guide {spec!r} is a file: name its architecture, 'timm:<name>:{spec}'")
        return train_run_guide(path, class_names, device)
    raise ValueError(f"unknown guide {spec!r}: {GUIDE_HELP}")
