"""``gifkit train``: a classifier on original (+ expanded) data, one run per seed (the paper's protocol by default)."""
from __future__ import annotations

import argparse

from gifkit.config import ARCHS, PROFILE_NAMES, TRAIN_PRESETS
from gifkit.train.config import make_config, parse_kv

__all__ = ["add_parser", "cmd_train"]


def cmd_train(args) -> int:
    """``gifkit train``: build the config from preset + flags, run every seed, print a summary."""
    loss = args.loss.replace("-", "_") if args.loss else None
    cfg = make_config(args.preset, data=args.data, data_root=args.data_root, train_split=args.split,
                      test_split=args.test_split, data_kwargs=parse_kv(args.data_arg) or None,
                      expanded=args.expanded or None, profile=args.profile, arch=args.arch,
                      pretrained=args.pretrained or None, epochs=args.epochs, steps=args.steps,
                      steps_ratio=args.steps_ratio, batch_size=args.batch_size, lr=args.lr, momentum=args.momentum,
                      weight_decay=args.weight_decay, nesterov=args.nesterov, image_size=args.image_size,
                      rotation=args.rotation, hflip=args.hflip, vflip=args.vflip, loss=loss,
                      soft_labels=False if args.hard_labels else None, kd=args.kd, kd_alpha=args.kd_alpha,
                      kd_temperature=args.kd_temperature, precision=args.precision, long_tail=args.long_tail or None,
                      workers=args.workers, device=args.device, out=args.out, resume=not args.no_resume,
                      progress=not args.no_progress, download=args.download or None)
    from accelerate import PartialState

    from gifkit.train.loop import train_seeds

    objective = None
    if args.amst:  # DreamDA's Asymmetric Multi-head Self-Training on the --expanded images (gifkit.train.amst)
        from gifkit.train.amst import AMST, AMSTConfig

        amst = {"heads": args.amst_heads, "threshold": args.amst_threshold, "warmup_epochs": args.amst_warmup_epochs}
        objective = AMST(AMSTConfig(**{k: v for k, v in amst.items() if v is not None}))
    results, agg = train_seeds(cfg, args.seeds, objective)

    if not PartialState().is_main_process:
        return 0
    for r in results:
        f, b = r["final"], r["best_over_epochs"]
        print(f"seed {r['config']['seed']}: final micro {f['accuracy_micro']:.2f} % / macro "
              f"{f['accuracy_macro']:.2f} %; best over epochs micro {b['accuracy_micro']['value']:.2f} % "
              f"(epoch {b['accuracy_micro']['epoch']}); {r['throughput']['train_images_per_s']:.1f} train img/s")
    if len(results) > 1:
        for name in ("final.accuracy_micro", "final.accuracy_macro"):
            m = agg["metrics"][name]
            print(f"{name}: {m['mean']:.2f} +- {m['std']:.2f} % over seeds {agg['seeds']}")
    if cfg.out:
        print(f"results in {cfg.out} (seed_<n>/result.json, aggregate.json)")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``train`` subcommand to ``gifkit``'s parser."""
    p = sub.add_parser("train", help="train a classifier on original (+ expanded) data (paper protocol by default)")
    p.add_argument("--data", required=True, help="dataset name or image folder")
    p.add_argument("--data-root", default=None)
    p.add_argument("--split", default=None, help="training split (default train)")
    p.add_argument("--test-split", default=None, help="test split (default test)")
    p.add_argument("--data-arg", action="append", default=None, metavar="KEY=VALUE",
                   help="extra dataset argument, e.g. n_per_class=64 (repeatable)")
    p.add_argument("--download", action="store_true", help="allow downloading the dataset")
    p.add_argument("--expanded", nargs="+", default=None, help="expansion folder(s) added to the training data")
    p.add_argument("--out", required=True, help="run folder (seed_<n>/ per seed, aggregate.json); resumes")
    p.add_argument("--preset", default=None, choices=sorted(TRAIN_PRESETS),
                   help="training preset (default: the profile's: paper, smoke or mini)")
    p.add_argument("--profile", default="paper", choices=list(PROFILE_NAMES))
    p.add_argument("--arch", default=None, help=f"{', '.join(ARCHS)} or any timm model name")
    p.add_argument("--pretrained", action="store_true", help="start from timm's pretrained weights")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--steps", type=int, default=None, help="equal-update-steps mode: total optimizer steps")
    p.add_argument("--steps-ratio", type=float, default=None,
                   help="equal-update-steps mode: as many steps as a set (1 + R) times the original takes")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--momentum", type=float, default=None)
    p.add_argument("--weight-decay", type=float, default=None)
    p.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--rotation", type=float, default=None, help="max random rotation in degrees (0: none)")
    p.add_argument("--hflip", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--vflip", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--loss", default=None, choices=["ce", "balanced-softmax"])
    p.add_argument("--hard-labels", action="store_true", help="ignore the soft labels of mixup/cutmix expansions")
    p.add_argument("--kd", default=None, choices=["clip"], help="distil CLIP zero-shot probabilities (baseline)")
    p.add_argument("--kd-alpha", type=float, default=None)
    p.add_argument("--kd-temperature", type=float, default=None)
    p.add_argument("--precision", default=None, choices=["auto", "no", "fp16", "bf16"])
    p.add_argument("--long-tail", action="store_true", help="report many/medium/few-shot accuracy")
    p.add_argument("--workers", type=int, default=None, help="data loader processes")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per seed, then mean and std")
    p.add_argument("--device", default=None, help="cpu to force the CPU")
    p.add_argument("--no-resume", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--amst", action="store_true", help="DreamDA's Asymmetric Multi-head Self-Training: the --expanded "
                   "images get pseudo-labels from auxiliary heads (gifkit.train.amst)")
    p.add_argument("--amst-heads", type=int, default=None, help="AMST auxiliary heads (default 4)")
    p.add_argument("--amst-threshold", type=float, default=None, help="AMST pseudo-label confidence (default 0.8)")
    p.add_argument("--amst-warmup-epochs", type=int, default=None, help="AMST real-only epochs (default 10%%)")
    p.set_defaults(func=cmd_train)
    return p
