"""FLOPs per generated image of the paper path, counted rather than typed in.

Every model is built from the configs gifkit.testing writes for its random-weight checkpoints (SD v1-4's U-Net, VAE
and text encoder, CLIP ViT-B/32, MAE ViT-L/16, Karlo's decoder, text and image encoders) on the meta device (no
weights, no memory, seconds), and run once at the shapes one image meets, batch 1, under
``torch.utils.flop_counter.FlopCounterMode`` (matmuls, convolutions and attention, forward and backward; element-wise
work is not counted). On the meta device attention runs as plain matrix products, which the counter sees; a CPU
run would hide fused attention kernels from it.

``components`` holds one model call each (in FLOP, i.e. 2 per multiply-add); :func:`per_image` composes them into one
image of a method at a number of sampler steps (classifier-free guidance doubles every denoiser pass; GIF's guidance
pass decodes with gradients and back-propagates to the latent, weights frozen), which is what
``benchmarks/gpu_check.py`` divides by the measured seconds per image to give the achieved TFLOP/s.

    python benchmarks/flops.py                   # writes benchmarks/flops.json (the full-size counts)
    python benchmarks/flops.py --size tiny --out -    # the tiny configs, printed
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: the repository's gifkit
    sys.path.insert(0, str(ROOT))

K = 5  # variants per seed (the paper's CIFAR100-S ratio)
SD_STEPS, SD_STRENGTH = 50, 0.9  # the cifar100s preset: strength 0.9 of 50 DDIM steps
DALLE_STEPS = 100  # the unCLIP decoder's steps on the paper profile


def count(fn) -> int:
    """FLOPs of ``fn()`` (forward and whatever backward it runs) as FlopCounterMode counts them."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        fn()
    return int(fc.get_total_flops())


def _on_meta(build):
    import torch

    with torch.device("meta"):
        return build().eval().requires_grad_(False)


def _forward_backward(module, x, **kwargs):
    """``module(x)`` then the backward pass to ``x`` (weights frozen: input gradients only), as GIF's guidance."""
    x = x.detach().requires_grad_(True)
    out = module(x, **kwargs)
    out = out.sample if hasattr(out, "sample") else out
    out.float().sum().backward()


