"""``gifkit finetune``: prior tuning, DreamBooth-style fine-tuning of SD on a dataset (Table 9)."""
from __future__ import annotations

import argparse

from gifkit.config import MODEL_IDS, PROFILES, get_profile

__all__ = ["add_parser", "cmd_finetune"]


def cmd_finetune(args) -> int:
    """``gifkit finetune``: DreamBooth-style SD fine-tuning, then the command that expands with it."""
    from gifkit.data import load_dataset
    from gifkit.train.finetune import finetune_sd, make_finetune_config

    dataset, class_names = load_dataset(args.data, args.split, root=args.data_root, profile=args.profile)
    cfg = make_finetune_config(
        get_profile(args.profile).finetune_preset, dataset=args.preset or args.data, model_id=args.model_id, vae_id=args.vae_id, prompt=args.prompt,
        domain=args.domain, steps=args.steps, lr=args.lr, batch_size=args.batch_size,
        train_text_encoder=args.train_text_encoder, prior_preservation=args.prior_preservation or None,
        class_prompt=args.class_prompt, num_class_images=args.num_class_images,
        prior_loss_weight=args.prior_loss_weight, snr_gamma=args.snr_gamma, mixed_precision=args.mixed_precision,
        gradient_checkpointing=args.gradient_checkpointing or None, seed=args.seed, limit=args.limit,
        device=args.device, progress=not args.no_progress)
    result = finetune_sd(dataset, class_names, args.out, cfg, overwrite=args.overwrite)
    print(result.summary())
    print(f"expand with it: gifkit expand --data {args.data} --profile {args.profile} --model-id {result.out} ...")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``gifkit finetune`` on the ``gifkit`` subcommand parser."""
    p = sub.add_parser("finetune", help="DreamBooth-style fine-tuning of SD on a dataset (prior tuning, Table 9)")
    p.add_argument("--data", required=True, help="dataset name (e.g. pathmnist, smoke) or an image folder")
    p.add_argument("--split", default="train")
    p.add_argument("--data-root", default=None)
    p.add_argument("--out", required=True, help="folder of the tuned diffusers pipeline (use as --model-id)")
    p.add_argument("--profile", default="paper", choices=[n for n, p in PROFILES.items() if p.finetune_preset],
                   help="smoke: tiny random SD, 20 steps; paper: SD v1-4 + sd-vae-ft-mse, 400 steps, lr 2e-6")
    p.add_argument("--preset", default=None, help="a GIF-SD dataset preset whose modality sets the prompt "
                                                  "(default: --data when it names one, e.g. pathmnist)")
    p.add_argument("--model-id", default=None, help=f"SD hub id or folder (default {MODEL_IDS['sd']})")
    p.add_argument("--vae-id", default=None, help=f"replace the VAE (paper profile default {MODEL_IDS['sd_vae']})")
    p.add_argument("--prompt", default=None, help='instance prompt template (default "{domain} {class_name}")')
    p.add_argument("--domain", default=None, help="the modality in the prompt, e.g. 'Ultrasound image of'")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--train-text-encoder", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--prior-preservation", action="store_true", help="DreamBooth's class-image prior loss")
    p.add_argument("--class-prompt", default=None, help='class prompt template (default "{domain}")')
    p.add_argument("--num-class-images", type=int, default=None)
    p.add_argument("--prior-loss-weight", type=float, default=None)
    p.add_argument("--snr-gamma", type=float, default=None, help="min-SNR loss weighting (e.g. 5)")
    p.add_argument("--mixed-precision", default=None, choices=["no", "fp16", "bf16"])
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None, help="only the first N images")
    p.add_argument("--overwrite", action="store_true", help="replace a folder holding other settings")
    p.add_argument("--device", default=None)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_finetune)
    return p
