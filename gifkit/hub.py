"""Model hub: real checkpoints by hub id or local directory, and tiny builders.

Real loaders (``load_clip``, ``load_sd``, ``load_mae``, ``load_unclip``) wrap
open_clip / diffusers / transformers. Each accepts a hub id or a local
directory and raises :class:`ModelUnavailable` with a message naming the model,
what was tried and how to get it, when the checkpoint cannot be loaded
(offline and not cached, missing directory, incomplete files).

Tiny builders (``tiny_clip``, ``tiny_sd``, ``tiny_mae``, ``tiny_unclip``)
construct the *same classes* with small configs and seeded random weights, in
well under two seconds on a CPU, with no network and no files from outside the
package. They are what the smoke profile and the test-suite run, so the code
path exercised in CI is the one real checkpoints take.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NamedTuple

import torch

__all__ = [
    "ModelUnavailable",
    "ClipBundle",
    "KNOWN_CHECKPOINTS",
    "is_offline",
    "best_device",
    "checkpoint_status",
    "clip_tokenizer",
    "load_clip",
    "load_sd",
    "load_mae",
    "load_unclip",
    "tiny_clip",
    "tiny_sd",
    "tiny_mae",
    "tiny_unclip",
]

CLIP_VOCAB_SIZE = 49408  # the real CLIP BPE vocabulary (49,152 merges + bytes + 2 specials)


class ModelUnavailable(RuntimeError):
    """A real checkpoint could not be loaded (offline, missing or incomplete files)."""


class ClipBundle(NamedTuple):
    """What :func:`load_clip` and :func:`tiny_clip` return."""

    model: torch.nn.Module  # open_clip.CLIP
    preprocess: Callable  # PIL image -> normalised tensor [3, S, S]
    tokenizer: Callable  # list[str] -> LongTensor [N, 77]


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint gifkit knows: where it lives on the hub and a file proving it is cached."""

    key: str
    repo_id: str
    probe_file: str
    used_by: str


KNOWN_CHECKPOINTS: dict[str, Checkpoint] = {
    c.key: c
    for c in [
        Checkpoint("clip", "timm/vit_base_patch32_clip_224.openai", "open_clip_config.json",
                   "CLIP ViT-B/32 (openai): zero-shot guidance, `load_clip()`"),
        Checkpoint("sd", "CompVis/stable-diffusion-v1-4", "model_index.json",
                   "Stable Diffusion v1-4: GIF-SD prior, `load_sd()`"),
        Checkpoint("mae", "facebook/vit-mae-large", "config.json",
                   "MAE ViT-L/16: GIF-MAE prior, `load_mae()`"),
        Checkpoint("unclip", "kakaobrain/karlo-v1-alpha-image-variations", "model_index.json",
                   "Karlo unCLIP image variation: GIF-DALLE prior, `load_unclip()`"),
    ]
}


# ----------------------------------------------------------------------------- helpers


