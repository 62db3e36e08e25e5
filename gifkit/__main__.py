"""``gifkit`` and ``python -m gifkit``: the library's commands (:mod:`gifkit.cli`: doctor, expand, train, evaluate,
finetune) and the experiments' (:mod:`gifkit.experiments.commands`: mini, mini-prior, demo) in one program."""
from __future__ import annotations

import argparse

from gifkit import cli
from gifkit.experiments import commands

__all__ = ["COMMANDS", "build_parser", "main"]

COMMANDS = (commands.add_parsers,)  # what gifkit adds to the library's commands


def build_parser() -> argparse.ArgumentParser:
    """The parser of the whole ``gifkit`` program."""
    return cli.build_parser(extra=COMMANDS)


def main(argv: list[str] | None = None) -> int:
    """Run one ``gifkit`` command (:func:`gifkit.cli.main`, with the experiments' commands)."""
    return cli.main(argv, extra=COMMANDS)


if __name__ == "__main__":
    raise SystemExit(main())