def sd_counts(size: str) -> dict[str, int]:
    """SD v1-4 at 512 px (its configs from gifkit.testing): one U-Net pass, text encoder, VAE encode / decode, and
    the guidance decode with gradients (with and without the decoder's gradient checkpointing)."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from gifkit import testing

    cfg = testing.sd_configs(size)
    unet = _on_meta(lambda: UNet2DConditionModel.from_config(cfg["unet"]))
    vae = _on_meta(lambda: AutoencoderKL.from_config(cfg["vae"]))
    text_cfg = {k: v for k, v in cfg["text_encoder"].items() if not k.startswith("_") and k != "architectures"}
    text = _on_meta(lambda: CLIPTextModel(CLIPTextConfig(**text_cfg)))
    res = cfg["vae"]["sample_size"]
    lat = unet.config.sample_size
    meta = dict(device="meta")
    latent = torch.randn(1, 4, lat, lat, **meta)
    hidden = torch.randn(1, 77, unet.config.cross_attention_dim, **meta)
    out = {"sd_unet_pass": count(lambda: unet(latent, torch.tensor([500], **meta), encoder_hidden_states=hidden)),
           "sd_text_encoder": count(lambda: text(torch.zeros(1, 77, dtype=torch.long, **meta))),
           "sd_vae_encode": count(lambda: vae.encode(torch.randn(1, 3, res, res, **meta))),
           "sd_vae_decode": count(lambda: vae.decode(latent)),
           "sd_vae_decode_grad": count(lambda: _forward_backward(vae.decode, latent))}
    vae.enable_gradient_checkpointing()
    out["sd_vae_decode_grad_checkpointing"] = count(lambda: _forward_backward(vae.decode, latent))
    return out


def clip_counts(size: str) -> dict[str, int]:
    """CLIP ViT-B/32 (open_clip, the guiding classifier): the image tower at its resolution, with and without the
    backward pass to the image."""
    import open_clip
    import torch

    from gifkit import testing

    cfg = testing.clip_config(size)["model_cfg"]
    clip = _on_meta(lambda: open_clip.model.CLIP(**cfg, quick_gelu=True))
    s = cfg["vision_cfg"]["image_size"]
    x = torch.randn(1, 3, s, s, device="meta")
    return {"clip_image": count(lambda: clip.encode_image(x)),
            "clip_image_grad": count(lambda: _forward_backward(clip.encode_image, x))}


def mae_counts(size: str) -> dict[str, int]:
    """MAE ViT-L/16 with mask ratio 0: the encoder on one image, the decoder on its 1 + L tokens (and with the
    backward pass to the tokens)."""
    import torch
    from transformers import ViTMAEConfig, ViTMAEForPreTraining

    from gifkit import testing

    cfg = testing.mae_config(size)
    keys = {k: v for k, v in cfg.items() if k not in ("architectures", "model_type", "transformers_version")}
    model = _on_meta(lambda: ViTMAEForPreTraining(ViTMAEConfig(**{**keys, "mask_ratio": 0.0})))
    s, p = cfg["image_size"], cfg["patch_size"]
    n = (s // p) ** 2
    noise = torch.arange(n, dtype=torch.float32, device="meta")[None]
    restore = torch.arange(n, device="meta")[None]
    tokens = torch.randn(1, 1 + n, cfg["hidden_size"], device="meta")
    decode = lambda f: model.decoder(f, restore).logits  # noqa: E731
    return {"mae_encoder": count(lambda: model.vit(pixel_values=torch.randn(1, 3, s, s, device="meta"), noise=noise)),
            "mae_decoder": count(lambda: decode(tokens)),
            "mae_decoder_grad": count(lambda: _forward_backward(decode, tokens))}


def unclip_counts(size: str) -> dict[str, int]:
    """Karlo's image variation: one decoder pass (64 px, conditioned as the pipeline conditions it), the text
    encoder and the CLIP ViT-L/14 image encoder."""
    import torch
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, CLIPVisionConfig, \
        CLIPVisionModelWithProjection

    from gifkit import testing

    cfg = testing.unclip_configs(size)
    decoder = _on_meta(lambda: UNet2DConditionModel(**cfg["decoder"]))
    proj = _on_meta(lambda: testing.unclip_text_proj_class()(**cfg["text_proj"]))
    text = _on_meta(lambda: CLIPTextModelWithProjection(CLIPTextConfig(**cfg["text_encoder"])))
    image = _on_meta(lambda: CLIPVisionModelWithProjection(CLIPVisionConfig(**cfg["image_encoder"])))
    meta = dict(device="meta")
    emb = torch.randn(1, cfg["text_proj"]["clip_embeddings_dim"], **meta)
    hidden, time_emb = proj(image_embeddings=emb, prompt_embeds=emb, do_classifier_free_guidance=False,
                            text_encoder_hidden_states=torch.randn(1, 77, cfg["text_encoder"]["hidden_size"], **meta))
    px = cfg["decoder"]["sample_size"]
    crop = cfg["crop"]
    return {"unclip_decoder_pass": count(lambda: decoder(torch.randn(1, 3, px, px, **meta), torch.tensor([500], **meta),
                                                         encoder_hidden_states=hidden, class_labels=time_emb)),
            "unclip_text_encoder": count(lambda: text(torch.zeros(1, 77, dtype=torch.long, **meta))),
            "unclip_image_encoder": count(lambda: image(torch.randn(1, 3, crop, crop, **meta)))}


def all_counts(size: str = "full") -> dict[str, int]:
    """Every component's FLOPs at ``size`` (gifkit.testing's ``"full"`` or ``"tiny"`` configs)."""
    return {**sd_counts(size), **clip_counts(size), **mae_counts(size), **unclip_counts(size)}


def steps_run(steps: int, strength: float = 1.0) -> int:
    """The denoising steps img2img runs: ``min(int(steps * strength), steps)`` (diffusers' ``get_timesteps``)."""
    return min(int(steps * strength), steps)


def per_image(c: dict, method: str, steps: int, *, k: int = K, checkpointing: bool = False) -> dict[str, float]:
    """FLOPs of one image of ``method`` at ``steps`` denoiser steps actually run, part by part and ``total``.

    Per image (a seed's K variants each make one): the sampler (``2 * steps`` denoiser passes: classifier-free
    guidance), the prompts (conditional and empty), the prior's encoder, the guidance pass of a guided method
    (decode with gradients and CLIP with gradients; ``checkpointing`` recomputes the decoder's forward in the
    backward pass), the final decode, and CLIP's zero-shot figures (the created image, and the seed once per K).
    ``method``: gif-sd, sd, gif-mae, mae, gif-dalle, dalle."""
    guided = method.startswith("gif-")
    prior = method.removeprefix("gif-")
    clip_figures = c["clip_image"] * (1 + 1 / k)
    if prior == "sd":
        decode_grad = c["sd_vae_decode_grad_checkpointing" if checkpointing else "sd_vae_decode_grad"]
        parts = {"sampler": 2 * steps * c["sd_unet_pass"], "prompts": 2 * c["sd_text_encoder"],
                 "encode": c["sd_vae_encode"], "guidance": (decode_grad + c["clip_image_grad"]) if guided else 0,
                 "decode": c["sd_vae_decode"], "figures": clip_figures}
    elif prior == "mae":
        parts = {"sampler": 0, "prompts": 0, "encode": c["mae_encoder"],
                 "guidance": (c["mae_decoder_grad"] + c["clip_image_grad"]) if guided else 0,
                 "decode": c["mae_decoder"], "figures": clip_figures}
    elif prior == "dalle":  # guidance scores the embedding itself: no image is decoded for it
        parts = {"sampler": 2 * steps * c["unclip_decoder_pass"], "prompts": 2 * c["unclip_text_encoder"],
                 "encode": c["unclip_image_encoder"], "guidance": 0, "decode": 0,
                 "figures": c["unclip_image_encoder"] * (1 + 1 / k)}
    else:
        raise ValueError(f"no FLOP model for method {method!r}")
    return {**parts, "total": sum(parts.values())}


def summary(c: dict) -> dict[str, dict]:
    """The per-image totals of the paper's settings (TFLOP), what gpu_check compares against."""
    sd_steps = steps_run(SD_STEPS, SD_STRENGTH)
    rows = {m: per_image(c, m, sd_steps) for m in ("gif-sd", "sd")}
    rows["gif-sd checkpointing"] = per_image(c, "gif-sd", sd_steps, checkpointing=True)
    rows.update({m: per_image(c, m, 0) for m in ("gif-mae", "mae")})
    rows.update({m: per_image(c, m, DALLE_STEPS) for m in ("gif-dalle", "dalle")})
    return {m: {k: round(v / 1e12, 4) for k, v in r.items()} for m, r in rows.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", choices=("full", "tiny"), default="full")
    p.add_argument("--out", default=None, help="JSON file (default benchmarks/flops.json for full, '-': stdout)")
    a = p.parse_args(argv)
    import torch

    c = all_counts(a.size)
    report = {"what": "FLOP per model call at batch 1 (FlopCounterMode on the meta device, gifkit.testing's "
                      f"{a.size} configs) and per generated image (TFLOP, K = {K}, SD: strength {SD_STRENGTH} of "
                      f"{SD_STEPS} DDIM steps with CFG; unCLIP: {DALLE_STEPS} decoder steps with CFG)",
              "size": a.size, "torch": torch.__version__.split("+")[0], "components": c, "per_image_tflop": summary(c)}
    text = json.dumps(report, indent=1) + "\n"
    out = a.out or (str(Path(__file__).with_name("flops.json")) if a.size == "full" else "-")
    if out == "-":
        print(text, end="")
    else:
        Path(out).write_text(text)
        print(f"written {out}")
        for m, r in report["per_image_tflop"].items():
            print(f"  {m:22s} {r['total']:8.2f} TFLOP per image")
    return 0


if __name__ == "__main__":
    sys.exit(main())