def is_offline() -> bool:
    """True when HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE ask for no network."""
    truthy = {"1", "true", "yes", "on"}
    return any(os.environ.get(v, "").strip().lower() in truthy for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def best_device() -> torch.device:
    """CUDA if present, else Apple MPS, else CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _looks_like_path(model_id: str) -> bool:
    # hub ids are "name" or "org/name"; anything else (absolute, relative, ~, deeper) is a path
    return model_id.startswith(("/", ".", "~")) or model_id.count("/") >= 2 or Path(model_id).exists()


def _how_to_get(repo_id: str) -> str:
    if _looks_like_path(repo_id):
        return ("Pass a directory holding a complete checkpoint (as written by `save_pretrained` or "
                "`hf download <hub id> --local-dir <dir>`), or a hub id such as "
                + ", ".join(repr(c.repo_id) for c in KNOWN_CHECKPOINTS.values()) + ".")
    return (
        f"Get it on a machine with internet: `hf download {repo_id} --local-dir <dir>` "
        f"(or `huggingface-cli download ...` with older huggingface_hub), then pass that <dir> "
        f"instead of the hub id, or unset HF_HUB_OFFLINE to let gifkit download it."
    )


def _unavailable(what: str, repo_id: str, tried: str, err: BaseException | None = None) -> ModelUnavailable:
    msg = f"{what} '{repo_id}' is not available: tried {tried}."
    if err is not None:
        msg += f" ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
    return ModelUnavailable(msg + " " + _how_to_get(repo_id))


def _resolve(model_id: str, what: str) -> tuple[str, bool]:
    """Return (id_or_path, local_files_only); raise fast for a missing local directory."""
    expanded = os.path.expanduser(model_id)
    if _looks_like_path(model_id):
        if not Path(expanded).exists():
            raise _unavailable(what, model_id, f"the local path {expanded!r}, which does not exist")
        return expanded, True
    return model_id, is_offline()


def checkpoint_status(key: str) -> str:
    """'cached at <dir>' or 'not cached' for a known checkpoint, without network."""
    from huggingface_hub import try_to_load_from_cache

    ck = KNOWN_CHECKPOINTS[key]
    found = try_to_load_from_cache(ck.repo_id, ck.probe_file)
    if isinstance(found, str):
        return f"cached at {Path(found).parent}"
    return "not cached"


@contextlib.contextmanager
def _seeded(seed: int):
    """Fork the global RNG, seed it, restore it afterwards (tiny weights are reproducible)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


# ----------------------------------------------------------------------------- CLIP


def clip_tokenizer(model_max_length: int = 77):
    """The real CLIP BPE tokenizer as a transformers ``CLIPTokenizer``, built offline.

    The vocabulary and merges come from the BPE file shipped inside open_clip,
    so no hub access is needed. The vocabulary size is checked: under
    transformers 5 a tokenizer loaded from a missing repo silently has 2 tokens.
    """
    from open_clip.tokenizer import SimpleTokenizer
    from transformers import CLIPTokenizer

    st = SimpleTokenizer()
    vocab = dict(st.encoder)
    # open_clip spells the specials <start_of_text>; CLIP's vocab has <|startoftext|>.
    for ours, theirs in (("<start_of_text>", "<|startoftext|>"), ("<end_of_text>", "<|endoftext|>")):
        if ours in vocab:
            vocab[theirs] = vocab.pop(ours)
    merges = [pair for pair, _ in sorted(st.bpe_ranks.items(), key=lambda kv: kv[1])]
    tok = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=model_max_length)
    if len(tok) != CLIP_VOCAB_SIZE:
        raise RuntimeError(f"CLIP tokenizer built with {len(tok)} tokens, expected {CLIP_VOCAB_SIZE}")
    return tok


def _clip_weights_file(directory: Path) -> Path | None:
    for pattern in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin", "*.safetensors", "*.pt", "*.bin"):
        hits = sorted(directory.glob(pattern))
        if hits:
            return hits[0]
    return None


