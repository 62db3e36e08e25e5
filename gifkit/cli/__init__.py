"""Command line: ``gifkit doctor | expand | demo | train | evaluate | mini | mini-prior | finetune``
(also ``python -m gifkit``). One module per command; this one assembles the parser and is the one error path.
"""
from __future__ import annotations

import argparse
import sys

from gifkit.cli import doctor, evaluate, expand, finetune, mini, train
from gifkit.errors import UserError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gifkit", description="Dataset expansion with guided imagination (GIF).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    d = sub.add_parser("doctor", help="versions, device, offline mode, cached checkpoints")
    doctor.add_doctor_args(d)
    d.set_defaults(func=doctor.cmd_doctor)
    e = sub.add_parser("expand", help="expand a dataset with a generative prior (resumable; accelerate launch to shard)")
    expand.add_expand_args(e)
    e.set_defaults(func=expand.cmd_expand)
    m = sub.add_parser("demo", help="the main job: the quick mini experiment (offline, CPU, < 10 min); "
                                    "--smoke: GIF-SD on tiny models")
    m.add_argument("--out", default=None, help="default results/mini/quick (--smoke: results/demo)")
    m.add_argument("--smoke", action="store_true", help="the smoke demo: GIF-SD on tiny random models, seconds")
    m.set_defaults(func=expand.cmd_demo)
    train.add_parser(sub)
    evaluate.add_parser(sub)
    mini.add_parser(sub)
    finetune.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns its exit status (2 for a usage error or an error the user can fix)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse has printed the usage error (or --help)
        return int(e.code or 0)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except (UserError, ValueError, OSError) as e:
        print(f"gifkit {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
