"""Seconds per generated image, split into prior / guidance / decode / I/O.

Smoke profile (tiny SD + tiny CLIP, CPU) at batch sizes 1, 4 and 16 seeds per
batch, so gifkit's own per-image overhead is visible next to the model time.
With ``--full-size`` on a CUDA machine, also times GIF-SD against unguided SD
with the real SD v1 architecture (random weights, 512 px, fp16) -- the paper
reports 6.6 s per image for GIF-SD (on V100s).

    python benchmarks/bench_expand.py [--ratio 5] [--seeds 16] [--full-size]
"""
from __future__ import annotations

import argparse
import tempfile
import time

import torch

from gifkit.models import tiny
from gifkit.data import load_dataset
from gifkit.models.guides import ZeroShotClassifier
from gifkit.methods import expand
from gifkit.methods.gif_sd import GifSD
from gifkit.methods.sd import SD
from gifkit.priors.sd import SDPrior


def row(name, r):
    n = max(r.written, 1)
    t = r.timings
    return (f"{name:28s} {r.written:5d} img  {r.seconds / n:8.4f} s/img  prior {t['prior'] / n:.4f}  "
            f"guidance {t['guidance'] / n:.4f}  decode {t['decode'] / n:.4f}  io {t['io'] / n:.4f}")


def smoke(args):
    ds, names = load_dataset("smoke", n_per_class=max(1, args.seeds // 4))
    clip = tiny.tiny_clip()
    clf = ZeroShotClassifier(clip.model, clip.tokenizer, names)
    prior = SDPrior(tiny.tiny_sd(), steps=args.steps, strength=0.9, guidance_scale=5.0)
    print(f"smoke profile, CPU threads {torch.get_num_threads()}, {len(ds)} seeds x {args.ratio}, {args.steps} DDIM steps")
    for guided in (False, True):
        for bs in (1, 4, 16):
            with tempfile.TemporaryDirectory() as out:
                method = (GifSD if guided else SD).from_models(prior, clf, names)
                r = expand(method, ds, out, ratio=args.ratio, batch_size=bs, progress=False)
            print(row(f"{'gif-sd' if guided else 'sd'} batch {bs} seeds", r))


def full_size(args):
    """Real SD v1 U-Net/VAE/text-encoder configs with random weights, fp16 on CUDA."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionImg2ImgPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel
    import open_clip

    dev = torch.device("cuda")
    unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8)
    vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), latent_channels=4, sample_size=512,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        layers_per_block=2)
    text = CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_attention_heads=12,
                                        num_hidden_layers=12, vocab_size=tiny.CLIP_VOCAB_SIZE, projection_dim=768))
    sched = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                          set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionImg2ImgPipeline(vae=vae, text_encoder=text, tokenizer=tiny.clip_tokenizer(), unet=unet,
                                          scheduler=sched, safety_checker=None, feature_extractor=None,
                                          requires_safety_checker=False).to(dev, torch.float16)
    pipe.set_progress_bar_config(disable=True)
    model = open_clip.create_model("ViT-B-32", pretrained=None).to(dev)
    ds, names = load_dataset("smoke", n_per_class=2)
    clf = ZeroShotClassifier(model, open_clip.get_tokenizer("ViT-B-32"), names).to(dev)
    prior = SDPrior(pipe, steps=50, strength=0.9, guidance_scale=50.0)
    print(f"full-size SD v1 architecture (random weights), 512 px, fp16, {torch.cuda.get_device_name(0)}")
    for guided in (False, True):
        with tempfile.TemporaryDirectory() as out:
            method = (GifSD if guided else SD).from_models(prior, clf, names)
            r = expand(method, ds, out, ratio=5, batch_size=1, progress=False)
        print(row(f"{'gif-sd' if guided else 'sd'} 512px K=5", r))


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ratio", type=int, default=5)
    p.add_argument("--seeds", type=int, default=16)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--full-size", action="store_true")
    a = p.parse_args()
    t = time.perf_counter()
    smoke(a)
    if a.full_size:
        if not torch.cuda.is_available():
            raise SystemExit("--full-size needs a CUDA GPU")
        full_size(a)
    print(f"total {time.perf_counter() - t:.1f} s")