def load_clip(name: str = "ViT-B-32", pretrained: str = "openai", device: str | torch.device = "cpu") -> ClipBundle:
    """Load an open_clip model: ``(model, preprocess, tokenizer)``.

    Args:
        name: open_clip architecture name (``"ViT-B-32"``) or ``"hf-hub:org/repo"``.
        pretrained: an open_clip pretrained tag (``"openai"``), a checkpoint file,
            or a local directory holding ``open_clip_model.safetensors`` (or ``*.bin`` / ``*.pt``).
    """
    import open_clip

    tag = pretrained
    if pretrained and _looks_like_path(pretrained):
        p = Path(os.path.expanduser(pretrained))
        if not p.exists():
            raise _unavailable("CLIP checkpoint", f"{name}/{pretrained}", f"the local path {str(p)!r}, which does not exist")
        if p.is_dir():
            f = _clip_weights_file(p)
            if f is None:
                raise _unavailable("CLIP checkpoint", f"{name}/{pretrained}", f"{str(p)!r}, which holds no weights file")
            tag = str(f)
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=tag, device=device)
        tokenizer = open_clip.get_tokenizer(name)
    except Exception as e:  # open_clip raises RuntimeError / OSError / hub errors
        repo = name if name.startswith("hf-hub:") else f"{name} ({pretrained})"
        hub = open_clip.get_pretrained_cfg(name, pretrained).get("hf_hub", "").rstrip("/") if not _looks_like_path(str(pretrained)) else ""
        err = _unavailable("CLIP model", repo, f"open_clip.create_model_and_transforms({name!r}, pretrained={pretrained!r})" + (" offline" if is_offline() else ""), e)
        if hub:
            err = ModelUnavailable(str(err).replace(f"`hf download {repo}", f"`hf download {hub}"))
        raise err from e
    model.eval().requires_grad_(False)
    return ClipBundle(model, preprocess, tokenizer)


def tiny_clip(seed: int = 0, image_size: int = 32, embed_dim: int = 32) -> ClipBundle:
    """A randomly initialised ``open_clip.CLIP`` with the real tokenizer (offline, < 1 s)."""
    import open_clip
    from open_clip.model import CLIPTextCfg, CLIPVisionCfg

    vision = CLIPVisionCfg(layers=2, width=32, head_width=16, patch_size=8, image_size=image_size)
    text = CLIPTextCfg(context_length=77, vocab_size=CLIP_VOCAB_SIZE, width=32, heads=4, layers=2)
    with _seeded(seed):
        model = open_clip.model.CLIP(embed_dim=embed_dim, vision_cfg=vision, text_cfg=text, quick_gelu=True)
    mean, std = open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD
    model.visual.preprocess_cfg = {"size": (image_size, image_size), "mode": "RGB", "mean": mean, "std": std,
                                   "interpolation": "bicubic", "resize_mode": "shortest", "fill_color": 0}
    preprocess = open_clip.image_transform(image_size, is_train=False, mean=mean, std=std)
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    model.eval().requires_grad_(False)
    return ClipBundle(model, preprocess, tokenizer)


# ----------------------------------------------------------------------------- Stable Diffusion


def _from_pretrained(cls, model_id: str, what: str, **kwargs) -> Any:
    path, local_only = _resolve(model_id, what)
    try:
        return cls.from_pretrained(path, local_files_only=local_only, **kwargs)
    except Exception as e:
        tried = f"{cls.__name__}.from_pretrained({path!r}" + (", local_files_only=True)" if local_only else ")")
        raise _unavailable(what, model_id, tried, e) from e


def load_sd(model_id: str = "CompVis/stable-diffusion-v1-4", torch_dtype: torch.dtype | None = None,
            device: str | torch.device | None = None):
    """Stable Diffusion as a diffusers ``StableDiffusionImg2ImgPipeline`` (safety checker off).

    The pipeline's components (``vae``, ``unet``, ``text_encoder``, ``tokenizer``,
    ``scheduler``) are what :mod:`gifkit.priors.sd` uses. The scheduler is
    replaced by DDIM with the checkpoint's own noise schedule (the paper's sampler).
    """
    from diffusers import DDIMScheduler, StableDiffusionImg2ImgPipeline

    pipe = _from_pretrained(StableDiffusionImg2ImgPipeline, model_id, "Stable Diffusion checkpoint",
                            safety_checker=None, requires_safety_checker=False, torch_dtype=torch_dtype)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    if device is not None:
        pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_sd(seed: int = 0, image_size: int = 32):
    """A tiny ``StableDiffusionImg2ImgPipeline``: same classes as SD v1, small configs.

    U-Net (32/64 channels, cross-attention 32), VAE with 4 latent channels and a
    downsampling factor of 2 (``image_size`` px -> latent ``image_size/2``), a
    5-layer CLIP text encoder with the real CLIP tokenizer, SD's DDIM schedule.
    """
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionImg2ImgPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    with _seeded(seed):
        unet = UNet2DConditionModel(
            block_out_channels=(32, 64), layers_per_block=1, sample_size=image_size // 2,
            in_channels=4, out_channels=4, norm_num_groups=8, attention_head_dim=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
        )
        vae = AutoencoderKL(
            block_out_channels=(32, 64), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=8,
            down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
            up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), sample_size=image_size,
        )
        text_encoder = CLIPTextModel(CLIPTextConfig(
            hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
            vocab_size=CLIP_VOCAB_SIZE, max_position_embeddings=77, projection_dim=32,
            bos_token_id=49406, eos_token_id=49407, pad_token_id=49407,
        ))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionImg2ImgPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=clip_tokenizer(), unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


