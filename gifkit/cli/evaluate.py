"""``gifkit evaluate``: a trained run, the CIFAR100-C table, long-tail groups, CLIP zero-shot, FID.

    gifkit evaluate --run runs/r50 --data cifar100s               # micro/macro/per class
    gifkit evaluate --run runs/r50 --cifar100c                    # 15 corruptions x 5 severities
    gifkit evaluate --run runs/lt --data cifar100lt --long-tail   # many/medium/few
    gifkit evaluate --clip-zero-shot --data pets
    gifkit evaluate --fid runs/expanded --data cifar100s          # FID(expanded, original)

The CLIP knowledge-distillation baseline is a training run: ``gifkit train --kd clip``.
"""
from __future__ import annotations

import argparse
import json

from gifkit.config import PROFILE_NAMES
from gifkit.io.files import write_text
from gifkit.train.config import parse_kv

__all__ = ["add_parser", "cmd_evaluate"]


def cmd_evaluate(args) -> int:
    """``gifkit evaluate``: one of --run (+ --cifar100c / --long-tail), --clip-zero-shot, --fid."""
    from gifkit.train.evaluate import cifar100c_table, clip_zero_shot, evaluate_run, fid_expanded

    kw = dict(device=args.device, batch_size=args.batch_size, workers=args.workers, progress=not args.no_progress)
    data_kwargs = parse_kv(args.data_arg)
    if args.fid:
        from gifkit.data import load_dataset
        if not args.data:
            raise ValueError("--fid needs --data (the original dataset) and its --split (default train)")
        split = args.split or "train"
        original, _ = load_dataset(args.data, split, root=args.data_root, profile=args.profile,
                                   **({'download': True} if args.download else {}), **data_kwargs)
        value = fid_expanded(args.fid, original, weights=args.fid_weights, device=args.device,
                             batch_size=min(args.batch_size, 100), progress=not args.no_progress)
        out = {"metric": "fid", "expanded": args.fid, "original": args.data, "split": split, "fid": value}
    elif args.clip_zero_shot:
        if not args.data:
            raise ValueError("--clip-zero-shot needs --data")
        out = clip_zero_shot(args.data, args.split or "test", args.data_root, args.profile, args.download,
                             data_kwargs=data_kwargs, **kw)
    elif args.run:
        if args.cifar100c:
            out = cifar100c_table(args.run, args.data_root, args.corruptions, args.severities, args.download, **kw)
        else:
            out = evaluate_run(args.run, args.data, args.split or "test", args.data_root, args.profile, args.download,
                               args.long_tail, data_kwargs=data_kwargs or None, **kw)
    else:
        raise ValueError("gifkit evaluate needs --run RUN_DIR, --clip-zero-shot or --fid EXPANDED_DIR")
    if args.out:
        write_text(args.out, json.dumps(out, indent=1, allow_nan=True) + "\n")
    _print_summary(out)
    if args.out:
        print(f"written to {args.out}")
    return 0


def _print_summary(out: dict) -> None:
    if "fid" in out:
        print(f"FID({out['expanded']}, {out['original']}/{out['split']}) = {out['fid']:.3f}")
    elif "average_per_severity" in out:
        sev = "  ".join(f"s{k} {v:.1f}" for k, v in out["average_per_severity"].items())
        print(f"CIFAR-100-C micro accuracy (%): average {out['average']:.2f}; by severity {sev}")
        for c, row in out["accuracy"].items():
            print(f"  {c:18s} " + "  ".join(f"{v:5.1f}" for v in row.values()))
    else:
        print(f"{out.get('baseline', out.get('run'))} on {out['data']}/{out['split']}: micro accuracy "
              f"{out['accuracy_micro']:.2f} %, macro accuracy {out['accuracy_macro']:.2f} % ({out['n_test']} images)")
        if "shot_accuracy" in out:
            s = out["shot_accuracy"]
            print("  many/medium/few-shot: " + " / ".join("n/a" if s[k] is None else f"{s[k]:.2f}"
                                                         for k in ("many", "medium", "few")))


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``evaluate`` subcommand to ``gifkit``'s parser."""
    p = sub.add_parser("evaluate", help="accuracy of a trained run, CIFAR100-C table, long-tail groups, "
                                        "CLIP zero-shot, FID")
    p.add_argument("--run", default=None, help="a `gifkit train` output folder (result.json + model.safetensors)")
    p.add_argument("--data", default=None, help="dataset (default: the run's)")
    p.add_argument("--split", default=None, help="split (default test; train for --fid)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--data-arg", action="append", default=None, metavar="KEY=VALUE",
                   help="extra dataset argument, e.g. n_per_class=8 (repeatable)")
    p.add_argument("--download", action="store_true", help="allow downloading the dataset")
    p.add_argument("--profile", default="paper", choices=list(PROFILE_NAMES),
                   help="smoke: tiny random CLIP for --clip-zero-shot")
    p.add_argument("--cifar100c", action="store_true", help="the CIFAR100-C table (15 corruptions x severities)")
    p.add_argument("--corruptions", nargs="+", default=None)
    p.add_argument("--severities", nargs="+", type=int, default=[1, 2, 3, 4, 5])
    p.add_argument("--long-tail", action="store_true", help="many/medium/few-shot accuracy")
    p.add_argument("--clip-zero-shot", action="store_true", help="the CLIP zero-shot baseline on --data")
    p.add_argument("--fid", default=None, metavar="EXPANDED_DIR", help="FID between this expansion and --data")
    p.add_argument("--fid-weights", default=None, help="local InceptionV3 weights for FID (offline use)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--out", default=None, help="write the JSON result here")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_evaluate)
    return p
