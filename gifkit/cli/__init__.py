"""The library's commands: ``gifkit doctor | expand | train | evaluate | finetune``. One module per command; this one
assembles the parser and is the one error path. The ``gifkit`` program adds the experiments' commands (``mini``,
``mini-prior``, ``demo``: :mod:`gifkit.experiments.commands`) through ``extra`` (:mod:`gifkit.__main__`).
"""
from __future__ import annotations

import argparse
import os
import sys

from collections.abc import Callable, Iterable

from gifkit.cli import doctor, evaluate, expand, finetune, train
from gifkit.errors import UserError

__all__ = ["build_parser", "main"]


def build_parser(extra: Iterable[Callable] = ()) -> argparse.ArgumentParser:
    """The ``gifkit`` parser with the library's commands and those ``extra`` functions add to its subparsers."""
    parser = argparse.ArgumentParser(prog="gifkit", description="Dataset expansion with guided imagination (GIF).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    d = sub.add_parser("doctor", help="versions, device, offline mode, cached checkpoints")
    doctor.add_doctor_args(d)
    d.set_defaults(func=doctor.cmd_doctor)
    e = sub.add_parser("expand", help="expand a dataset with a generative prior (resumable; accelerate launch to shard)")
    expand.add_expand_args(e)
    e.set_defaults(func=expand.cmd_expand)
    train.add_parser(sub)
    evaluate.add_parser(sub)
    finetune.add_parser(sub)
    for add in extra:
        add(sub)
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    for p in sub.choices.values():
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show the traceback of an error (default: one line)")
    return parser


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text or type(err).__name__


def main(argv: list[str] | None = None, extra: Iterable[Callable] = ()) -> int:
    """Run one command; returns its exit status.

    The one error path of the command line: an error the user can cause or fix (:class:`UserError`, any
    ``ValueError`` or ``OSError``: bad input, a damaged file, a full disk, a refused folder) ends as one line
    ``gifkit <command>: error: ...`` and exit status 2, without a traceback (``--debug``, or
    ``GIFKIT_DEBUG=1``, shows it); Ctrl-C ends with ``gifkit <command>: interrupted; re-run the same command
    to resume`` and status 130. Anything else is a bug and keeps its traceback.
    """
    parser = build_parser(extra)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse has printed the usage error (or --help)
        return int(e.code or 0)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    debug = bool(getattr(args, "debug", False)) or os.environ.get("GIFKIT_DEBUG", "") not in ("", "0")
    try:
        return args.func(args)
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"gifkit {args.command}: interrupted; re-run the same command to resume", file=sys.stderr)
        return 130
    except (UserError, ValueError, OSError) as e:
        if debug:
            raise
        print(f"gifkit {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except Exception as e:
        if debug or type(e).__name__ != "OutOfMemoryError":
            raise
        print(f"gifkit {args.command}: error: out of memory ({_one_line(e)}); lower --batch-size (or the "
              f"images per pass) and re-run: finished work is kept", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
