"""Tiny random models of the real classes: what the smoke profile and the tests run.

Each builder constructs the *same classes* as a real checkpoint (open_clip ``CLIP``, diffusers pipelines,
transformers models) with small configs and seeded random weights, in well under two seconds on a CPU,
with no network and no files from outside the package, so the code path exercised in CI is the one real
checkpoints take. Tokenizers are real (CLIP's BPE from open_clip) or small and fixed (BLIP's WordPiece).
"""
from __future__ import annotations

import contextlib

import torch

from gifkit.models.hub import CaptionerBundle, ClipBundle, TextGenBundle

__all__ = ["CLIP_VOCAB_SIZE", "CLIP_SPECIALS", "seeded", "write_clip_tokenizer", "clip_tokenizer", "blip_vocab",
           "write_blip_tokenizer", "blip_tokenizer", "tiny_clip", "tiny_sd", "tiny_mae",
           "tiny_unclip", "tiny_blip", "tiny_text_generator", "tiny_instruct_pix2pix", "tiny_taesd"]

CLIP_VOCAB_SIZE = 49408  # the real CLIP BPE vocabulary (49,152 merges + bytes + 2 specials)


@contextlib.contextmanager
def seeded(seed: int):
    """Fork the global RNG, seed it, restore it afterwards (tiny weights are reproducible)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


CLIP_SPECIALS = ("<|startoftext|>", "<|endoftext|>")


def write_clip_tokenizer(directory, model_max_length: int = 77):
    """Write the real CLIP BPE tokenizer as a Hub ``tokenizer/`` folder: ``vocab.json``, ``merges.txt``,
    ``tokenizer_config.json``, ``special_tokens_map.json`` (the files of SD v1's and Karlo's tokenizer folders).

    The vocabulary (49,408 entries: 256 bytes, 256 end-of-word bytes, 48,894 merges, 2 specials) and the
    merges come from the BPE file shipped inside open_clip, so nothing is downloaded. Returns the folder.
    """
    import json
    from pathlib import Path

    from open_clip.tokenizer import SimpleTokenizer

    st = SimpleTokenizer()
    vocab = dict(st.encoder)
    # open_clip spells the specials <start_of_text>; CLIP's vocab has <|startoftext|>.
    for ours, theirs in zip(("<start_of_text>", "<end_of_text>"), CLIP_SPECIALS):
        if ours in vocab:
            vocab[theirs] = vocab.pop(ours)
    merges = [" ".join(pair) for pair, _ in sorted(st.bpe_ranks.items(), key=lambda kv: kv[1])]
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    (d / "vocab.json").write_text(json.dumps(dict(sorted(vocab.items(), key=lambda kv: kv[1])), ensure_ascii=False))
    (d / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    special = {"bos_token": CLIP_SPECIALS[0], "eos_token": CLIP_SPECIALS[1], "unk_token": CLIP_SPECIALS[1],
               "pad_token": CLIP_SPECIALS[1]}
    (d / "special_tokens_map.json").write_text(json.dumps(special, indent=2))
    (d / "tokenizer_config.json").write_text(json.dumps(
        {"add_prefix_space": False, "do_lower_case": True, "errors": "replace", "model_max_length": model_max_length,
         "tokenizer_class": "CLIPTokenizer", **special}, indent=2))
    return d


def clip_tokenizer(model_max_length: int = 77):
    """The real CLIP BPE tokenizer as a transformers ``CLIPTokenizer``, built offline.

    :func:`write_clip_tokenizer` writes its files to a temporary folder and ``from_pretrained`` reads them, the
    one constructor that works on transformers 4.x and 5.x alike. The vocabulary size is checked: a tokenizer
    built from a broken vocabulary silently has a handful of tokens.
    """
    import tempfile

    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory(prefix="gifkit-clip-tok-") as d:
        tok = CLIPTokenizer.from_pretrained(str(write_clip_tokenizer(d, model_max_length)))
    if len(tok) != CLIP_VOCAB_SIZE:
        raise RuntimeError(f"CLIP tokenizer built with {len(tok)} tokens, expected {CLIP_VOCAB_SIZE}")
    return tok



def tiny_clip(seed: int = 0, image_size: int = 32, embed_dim: int = 32) -> ClipBundle:
    """A randomly initialised ``open_clip.CLIP`` with the real tokenizer (offline, < 1 s)."""
    import open_clip
    from open_clip.model import CLIPTextCfg, CLIPVisionCfg

    vision = CLIPVisionCfg(layers=2, width=32, head_width=16, patch_size=8, image_size=image_size)
    text = CLIPTextCfg(context_length=77, vocab_size=CLIP_VOCAB_SIZE, width=32, heads=4, layers=2)
    with seeded(seed):
        model = open_clip.model.CLIP(embed_dim=embed_dim, vision_cfg=vision, text_cfg=text, quick_gelu=True)
    mean, std = open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD
    model.visual.preprocess_cfg = {"size": (image_size, image_size), "mode": "RGB", "mean": mean, "std": std,
                                   "interpolation": "bicubic", "resize_mode": "shortest", "fill_color": 0}
    preprocess = open_clip.image_transform(image_size, is_train=False, mean=mean, std=std)
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    model.eval().requires_grad_(False)
    return ClipBundle(model, preprocess, tokenizer)



def tiny_sd(seed: int = 0, image_size: int = 32):
    """A tiny ``StableDiffusionImg2ImgPipeline``: same classes as SD v1, small configs.

    U-Net (32/64 channels, cross-attention 32), VAE with 4 latent channels and a
    downsampling factor of 2 (``image_size`` px -> latent ``image_size/2``), a
    5-layer CLIP text encoder with the real CLIP tokenizer, SD's DDIM schedule.
    """
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionImg2ImgPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    with seeded(seed):
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



def tiny_mae(seed: int = 0, image_size: int = 32, patch_size: int = 8):
    """A tiny ``ViTMAEForPreTraining`` (2 encoder layers, 1 decoder layer), masking ratio 0."""
    from transformers import ViTMAEConfig, ViTMAEForPreTraining

    cfg = ViTMAEConfig(
        image_size=image_size, patch_size=patch_size, num_channels=3, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=37, decoder_hidden_size=32, decoder_num_hidden_layers=1,
        decoder_num_attention_heads=4, decoder_intermediate_size=37, mask_ratio=0.0, norm_pix_loss=False,
    )
    with seeded(seed):
        model = ViTMAEForPreTraining(cfg)
    return model.eval().requires_grad_(False)



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
    with seeded(seed):
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



# continuation pieces, so every lower-case ASCII text tokenises) and common caption words.
_TINY_WORDS = (
    "a an the of in on at with and or to from by for near over under into is are it its this that there "
    "photo picture image close up view background foreground field grass sky water river lake sea beach snow "
    "rain fog night day sunset sunlight indoor outdoor forest tree trees branch road street city building room "
    "table floor wall camera blurry dark bright white black red green blue yellow brown gray small large two "
    "bird dog cat animal person man woman car plane flower shape circle square triangle cross standing sitting "
    "flying walking lying"
).split()


BLIP_TOKENS_BASE = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def blip_vocab() -> list[str]:
    """The tiny BLIP WordPiece vocabulary: BERT's specials, characters, ``##`` pieces, ~150 words, ``[DEC]``."""
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789.,'-!?")
    tokens = BLIP_TOKENS_BASE + chars + ["##" + c for c in chars]
    return tokens + [w for w in _TINY_WORDS if w not in tokens] + ["[DEC]"]


def write_blip_tokenizer(directory, model_max_length: int = 64):
    """Write a BLIP-style BERT WordPiece tokenizer folder (``vocab.txt``, ``tokenizer_config.json``,
    ``special_tokens_map.json``, as in the BLIP repos) with the tiny vocabulary; returns the folder."""
    import json
    from pathlib import Path

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    (d / "vocab.txt").write_text("\n".join(blip_vocab()) + "\n")
    special = {"bos_token": "[DEC]", "cls_token": "[CLS]", "mask_token": "[MASK]", "pad_token": "[PAD]",
               "sep_token": "[SEP]", "unk_token": "[UNK]"}
    (d / "special_tokens_map.json").write_text(json.dumps(special, indent=2))
    (d / "tokenizer_config.json").write_text(json.dumps(
        {"do_lower_case": True, "model_max_length": model_max_length, "tokenizer_class": "BertTokenizer",
         **special}, indent=2))
    return d


def blip_tokenizer():
    """A BERT-style ``BertTokenizer`` (WordPiece) built offline, with BLIP's specials; ``[DEC]`` is the bos token.

    The vocabulary is small and fixed (:func:`blip_vocab`), so the tiny BLIP is reproducible; it is written by
    :func:`write_blip_tokenizer` and read with ``from_pretrained`` (transformers 4.x and 5.x alike); its size is
    checked (a tokenizer built from a broken vocabulary silently has few tokens).
    """
    import tempfile

    from transformers import BertTokenizer

    with tempfile.TemporaryDirectory(prefix="gifkit-blip-tok-") as d:
        tok = BertTokenizer.from_pretrained(str(write_blip_tokenizer(d)))
    if len(tok) != len(blip_vocab()):
        raise RuntimeError(f"BLIP tokenizer built with {len(tok)} tokens, expected {len(blip_vocab())}")
    return tok



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
    with seeded(seed):
        model = BlipForConditionalGeneration(BlipConfig(text_config=text.to_dict(), vision_config=vision.to_dict(),
                                                        projection_dim=32))
    model.text_decoder.generation_config.max_length = 12  # what BlipForConditionalGeneration.generate uses
    import open_clip
    image_processor = BlipImageProcessor(size={"height": image_size, "width": image_size},
                                         image_mean=list(open_clip.OPENAI_DATASET_MEAN),
                                         image_std=list(open_clip.OPENAI_DATASET_STD))
    return CaptionerBundle(model.eval().requires_grad_(False), BlipProcessor(image_processor, tok))



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
    with seeded(seed):
        model = GPT2LMHeadModel(cfg)
    return TextGenBundle(model.eval().requires_grad_(False), tok)



def tiny_instruct_pix2pix(seed: int = 0, image_size: int = 32):
    """A tiny ``StableDiffusionInstructPix2PixPipeline``: :func:`tiny_sd`'s VAE, text encoder and tokenizer, and
    a U-Net of the same config with 8 input channels (noisy latent + image latent), Euler-ancestral sampler."""
    from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionInstructPix2PixPipeline, UNet2DConditionModel

    sd = tiny_sd(seed=seed, image_size=image_size)
    with seeded(seed + 1):
        unet = UNet2DConditionModel(**{**dict(sd.unet.config), "in_channels": 8})
    scheduler = EulerAncestralDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                                steps_offset=1)
    pipe = StableDiffusionInstructPix2PixPipeline(
        vae=sd.vae, text_encoder=sd.text_encoder, tokenizer=sd.tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe



def tiny_taesd(seed: int = 0):
    """A tiny ``AutoencoderTiny`` (TAESD's class) for :func:`tiny_sd`'s latents: 4 latent channels, one
    down/upsampling (its VAE's factor 2), 8 channels wide."""
    from diffusers import AutoencoderTiny

    with seeded(seed):
        vae = AutoencoderTiny(encoder_block_out_channels=(8, 8), decoder_block_out_channels=(8, 8),
                              num_encoder_blocks=(1, 1), num_decoder_blocks=(1, 1), latent_channels=4)
    return vae.eval().requires_grad_(False)
