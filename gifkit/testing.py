"""Random-weight checkpoints written in the exact on-disk layouts of the Hub repos gifkit loads.

One cohesive thing: the fixture writer of the real loaders. :func:`write_checkpoint` writes ``kind`` into a folder
laid out as its Hub repo (same folder names, ``model_index.json``, config keys, weight-file names and tokenizer
files), from the same classes, with seeded random weights; :func:`plant_hub_cache` writes it into a Hugging Face
cache (``models--org--name/snapshots/<commit>/...`` and ``refs/main``) so that the hub id itself loads offline.
``size="tiny"`` shrinks widths and depths (seconds on a CPU, what the unit tests load); ``size="full"`` keeps the
real ones (what the slow test and ``make gpu-check`` time). Layout and keys are the same for both.

============  ==============================================  =====================================================
kind          Hub repo                                        written
============  ==============================================  =====================================================
``sd``        CompVis/stable-diffusion-v1-4                   model_index.json; unet/, vae/ (config.json,
                                                              diffusion_pytorch_model.safetensors); text_encoder/
                                                              (config.json, model.safetensors); tokenizer/ (vocab.json,
                                                              merges.txt, tokenizer_config.json,
                                                              special_tokens_map.json); scheduler/scheduler_config.json
                                                              (PNDM); feature_extractor/preprocessor_config.json;
                                                              safety_checker/ (config.json, model.safetensors)
``ip2p``      timbrooks/instruct-pix2pix                      as ``sd``, U-Net with 8 input channels, Euler-ancestral
``clip``      timm/vit_base_patch32_clip_224.openai           open_clip_config.json, open_clip_model.safetensors
                                                              (what open_clip reads for ``ViT-B-32`` / ``openai``),
                                                              timm's config.json
``clip-l``    timm/vit_large_patch14_clip_224.openai          as ``clip``, for ``ViT-L-14`` / ``openai`` (ALIA's
                                                              semantic filter)
``mae``       facebook/vit-mae-large                          config.json (``norm_pix_loss: false``),
                                                              preprocessor_config.json, pytorch_model.bin
``unclip``    kakaobrain/karlo-v1-alpha-image-variations      model_index.json (``text_proj: ["unclip", ...]``);
                                                              decoder/, super_res_first/, super_res_last/, text_proj/;
                                                              text_encoder/, image_encoder/; tokenizer/;
                                                              feature_extractor/; decoder_scheduler/,
                                                              super_res_scheduler/ (UnCLIPScheduler)
``blip``      Salesforce/blip-image-captioning-large          config.json, model.safetensors, preprocessor_config.json,
                                                              vocab.txt, tokenizer_config.json, special_tokens_map.json
``llm``       Qwen/Qwen2.5-1.5B-Instruct                      config.json, generation_config.json, model.safetensors,
                                                              vocab.json, merges.txt, tokenizer_config.json (with the
                                                              chat template)
``taesd``     madebyollin/taesd                               config.json (``AutoencoderTiny``), diffusion_pytorch_model
                                                              .safetensors (beyond the paper: GIF-SD's optional
                                                              guidance decoder)
============  ==============================================  =====================================================

Departures, all in files gifkit never reads: the safety checker is always tiny (gifkit loads SD without it); only
the safetensors weights are written where a repo also has ``.bin`` / ``.ckpt`` / TF copies (MAE large has only
``pytorch_model.bin``, which is written; TAESD's original ``taesd_*.pth`` weights are not written); the tiny BLIP / LLM tokenizers have small vocabularies; timm's own weight
file of the CLIP repo is not written. The ``full`` size of ``blip`` and ``llm`` is not offered (gifkit's GPU check
does not time ALIA).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from gifkit.config import ALIA_SEMANTIC_CLIP_REPO, GUIDANCE_CLIP_REPO, MODEL_IDS
from gifkit.models import tiny

__all__ = ["KINDS", "SIZES", "HUB_IDS", "write_checkpoint", "plant_hub_cache", "snapshot_dir", "sd_configs", "clip_config",
           "mae_config", "unclip_configs", "unclip_text_proj_class", "taesd_config"]

KINDS = ("sd", "ip2p", "clip", "clip-l", "mae", "unclip", "blip", "llm", "taesd")
SIZES = ("tiny", "full")
HUB_IDS = {"sd": MODEL_IDS["sd"], "ip2p": MODEL_IDS["ip2p"], "clip": GUIDANCE_CLIP_REPO,
           "clip-l": ALIA_SEMANTIC_CLIP_REPO, "mae": MODEL_IDS["mae"],
           "unclip": MODEL_IDS["unclip"], "blip": MODEL_IDS["blip"], "llm": MODEL_IDS["llm"],
           "taesd": MODEL_IDS["taesd"]}
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


# ----------------------------------------------------------------------------- files


def _json(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def _weights(path: Path, module: torch.nn.Module) -> None:
    """The module's state dict as ``path`` (safetensors, or a torch pickle for ``*.bin``), tied tensors copied."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in module.state_dict().items()}
    if path.suffix == ".bin":
        torch.save(state, path)
    else:
        from safetensors.torch import save_file

        save_file(state, str(path), metadata={"format": "pt"})