# ----------------------------------------------------------------------------- MAE


def load_mae(model_id: str = "facebook/vit-mae-large"):
    """MAE as transformers ``ViTMAEForPreTraining`` with masking ratio 0 (all patches kept)."""
    from transformers import ViTMAEForPreTraining

    model = _from_pretrained(ViTMAEForPreTraining, model_id, "MAE checkpoint", mask_ratio=0.0)
    return model.eval().requires_grad_(False)


def tiny_mae(seed: int = 0, image_size: int = 32, patch_size: int = 8):
    """A tiny ``ViTMAEForPreTraining`` (2 encoder layers, 1 decoder layer), masking ratio 0."""
    from transformers import ViTMAEConfig, ViTMAEForPreTraining

    cfg = ViTMAEConfig(
        image_size=image_size, patch_size=patch_size, num_channels=3, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=37, decoder_hidden_size=32, decoder_num_hidden_layers=1,
        decoder_num_attention_heads=4, decoder_intermediate_size=37, mask_ratio=0.0, norm_pix_loss=False,
    )
    with _seeded(seed):
        model = ViTMAEForPreTraining(cfg)
    return model.eval().requires_grad_(False)


# ----------------------------------------------------------------------------- unCLIP (DALL-E2 stand-in)


def load_unclip(model_id: str = "kakaobrain/karlo-v1-alpha-image-variations", torch_dtype: torch.dtype | None = None,
                device: str | torch.device | None = None):
    """Karlo's unCLIP image-variation pipeline (diffusers ``UnCLIPImageVariationPipeline``).

    Its image encoder is CLIP ViT-L/14 (transformers ``CLIPVisionModelWithProjection``);
    the decoder generates 64 px images, as the paper's DALL-E2; two super-resolution
    U-Nets bring them to 256 px.
    """
    from diffusers import UnCLIPImageVariationPipeline

    pipe = _from_pretrained(UnCLIPImageVariationPipeline, model_id, "unCLIP checkpoint", torch_dtype=torch_dtype)
    if device is not None:
        pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_unclip(seed: int = 0):
    """A tiny ``UnCLIPImageVariationPipeline``: same classes as Karlo, small configs (32 px decoder)."""
    from diffusers import UnCLIPImageVariationPipeline, UnCLIPScheduler, UNet2DConditionModel, UNet2DModel
    try:  # diffusers >= 0.36 keeps unCLIP under pipelines/deprecated
        from diffusers.pipelines.deprecated.unclip.text_proj import UnCLIPTextProjModel
    except ImportError:  # pragma: no cover - older diffusers
        from diffusers.pipelines.unclip.text_proj import UnCLIPTextProjModel
    from transformers import (CLIPImageProcessor, CLIPTextConfig, CLIPTextModelWithProjection, CLIPVisionConfig,
                              CLIPVisionModelWithProjection)

    d, t, xattn, size = 32, 128, 100, 32  # embedding dim, time-embedding dim, cross-attention dim, decoder px
    with _seeded(seed):
        text_encoder = CLIPTextModelWithProjection(CLIPTextConfig(
            hidden_size=d, projection_dim=d, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
            vocab_size=CLIP_VOCAB_SIZE, max_position_embeddings=77,
            bos_token_id=49406, eos_token_id=49407, pad_token_id=49407,
        ))
        image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
            hidden_size=d, projection_dim=d, num_hidden_layers=2, num_attention_heads=4, image_size=size,
            intermediate_size=37, patch_size=8,
        ))
        text_proj = UnCLIPTextProjModel(clip_embeddings_dim=d, time_embed_dim=t, cross_attention_dim=xattn)
        decoder = UNet2DConditionModel(
            sample_size=size, in_channels=3, out_channels=6, block_out_channels=(32, 64), layers_per_block=1,
            down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
            up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
            mid_block_type="UNetMidBlock2DSimpleCrossAttn", cross_attention_dim=xattn, attention_head_dim=4,
            resnet_time_scale_shift="scale_shift", class_embed_type="identity", norm_num_groups=8,
        )
        sr_kwargs = dict(
            sample_size=size * 2, layers_per_block=1, in_channels=6, out_channels=3, block_out_channels=(32, 64),
            down_block_types=("ResnetDownsampleBlock2D", "ResnetDownsampleBlock2D"),
            up_block_types=("ResnetUpsampleBlock2D", "ResnetUpsampleBlock2D"), norm_num_groups=8,
        )
        super_res_first = UNet2DModel(**sr_kwargs)
        super_res_last = UNet2DModel(**sr_kwargs)
    pipe = UnCLIPImageVariationPipeline(
        decoder=decoder, text_encoder=text_encoder, tokenizer=clip_tokenizer(), text_proj=text_proj,
        feature_extractor=CLIPImageProcessor(crop_size=size, size=size), image_encoder=image_encoder,
        super_res_first=super_res_first, super_res_last=super_res_last,
        decoder_scheduler=UnCLIPScheduler(variance_type="learned_range", prediction_type="epsilon", num_train_timesteps=1000),
        super_res_scheduler=UnCLIPScheduler(variance_type="fixed_small_log", prediction_type="epsilon", num_train_timesteps=1000),
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


# ----------------------------------------------------------------------------- ALIA / DreamDA models (issue 8)
# Appended: BLIP captioner, a text-generation model and InstructPix2Pix, each as a real loader and a tiny
# builder of the same classes (the text-generation tiny builder is GPT-2, a stand-in for any causal LM).

BLIP_ID = "Salesforce/blip-image-captioning-large"  # what ALIA's caption.py used
TEXT_GENERATION_ID = "Qwen/Qwen2.5-1.5B-Instruct"  # an open instruction-tuned LM (ALIA used GPT-4 / Vicuna)
INSTRUCT_PIX2PIX_ID = "timbrooks/instruct-pix2pix"
SD15_ID = "stable-diffusion-v1-5/stable-diffusion-v1-5"  # SD v1.5 (ALIA's and DreamDA's base model)

for _c in [
    Checkpoint("blip", BLIP_ID, "config.json", "BLIP captioner: ALIA step (a), `load_blip()`"),
    Checkpoint("llm", TEXT_GENERATION_ID, "config.json", "text-generation model: ALIA step (b), `load_text_generator()`"),
    Checkpoint("ip2p", INSTRUCT_PIX2PIX_ID, "model_index.json", "InstructPix2Pix: ALIA editor, `load_instruct_pix2pix()`"),
    Checkpoint("sd15", SD15_ID, "model_index.json", "Stable Diffusion v1.5: ALIA img2img and DreamDA, `load_sd()`"),
]:
    KNOWN_CHECKPOINTS.setdefault(_c.key, _c)

__all__ += ["BLIP_ID", "TEXT_GENERATION_ID", "INSTRUCT_PIX2PIX_ID", "SD15_ID", "CaptionerBundle", "TextGenBundle",
            "load_blip", "tiny_blip", "blip_tokenizer", "load_text_generator", "tiny_text_generator",
            "load_instruct_pix2pix", "tiny_instruct_pix2pix"]


class CaptionerBundle(NamedTuple):
    """What :func:`load_blip` and :func:`tiny_blip` return."""

    model: torch.nn.Module  # transformers BlipForConditionalGeneration
    processor: Any  # transformers BlipProcessor (image processor + BERT WordPiece tokenizer)


class TextGenBundle(NamedTuple):
    """What :func:`load_text_generator` and :func:`tiny_text_generator` return."""

    model: torch.nn.Module  # a transformers *ForCausalLM
    tokenizer: Any


# A small English WordPiece vocabulary: BERT's special tokens, BLIP's [DEC], characters (whole-word and "##"
# continuation pieces, so every lower-case ASCII text tokenises) and common caption words.
_TINY_WORDS = (
    "a an the of in on at with and or to from by for near over under into is are it its this that there "
    "photo picture image close up view background foreground field grass sky water river lake sea beach snow "
    "rain fog night day sunset sunlight indoor outdoor forest tree trees branch road street city building room "
    "table floor wall camera blurry dark bright white black red green blue yellow brown gray small large two "
    "bird dog cat animal person man woman car plane flower shape circle square triangle cross standing sitting "
    "flying walking lying"
).split()


def blip_tokenizer():
    """A BERT-style ``BertTokenizer`` (WordPiece) built offline, with BLIP's specials; ``[DEC]`` is the bos token.

    The vocabulary is small (specials, characters, ``##`` pieces, ~150 words) and fixed, so the tiny BLIP is
    reproducible; its size is checked (a tokenizer built from a broken vocabulary silently has few tokens).
    """
    from transformers import BertTokenizer

    chars = list("abcdefghijklmnopqrstuvwxyz0123456789.,'-!?")
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars + ["##" + c for c in chars]
    tokens += [w for w in _TINY_WORDS if w not in tokens] + ["[DEC]"]
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = BertTokenizer(vocab=vocab, bos_token="[DEC]", model_max_length=64)
    if len(tok) != len(vocab):
        raise RuntimeError(f"BLIP tokenizer built with {len(tok)} tokens, expected {len(vocab)}")
    return tok


def load_blip(model_id: str = BLIP_ID, device: str | torch.device | None = None,
              torch_dtype: torch.dtype | None = None) -> CaptionerBundle:
    """BLIP captioning (transformers ``BlipForConditionalGeneration`` + ``BlipProcessor``), eval mode."""
    from transformers import BlipForConditionalGeneration, BlipProcessor

    processor = _from_pretrained(BlipProcessor, model_id, "BLIP captioner")
    model = _from_pretrained(BlipForConditionalGeneration, model_id, "BLIP captioner", dtype=torch_dtype)
    if device is not None:
        model = model.to(device)
    return CaptionerBundle(model.eval().requires_grad_(False), processor)


def tiny_blip(seed: int = 0, image_size: int = 32) -> CaptionerBundle:
    """A tiny ``BlipForConditionalGeneration`` (2-layer ViT, 2-layer text decoder) and ``BlipProcessor``, offline."""
    from transformers import (BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor,
                              BlipTextConfig, BlipVisionConfig)

    tok = blip_tokenizer()
    text = BlipTextConfig(vocab_size=len(tok), hidden_size=32, encoder_hidden_size=32, intermediate_size=37,
                          projection_dim=32, num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=64,
                          bos_token_id=tok.bos_token_id, eos_token_id=tok.sep_token_id, pad_token_id=tok.pad_token_id,
                          sep_token_id=tok.sep_token_id)
    vision = BlipVisionConfig(hidden_size=32, intermediate_size=37, projection_dim=32, num_hidden_layers=2,
                              num_attention_heads=4, image_size=image_size, patch_size=8, initializer_range=0.02)
    with _seeded(seed):
        model = BlipForConditionalGeneration(BlipConfig(text_config=text.to_dict(), vision_config=vision.to_dict(),
                                                        projection_dim=32))
    model.text_decoder.generation_config.max_length = 12  # what BlipForConditionalGeneration.generate uses
    import open_clip
    image_processor = BlipImageProcessor(size={"height": image_size, "width": image_size},
                                         image_mean=list(open_clip.OPENAI_DATASET_MEAN),
                                         image_std=list(open_clip.OPENAI_DATASET_STD))
    return CaptionerBundle(model.eval().requires_grad_(False), BlipProcessor(image_processor, tok))


def load_text_generator(model_id: str = TEXT_GENERATION_ID, device: str | torch.device | None = None,
                        torch_dtype: torch.dtype | None = None) -> TextGenBundle:
    """A causal language model and its tokenizer (``AutoModelForCausalLM`` / ``AutoTokenizer``), eval mode."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = _from_pretrained(AutoTokenizer, model_id, "text-generation model")
    if len(tokenizer) < 100:  # transformers 5 may build a near-empty tokenizer instead of failing
        raise _unavailable("text-generation model", model_id, f"AutoTokenizer.from_pretrained({model_id!r}), which "
                           f"gave a tokenizer of {len(tokenizer)} tokens")
    model = _from_pretrained(AutoModelForCausalLM, model_id, "text-generation model", dtype=torch_dtype)
    if device is not None:
        model = model.to(device)
    return TextGenBundle(model.eval().requires_grad_(False), tokenizer)


def tiny_text_generator(seed: int = 0) -> TextGenBundle:
    """A tiny ``GPT2LMHeadModel`` (2 layers, 32 wide) with the real CLIP BPE tokenizer (offline, < 1 s)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    tok = clip_tokenizer(model_max_length=1024)
    # a minimal chat template, so callers format prompts the way they do for real instruction-tuned models
    tok.chat_template = ("{% for m in messages %}{{ m['content'] }}\n{% endfor %}"
                         "{% if add_generation_prompt %}answer:{% endif %}")
    cfg = GPT2Config(vocab_size=CLIP_VOCAB_SIZE, n_positions=1024, n_embd=32, n_layer=2, n_head=4,
                     bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                     tie_word_embeddings=False)  # untied: a random model then does not just repeat its input
    with _seeded(seed):
        model = GPT2LMHeadModel(cfg)
    return TextGenBundle(model.eval().requires_grad_(False), tok)


def load_instruct_pix2pix(model_id: str = INSTRUCT_PIX2PIX_ID, torch_dtype: torch.dtype | None = None,
                          device: str | torch.device | None = None):
    """InstructPix2Pix as a diffusers ``StableDiffusionInstructPix2PixPipeline`` (its own Euler-ancestral sampler)."""
    from diffusers import StableDiffusionInstructPix2PixPipeline

    pipe = _from_pretrained(StableDiffusionInstructPix2PixPipeline, model_id, "InstructPix2Pix checkpoint",
                            safety_checker=None, requires_safety_checker=False, torch_dtype=torch_dtype)
    if device is not None:
        pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_instruct_pix2pix(seed: int = 0, image_size: int = 32):
    """A tiny ``StableDiffusionInstructPix2PixPipeline``: :func:`tiny_sd`'s VAE, text encoder and tokenizer, and
    a U-Net of the same config with 8 input channels (noisy latent + image latent), Euler-ancestral sampler."""
    from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionInstructPix2PixPipeline, UNet2DConditionModel

    sd = tiny_sd(seed=seed, image_size=image_size)
    with _seeded(seed + 1):
        unet = UNet2DConditionModel(**{**dict(sd.unet.config), "in_channels": 8})
    scheduler = EulerAncestralDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                                steps_offset=1)
    pipe = StableDiffusionInstructPix2PixPipeline(
        vae=sd.vae, text_encoder=sd.text_encoder, tokenizer=sd.tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe
