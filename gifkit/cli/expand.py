"""``gifkit expand``: any registered method into an expansion folder; resumable; ``accelerate launch`` to shard.

``gifkit expand`` = look the method up, build it from the profile and the flags, run the driver
(:func:`gifkit.methods.expand`). The flags of the methods' options are generated from their configs; a flag the
chosen method does not take is refused.
"""
from __future__ import annotations

import argparse
import dataclasses
import warnings
from pathlib import Path

from gifkit.config.flags import add_union_args, checked, values
from gifkit.config import EXPAND_CHECKS, MAX_RATIO, PROFILE_NAMES
from gifkit.errors import UserError
from gifkit.methods import METHODS, get_method

__all__ = ["add_expand_args", "run_expand", "cmd_expand"]

# the options a method may take from the command's data flags (ALIA trains its filter's classifier on the data)
DATA_OPTIONS = {"data": "data", "split": "split", "data_root": "data_root"}


def add_expand_args(p: argparse.ArgumentParser) -> None:
    """The options of ``gifkit expand`` (also what ``gifkit demo --smoke`` runs with)."""
    p.add_argument("--data", required=True, help="dataset name (e.g. smoke) or an image folder <root>/<class>/<img>")
    p.add_argument("--split", default="train")
    p.add_argument("--data-root", default=None, help="where a named dataset's files are")
    p.add_argument("--out", required=True, help="output folder (ImageFolder + metadata.csv); re-running resumes; "
                                                 "never the --data folder, inside it or above it")
    p.add_argument("--force-new", action="store_true",
                   help="delete the expansion --out holds (its images and records, nothing else) and start a new one "
                        "(default: resume it, or refuse when it was made from other data, settings or condition)")
    p.add_argument("--method", default="gif-sd", choices=list(METHODS), metavar="METHOD",
                   help="expansion method: " + "; ".join(f"{n} ({m.summary})" for n, m in METHODS.items()))
    p.add_argument("--ratio", type=checked(int, EXPAND_CHECKS["ratio"], "ratio"), default=None,
                   help=f"K, variants per seed, 1 to {MAX_RATIO} (default: the method's preset's, else 5)")
    p.add_argument("--profile", default="smoke", choices=list(PROFILE_NAMES))
    p.add_argument("--batch-size", type=_batch_size, default=None,
                   help="seeds per batch (default: the method's, 4 for the generative ones; batch_size * K images "
                        "through the sampler at once, the guidance pass one seed's K variants at a time), or 'auto': "
                        "as many as fit in the free GPU memory")
    p.add_argument("--seed", type=checked(int, EXPAND_CHECKS["seed"], "seed"), default=0)
    p.add_argument("--limit", type=checked(int, EXPAND_CHECKS["limit"], "limit"), default=None,
                   help="only the first N seed images")
    p.add_argument("--output-size", type=checked(int, EXPAND_CHECKS["output_size"], "output_size"), default=None,
                   help="save at N px (default: the method's resolution)")
    p.add_argument("--device", default=None)
    p.add_argument("--deterministic", action="store_true",
                   help="deterministic CUDA kernels (torch's deterministic algorithms, cuDNN without autotuning, "
                        "CUBLAS_WORKSPACE_CONFIG), recorded in run.json; a CPU run is deterministic without it")
    p.add_argument("--overlap-io", action="store_true",
                   help="write the images on a thread of their own while the method makes the next batch (the same "
                        "bytes; a speed lever, docs/gpu.md)")
    p.add_argument("--no-progress", action="store_true")
    add_union_args(p.add_argument_group("the methods' options (the methods that take each are in brackets; "
                                        "docs/design.md explains them)"),
                   {name: cls.Config for name, cls in METHODS.items()})


def _inputs(args) -> list[Path]:
    """The folders ``--data`` / ``--data-root`` name (a manifest's folder for a CSV), which --out must avoid."""
    from gifkit.data import registered

    found = []
    for value in (None if registered(args.data) else args.data, args.data_root):
        p = Path(value).expanduser() if value else None
        if p is not None and p.exists():
            found.append(p if p.is_dir() else p.parent)
    return found


def _batch_size(text: str) -> int | str:
    """--batch-size: a number of seeds (checked as the API checks it) or 'auto'."""
    if text == "auto":
        return text
    try:
        return checked(int, EXPAND_CHECKS["batch_size"], "batch_size")(text)
    except argparse.ArgumentTypeError as e:
        raise argparse.ArgumentTypeError(f"{e} (or 'auto')") from None


def method_options(args) -> dict:
    """The chosen method's options from the flags given; a flag it does not take raises ``UserError``."""
    cls = get_method(args.method)
    own = set(cls.Config.field_names())
    given = {k: v for name, c in METHODS.items() for k, v in values(args, c.Config).items()}
    foreign = sorted(k for k in given if k not in own)
    if foreign:
        flags = ", ".join("--" + k.replace("_", "-") for k in foreign)
        raise UserError(f"{flags} do(es) not apply to method {args.method!r}; its options: "
                        f"{', '.join(_flags(cls))}")
    options = {k: v for k, v in given.items() if k in own}
    options.update({k: getattr(args, a) for k, a in DATA_OPTIONS.items() if k in own})
    return options


def _flags(cls) -> list[str]:
    return sorted("--" + f.name.replace("_", "-") for f in dataclasses.fields(cls.Config) if f.metadata.get("cli"))


def run_expand(args):
    """Run ``gifkit expand`` for ``args``; returns the driver's result.

    Before anything is loaded: --out may not be, lie in or contain the data (:func:`check_output_folder`);
    ``--force-new`` clears the expansion --out holds (the main process, then every process waits)."""
    from accelerate import PartialState

    from gifkit.data import load_dataset
    from gifkit.io.runs import check_output_folder
    from gifkit.io.store import clear_store
    from gifkit.methods import expand

    check_output_folder(args.out, _inputs(args))
    cls = get_method(args.method)
    options = method_options(args)
    state = PartialState(cpu=args.device == "cpu")
    if args.force_new:
        if state.is_main_process:
            for folder in cls.folders(args.out):
                if folder.is_dir():
                    with warnings.catch_warnings(record=True) as kept:  # what gifkit cannot prove it made stays
                        warnings.simplefilter("always")
                        removed = clear_store(folder)
                    print(f"--force-new: removed {removed} files of the expansion in {folder}"
                          + "".join(f"; {w.message}" for w in kept))
        state.wait_for_everyone()
    dataset, class_names = load_dataset(args.data, args.split, root=args.data_root, profile=args.profile)
    device = args.device if args.device else (state.device if state.num_processes > 1 else None)
    method = cls.from_profile(class_names, profile=args.profile, device=device, **options)
    return expand(method, dataset, args.out, ratio=args.ratio, seed=args.seed, batch_size=args.batch_size,
                  limit=args.limit, output_size=args.output_size, shard=(state.process_index, state.num_processes),
                  barrier=state.wait_for_everyone if state.num_processes > 1 else None,
                  progress=not args.no_progress and state.is_local_main_process, overlap_io=args.overlap_io,
                  deterministic=args.deterministic)


def cmd_expand(args) -> int:
    result = run_expand(args)
    print(result.summary())
    if result.written == 0 and result.existing == 0 and result.skipped:
        raise UserError(f"nothing was written: every one of the {len(result.skipped)} seed images was unreadable "
                        f"(e.g. seed {result.skipped[0][0]}: {result.skipped[0][1]})")
    return 0