def _build(cls_or_fn, *args, seed: int, device=None, **kwargs):
    """Construct with the global RNG seeded (reproducible random weights), on ``device`` when given (fast init)."""
    with tiny.seeded(seed), torch.device(device or "cpu"):
        return cls_or_fn(*args, **kwargs)


def _pick(size: str, tiny_value, full_value):
    return tiny_value if size == "tiny" else full_value


# ----------------------------------------------------------------------------- Stable Diffusion (v1-4, InstructPix2Pix)


def sd_configs(size: str, in_channels: int = 4) -> dict[str, dict]:
    """The configs of SD v1-4's folders, with the keys of the Hub files (widths shrunk for ``tiny``)."""
    t = size == "tiny"
    unet = {
        "_class_name": "UNet2DConditionModel", "act_fn": "silu",
        # diffusers raises sample_size to 64 for SD configs older than 0.9.0 (as v1-4's 0.2.2): the tiny size
        # says a later version so that its 8 px latents stay
        "_diffusers_version": "0.10.0" if t else "0.2.2",
        "attention_head_dim": 8, "block_out_channels": [32, 32, 64, 64] if t else [320, 640, 1280, 1280],
        "center_input_sample": False, "cross_attention_dim": 32 if t else 768,
        "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
        "downsample_padding": 1, "flip_sin_to_cos": True, "freq_shift": 0, "in_channels": in_channels,
        "layers_per_block": 1 if t else 2, "mid_block_scale_factor": 1, "norm_eps": 1e-05, "norm_num_groups": 32,
        "out_channels": 4, "sample_size": 8 if t else 64,
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]}
    vae = {
        "_class_name": "AutoencoderKL", "_diffusers_version": "0.2.2", "act_fn": "silu",
        "block_out_channels": [32, 32, 64, 64] if t else [128, 256, 512, 512],
        "down_block_types": ["DownEncoderBlock2D"] * 4, "in_channels": 3, "latent_channels": 4,
        "layers_per_block": 1 if t else 2, "out_channels": 3, "sample_size": 64 if t else 512,
        "up_block_types": ["UpDecoderBlock2D"] * 4}
    text = {
        "_name_or_path": "openai/clip-vit-large-patch14", "architectures": ["CLIPTextModel"],
        "attention_dropout": 0.0, "bos_token_id": 0, "dropout": 0.0, "eos_token_id": 2, "hidden_act": "quick_gelu",
        "hidden_size": 32 if t else 768, "initializer_factor": 1.0, "initializer_range": 0.02,
        "intermediate_size": 37 if t else 3072, "layer_norm_eps": 1e-05, "max_position_embeddings": 77,
        "model_type": "clip_text_model", "num_attention_heads": 4 if t else 12, "num_hidden_layers": 2 if t else 12,
        "pad_token_id": 1, "projection_dim": 32 if t else 768, "torch_dtype": "float32",
        "transformers_version": "4.22.0.dev0", "vocab_size": tiny.CLIP_VOCAB_SIZE}
    scheduler = {
        "_class_name": "PNDMScheduler", "_diffusers_version": "0.7.0.dev0", "beta_end": 0.012,
        "beta_schedule": "scaled_linear", "beta_start": 0.00085, "clip_sample": False, "num_train_timesteps": 1000,
        "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1, "trained_betas": None}
    features = {
        "crop_size": 224, "do_center_crop": True, "do_convert_rgb": True, "do_normalize": True, "do_resize": True,
        "feature_extractor_type": "CLIPFeatureExtractor", "image_mean": CLIP_MEAN, "image_std": CLIP_STD,
        "resample": 3, "size": 224}
    return {"unet": unet, "vae": vae, "text_encoder": text, "scheduler": scheduler, "feature_extractor": features}


def _safety_checker(seed: int):
    """A tiny ``StableDiffusionSafetyChecker`` (gifkit never loads it; the folder is part of the layout)."""
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig

    cfg = CLIPConfig(text_config=dict(hidden_size=32, intermediate_size=37, num_attention_heads=4,
                                      num_hidden_layers=2, vocab_size=tiny.CLIP_VOCAB_SIZE),
                     vision_config=dict(hidden_size=32, intermediate_size=37, num_attention_heads=4,
                                        num_hidden_layers=2, image_size=32, patch_size=8), projection_dim=32)
    return _build(StableDiffusionSafetyChecker, cfg, seed=seed)


def _write_sd(d: Path, size: str, seed: int, device, *, ip2p: bool = False) -> None:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    cfg = sd_configs(size, in_channels=8 if ip2p else 4)
    index = {"_class_name": "StableDiffusionInstructPix2PixPipeline" if ip2p else "StableDiffusionPipeline",
             "_diffusers_version": "0.15.0.dev0" if ip2p else "0.2.2",
             "feature_extractor": ["transformers", "CLIPImageProcessor"],
             "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"],
             "scheduler": ["diffusers", "EulerAncestralDiscreteScheduler" if ip2p else "PNDMScheduler"],
             "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
             "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]}
    if ip2p:
        index["requires_safety_checker"] = True
        cfg["scheduler"] = {"_class_name": "EulerAncestralDiscreteScheduler", "_diffusers_version": "0.15.0.dev0",
                            "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
                            "num_train_timesteps": 1000, "prediction_type": "epsilon", "steps_offset": 1,
                            "trained_betas": None}
    _json(d / "model_index.json", index)
    unet = _build(UNet2DConditionModel.from_config, cfg["unet"], seed=seed, device=device)
    _weights(d / "unet" / "diffusion_pytorch_model.safetensors", unet)
    del unet
    vae = _build(AutoencoderKL.from_config, cfg["vae"], seed=seed + 1, device=device)
    _weights(d / "vae" / "diffusion_pytorch_model.safetensors", vae)
    del vae
    text_cfg = {k: v for k, v in cfg["text_encoder"].items() if not k.startswith("_") and k != "architectures"}
    text = _build(CLIPTextModel, CLIPTextConfig(**text_cfg), seed=seed + 2, device=device)
    _weights(d / "text_encoder" / "model.safetensors", text)
    for name in ("unet", "vae", "text_encoder"):
        _json(d / name / "config.json", cfg[name])
    _json(d / "scheduler" / "scheduler_config.json", cfg["scheduler"])
    _json(d / "feature_extractor" / "preprocessor_config.json", cfg["feature_extractor"])
    tiny.write_clip_tokenizer(d / "tokenizer", 77)
    checker = _safety_checker(seed + 3)
    checker.config.save_pretrained(str(d / "safety_checker"))
    _weights(d / "safety_checker" / "model.safetensors", checker)


# ----------------------------------------------------------------------------- CLIP ViT-B/32 (openai, open_clip's hub layout)


# the real widths of the two OpenAI CLIPs gifkit loads: (embed, vision layers, vision width, patch, text width,
# text heads, timm architecture)
_CLIP_FULL = {"clip": (512, 12, 768, 32, 512, 8, "vit_base_patch32_clip_224"),
              "clip-l": (768, 24, 1024, 14, 768, 12, "vit_large_patch14_clip_224")}


def clip_config(size: str, kind: str = "clip") -> dict:
    """``open_clip_config.json`` of the ViT-B/32 (``clip``) or ViT-L/14 (``clip-l``) openai repo (no ``quick_gelu``
    key: open_clip's tag table says it)."""
    t = size == "tiny"
    embed, v_layers, v_width, patch, t_width, t_heads, _ = _CLIP_FULL[kind]
    return {"model_cfg": {"embed_dim": 32 if t else embed,
                          "vision_cfg": {"image_size": 32 if t else 224, "layers": 2 if t else v_layers,
                                         "width": 64 if t else v_width, "patch_size": 8 if t else patch},
                          "text_cfg": {"context_length": 77, "vocab_size": tiny.CLIP_VOCAB_SIZE,
                                       "width": 32 if t else t_width, "heads": 4 if t else t_heads,
                                       "layers": 2 if t else 12}},
            "preprocess_cfg": {"mean": CLIP_MEAN, "std": CLIP_STD}}


def _write_clip(d: Path, size: str, seed: int, device, kind: str = "clip") -> None:
    import open_clip

    cfg = clip_config(size, kind)
    model = _build(open_clip.model.CLIP, **cfg["model_cfg"], quick_gelu=True, seed=seed, device=device)
    _json(d / "open_clip_config.json", cfg)
    _weights(d / "open_clip_model.safetensors", model)
    embed, _, v_width = _CLIP_FULL[kind][:3]
    _json(d / "config.json", {"architecture": _CLIP_FULL[kind][-1], "num_classes": embed, "num_features": v_width,
                              "global_pool": "token", "model_args": {"img_size": 224},
                              "pretrained_cfg": {"tag": "openai", "custom_load": False, "input_size": [3, 224, 224],
                                                 "fixed_input_size": True, "interpolation": "bicubic",
                                                 "crop_pct": 1.0, "crop_mode": "center", "mean": CLIP_MEAN,
                                                 "std": CLIP_STD, "num_classes": embed, "pool_size": None,
                                                 "first_conv": "patch_embed.proj", "classifier": "head"}})


# ----------------------------------------------------------------------------- MAE ViT-L/16


def mae_config(size: str) -> dict:
    """``config.json`` of facebook/vit-mae-large (``norm_pix_loss: false``), widths shrunk for ``tiny``."""
    t = size == "tiny"
    return {"architectures": ["ViTMAEForPreTraining"], "attention_probs_dropout_prob": 0.0,
            "decoder_hidden_size": 32 if t else 512, "decoder_intermediate_size": 37 if t else 2048,
            "decoder_num_attention_heads": 4 if t else 16, "decoder_num_hidden_layers": 1 if t else 8,
            "hidden_act": "gelu", "hidden_dropout_prob": 0.0, "hidden_size": 32 if t else 1024,
            "image_size": 32 if t else 224, "initializer_range": 0.02, "intermediate_size": 37 if t else 4096,
            "layer_norm_eps": 1e-12, "mask_ratio": 0.75, "model_type": "vit_mae", "norm_pix_loss": False,
            "num_attention_heads": 4 if t else 16, "num_channels": 3, "num_hidden_layers": 2 if t else 24,
            "patch_size": 8 if t else 16, "qkv_bias": True, "torch_dtype": "float32",
            "transformers_version": "4.16.0.dev0"}


def _write_mae(d: Path, size: str, seed: int, device) -> None:
    from transformers import ViTMAEConfig, ViTMAEForPreTraining

    cfg = mae_config(size)
    keys = {k: v for k, v in cfg.items() if k not in ("architectures", "model_type", "transformers_version")}
    model = _build(ViTMAEForPreTraining, ViTMAEConfig(**keys), seed=seed, device=device)
    _json(d / "config.json", cfg)
    _json(d / "preprocessor_config.json", {
        "do_normalize": True, "do_resize": True, "feature_extractor_type": "ViTFeatureExtractor",
        "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225], "resample": 3,
        "size": cfg["image_size"]})
    _weights(d / "pytorch_model.bin", model)


# ----------------------------------------------------------------------------- Karlo unCLIP image variations


def unclip_configs(size: str) -> dict[str, dict]:
    """Init arguments of Karlo's components (the values of its conversion; widths shrunk for ``tiny``)."""
    t = size == "tiny"
    widths = [32, 32, 64, 64] if t else [320, 640, 960, 1280]
    xattn, emb, px = (64, 32, 32) if t else (1536, 768, 64)
    decoder = dict(sample_size=px, layers_per_block=1 if t else 3,
                   down_block_types=["ResnetDownsampleBlock2D"] + ["SimpleCrossAttnDownBlock2D"] * 3,
                   up_block_types=["SimpleCrossAttnUpBlock2D"] * 3 + ["ResnetUpsampleBlock2D"],
                   mid_block_type="UNetMidBlock2DSimpleCrossAttn", block_out_channels=widths, in_channels=3,
                   out_channels=6, cross_attention_dim=xattn, class_embed_type="identity",
                   attention_head_dim=8 if t else 64, resnet_time_scale_shift="scale_shift",
                   **({"norm_num_groups": 8} if t else {}))
    super_res = dict(layers_per_block=1 if t else 3, down_block_types=["ResnetDownsampleBlock2D"] * 4,
                     up_block_types=["ResnetUpsampleBlock2D"] * 4, block_out_channels=widths, in_channels=6,
                     out_channels=3, add_attention=False, **({"norm_num_groups": 8} if t else {}))
    text = dict(hidden_size=32 if t else 768, intermediate_size=37 if t else 3072, num_attention_heads=4 if t else 12,
                num_hidden_layers=2 if t else 12, projection_dim=emb, vocab_size=tiny.CLIP_VOCAB_SIZE,
                max_position_embeddings=77, hidden_act="quick_gelu", bos_token_id=49406, eos_token_id=49407,
                pad_token_id=1)
    vision = dict(hidden_size=48 if t else 1024, intermediate_size=37 if t else 4096,
                  num_attention_heads=4 if t else 16, num_hidden_layers=2 if t else 24, patch_size=8 if t else 14,
                  image_size=32 if t else 224, projection_dim=emb, hidden_act="quick_gelu")
    return {"decoder": decoder, "super_res_first": {**super_res, "sample_size": px * 4},
            "super_res_last": super_res, "text_proj": dict(clip_embeddings_dim=emb, time_embed_dim=widths[0] * 4,
                                                           cross_attention_dim=xattn),
            "text_encoder": text, "image_encoder": vision, "crop": 32 if t else 224}


def unclip_text_proj_class():
    """diffusers' ``UnCLIPTextProjModel`` (its module moved in 0.36)."""
    try:  # diffusers >= 0.36 keeps unCLIP under pipelines/deprecated
        from diffusers.pipelines.deprecated.unclip.text_proj import UnCLIPTextProjModel
    except ImportError:  # diffusers 0.35 (the Colab-like set)
        from diffusers.pipelines.unclip.text_proj import UnCLIPTextProjModel
    return UnCLIPTextProjModel


def _write_unclip(d: Path, size: str, seed: int, device) -> None:
    from diffusers import UnCLIPScheduler, UNet2DConditionModel, UNet2DModel
    from transformers import CLIPImageProcessor, CLIPTextConfig, CLIPTextModelWithProjection, CLIPVisionConfig, \
        CLIPVisionModelWithProjection

    cfg = unclip_configs(size)
    _json(d / "model_index.json", {
        "_class_name": "UnCLIPImageVariationPipeline", "_diffusers_version": "0.12.0.dev0",
        "decoder": ["diffusers", "UNet2DConditionModel"], "decoder_scheduler": ["diffusers", "UnCLIPScheduler"],
        "feature_extractor": ["transformers", "CLIPImageProcessor"],
        "image_encoder": ["transformers", "CLIPVisionModelWithProjection"],
        "super_res_first": ["diffusers", "UNet2DModel"], "super_res_last": ["diffusers", "UNet2DModel"],
        "super_res_scheduler": ["diffusers", "UnCLIPScheduler"],
        "text_encoder": ["transformers", "CLIPTextModelWithProjection"], "text_proj": ["unclip", "UnCLIPTextProjModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"]})
    parts: dict[str, Any] = {
        "decoder": (UNet2DConditionModel, cfg["decoder"]), "super_res_first": (UNet2DModel, cfg["super_res_first"]),
        "super_res_last": (UNet2DModel, cfg["super_res_last"]), "text_proj": (unclip_text_proj_class(), cfg["text_proj"])}
    for i, (name, (cls, kwargs)) in enumerate(parts.items()):
        model = _build(cls, **kwargs, seed=seed + i, device=device)
        model.save_config(str(d / name))
        _weights(d / name / "diffusion_pytorch_model.safetensors", model)
        del model
    for i, (name, cls, config) in enumerate([
            ("text_encoder", CLIPTextModelWithProjection, CLIPTextConfig(**cfg["text_encoder"])),
            ("image_encoder", CLIPVisionModelWithProjection, CLIPVisionConfig(**cfg["image_encoder"]))]):
        model = _build(cls, config, seed=seed + 10 + i, device=device)
        config.architectures = [cls.__name__]
        config.save_pretrained(str(d / name))
        _weights(d / name / "model.safetensors", model)
        del model
    tiny.write_clip_tokenizer(d / "tokenizer", 77)
    CLIPImageProcessor(crop_size=cfg["crop"], size=cfg["crop"], image_mean=CLIP_MEAN,
                       image_std=CLIP_STD).save_pretrained(str(d / "feature_extractor"))
    UnCLIPScheduler(variance_type="learned_range", clip_sample=True, clip_sample_range=1.0,
                    prediction_type="epsilon", num_train_timesteps=1000).save_config(str(d / "decoder_scheduler"))
    UnCLIPScheduler(variance_type="fixed_small_log", clip_sample=True, clip_sample_range=1.0,
                    prediction_type="epsilon", num_train_timesteps=1000).save_config(str(d / "super_res_scheduler"))


# ----------------------------------------------------------------------------- BLIP captioner, text generator (tiny)


def _write_blip(d: Path, size: str, seed: int, device) -> None:
    import open_clip

    bundle = tiny.tiny_blip(seed=seed)
    bundle.model.save_pretrained(str(d), safe_serialization=True)
    tiny.write_blip_tokenizer(d)
    bundle.processor.image_processor.image_mean = list(open_clip.OPENAI_DATASET_MEAN)
    bundle.processor.image_processor.save_pretrained(str(d))


LLM_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
# the instruction format of Qwen2.5 (its roles and markers), reduced to what gifkit's prompts use
LLM_CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                     "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def _byte_alphabet() -> list[str]:
    """The 256 printable stand-ins of byte-level BPE (GPT-2 / Qwen2): bytes that print map to themselves."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    out, n = dict.fromkeys(keep), 0
    for b in range(256):
        if b not in out:
            out[b] = 256 + n
            n += 1
    return [chr(out[b] if out[b] is not None else b) for b in range(256)]


def _write_llm(d: Path, size: str, seed: int, device) -> None:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    vocab = {c: i for i, c in enumerate(_byte_alphabet())}
    added = {tok: len(vocab) + i for i, tok in enumerate(LLM_SPECIALS)}
    cfg = Qwen2Config(vocab_size=len(vocab) + len(added), hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                      bos_token_id=added["<|endoftext|>"], eos_token_id=added["<|im_end|>"],
                      tie_word_embeddings=False)  # untied: a random model then does not just repeat one token
    cfg.architectures = ["Qwen2ForCausalLM"]
    model = _build(Qwen2ForCausalLM, cfg, seed=seed, device=device)
    model.generation_config.max_new_tokens = 24
    model.save_pretrained(str(d), safe_serialization=True)
    _json(d / "vocab.json", vocab)
    (d / "merges.txt").write_text("#version: 0.2\n")
    _json(d / "tokenizer_config.json", {
        "add_prefix_space": False, "bos_token": None, "chat_template": LLM_CHAT_TEMPLATE, "clean_up_tokenization_spaces":
        False, "eos_token": "<|im_end|>", "errors": "replace", "model_max_length": 4096, "pad_token": "<|endoftext|>",
        "split_special_tokens": False, "tokenizer_class": "Qwen2Tokenizer", "unk_token": None,
        "added_tokens_decoder": {str(i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                                          "single_word": False, "special": True} for t, i in added.items()}})


# ----------------------------------------------------------------------------- TAESD (tiny autoencoder for SD v1)


def taesd_config(size: str) -> dict:
    """``config.json`` of madebyollin/taesd (the keys of the Hub file); ``tiny``: 8 channels, one block per stage,
    the same 4 stages (SD's factor 8, as the tiny ``sd`` layout's VAE)."""
    t = size == "tiny"
    return {"_class_name": "AutoencoderTiny", "_diffusers_version": "0.20.0.dev0", "act_fn": "relu",
            "decoder_block_out_channels": [8 if t else 64] * 4, "encoder_block_out_channels": [8 if t else 64] * 4,
            "force_upcast": False, "in_channels": 3, "latent_channels": 4, "latent_magnitude": 3,
            "latent_shift": 0.5, "num_decoder_blocks": [1, 1, 1, 1] if t else [3, 3, 3, 1],
            "num_encoder_blocks": [1, 1, 1, 1] if t else [1, 3, 3, 3], "out_channels": 3, "scaling_factor": 1.0,
            "upsampling_scaling_factor": 2}


def _write_taesd(d: Path, size: str, seed: int, device) -> None:
    from diffusers import AutoencoderTiny

    cfg = taesd_config(size)
    model = _build(AutoencoderTiny.from_config, cfg, seed=seed, device=device)
    _json(d / "config.json", cfg)
    _weights(d / "diffusion_pytorch_model.safetensors", model)


# ----------------------------------------------------------------------------- entry points

_WRITERS = {"sd": _write_sd, "ip2p": lambda d, size, seed, device: _write_sd(d, size, seed, device, ip2p=True),
            "clip": _write_clip, "clip-l": lambda d, size, seed, device: _write_clip(d, size, seed, device, "clip-l"),
            "mae": _write_mae, "unclip": _write_unclip, "blip": _write_blip, "llm": _write_llm,
            "taesd": _write_taesd}


def write_checkpoint(kind: str, directory: str | Path, size: str = "tiny", *, seed: int = 0,
                     device: str | torch.device | None = None) -> Path:
    """Write a random-weight checkpoint of ``kind`` (:data:`KINDS`) into ``directory``, laid out as its Hub repo.

    ``size``: ``"tiny"`` (small widths, seconds) or ``"full"`` (the real widths; ``sd``, ``ip2p``, ``clip``,
    ``clip-l``, ``mae``, ``unclip``, ``taesd``). Weights are drawn from the global RNG seeded with ``seed`` (same seed, same bytes), built on
    ``device`` when given (a GPU initialises full-size models much faster) and saved from the CPU. An existing
    ``directory`` is replaced. Returns the folder.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown checkpoint kind {kind!r}; known: {', '.join(KINDS)}")
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    if size == "full" and kind in ("blip", "llm"):
        raise ValueError(f"size='full' is not offered for {kind!r} (tiny only)")
    d = Path(directory)
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    _WRITERS[kind](d, size, seed, device)
    return d


def snapshot_dir(cache: str | Path, repo_id: str, revision: str = "0" * 40) -> Path:
    """``<cache>/models--org--name/snapshots/<revision>``: where huggingface_hub keeps a repo's files."""
    return Path(cache) / ("models--" + repo_id.replace("/", "--")) / "snapshots" / revision


def plant_hub_cache(kind: str, cache: str | Path, size: str = "tiny", *, seed: int = 0, revision: str = "0" * 40,
                    device: str | torch.device | None = None, repo_id: str | None = None) -> Path:
    """Write ``kind`` into the Hugging Face cache ``cache`` (``HF_HUB_CACHE``) under its hub id
    (:data:`HUB_IDS`, or ``repo_id``: e.g. SD v1.5's id for an ``sd`` layout), as ``huggingface_hub`` lays out a
    download (``refs/main`` names the snapshot ``revision``), so ``from_pretrained(<hub id>)`` finds it offline.
    Returns the snapshot folder."""
    snap = write_checkpoint(kind, snapshot_dir(cache, repo_id or HUB_IDS[kind], revision), size, seed=seed,
                            device=device)
    refs = snap.parent.parent / "refs"
    refs.mkdir(exist_ok=True)
    (refs / "main").write_text(revision)
    return snap
