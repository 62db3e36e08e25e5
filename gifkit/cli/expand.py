"""``gifkit expand`` (any registered method into an expansion folder; resumable; ``accelerate launch`` to shard)
and ``gifkit demo`` (the main job)."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from gifkit.cli.args import add_dataclass_args, checked, values
from gifkit.config import (ALIA_SEMANTIC_CLIP, DEFAULT_RATIO, EXPAND_CHECKS, GIF_SD_PRESETS, MAX_RATIO, PROFILE_NAMES,
                           check_expand_args)
from gifkit.errors import UserError
from gifkit.core.imagine import GuidanceConfig
from gifkit.methods import METHODS, PriorOptions, method_names

__all__ = ["add_expand_args", "run_expand", "cmd_expand", "cmd_demo"]


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
    p.add_argument("--method", default="gif-sd", choices=method_names(), metavar="METHOD",
                   help="expansion method: " + "; ".join(f"{n} ({m.kind})" for n, m in METHODS.items()))
    p.add_argument("--ratio", type=checked(int, EXPAND_CHECKS["ratio"], "ratio"), default=None,
                   help=f"K, variants per seed, 1 to {MAX_RATIO} (default: the preset's, else 5)")
    p.add_argument("--profile", default="smoke", choices=list(PROFILE_NAMES))
    p.add_argument("--preset", default=None, help="the paper's per-dataset settings, e.g. cifar100s, pets, pathmnist")
    p.add_argument("--batch-size", type=_batch_size, default=4,
                   help="seeds per batch (batch_size * K images through the sampler at once; the guidance pass runs "
                        "one seed's K variants at a time), or 'auto': as many as fit in the free GPU memory")
    p.add_argument("--seed", type=checked(int, EXPAND_CHECKS["seed"], "seed"), default=0)
    p.add_argument("--limit", type=checked(int, EXPAND_CHECKS["limit"], "limit"), default=None,
                   help="only the first N seed images")
    p.add_argument("--output-size", type=checked(int, EXPAND_CHECKS["output_size"], "output_size"), default=None,
                   help="save at N px (default: the prior's resolution)")
    p.add_argument("--device", default=None)
    p.add_argument("--no-progress", action="store_true")
    add_dataclass_args(p.add_argument_group("guidance (GIF methods; see docs/design.md §1.6)"), GuidanceConfig,
                       defaults={"eps": "0.8 (GIF-SD); GIF-MAE 5, GIF-DALLE 0.1; a --preset's"})
    add_dataclass_args(p.add_argument_group("the prior (generative methods) and ALIA / DreamDA"), PriorOptions)


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


def run_expand(args):
    """Run ``gifkit expand`` for ``args`` through :func:`gifkit.experiments.study.expand_method`; returns the result.

    Before anything is loaded: --out may not be, lie in or contain the data (:func:`check_output_folder`);
    ``--force-new`` clears the expansion --out holds (the main process, then every process waits)."""
    from accelerate import PartialState

    from gifkit.data import load_dataset
    from gifkit.experiments.study import expand_method
    from gifkit.io.runs import check_output_folder
    from gifkit.io.store import clear_store

    check_output_folder(args.out, _inputs(args))
    state = PartialState(cpu=args.device == "cpu")
    ratio = args.ratio if args.ratio is not None else GIF_SD_PRESETS.get(args.preset or "", {}).get("ratio", DEFAULT_RATIO)
    check_expand_args(ratio=ratio)
    kind = METHODS[args.method].kind
    if args.force_new:
        if state.is_main_process:
            out = Path(args.out)
            for folder in (out, out.with_name(out.name + ".alia") / "candidates") if kind == "pipeline" else (out,):
                if folder.is_dir():
                    print(f"--force-new: removed {clear_store(folder)} files of the expansion in {folder}")
        state.wait_for_everyone()
    dataset, class_names = load_dataset(args.data, args.split, root=args.data_root, profile=args.profile)
    guidance = values(args, GuidanceConfig) if kind == "prior" else None  # ALIA's edits are not guided
    model_kwargs = values(args, PriorOptions) if kind != "augment" else None
    if kind == "pipeline":  # ALIA's CLIP is its semantic filter's (ViT-L/14 by default), not a guiding CLIP
        clip = (model_kwargs.pop("clip_model", None), model_kwargs.pop("clip_pretrained", None))
        if any(clip):
            model_kwargs["semantic_clip"] = tuple(c or d for c, d in zip(clip, ALIA_SEMANTIC_CLIP))
        model_kwargs = {k: v for k, v in model_kwargs.items() if k not in ("dtype", "grad_checkpointing")}
    device = args.device if args.device else (state.device if state.num_processes > 1 else None)
    return expand_method(args.data, args.method, args.out, profile=args.profile, ratio=ratio, seed=args.seed,
                         limit=args.limit, preset=args.preset, guidance=guidance, model_kwargs=model_kwargs,
                         dataset=dataset, class_names=class_names, device=device, batch_size=args.batch_size,
                         progress=not args.no_progress and state.is_local_main_process, split=args.split,
                         data_root=args.data_root, output_size=args.output_size,
                         shard=(state.process_index, state.num_processes),
                         barrier=state.wait_for_everyone if state.num_processes > 1 else None)


def cmd_expand(args) -> int:
    result = run_expand(args)
    print(result.summary())
    made = getattr(result, "expand", result)  # ALIA: its candidates' expansion
    if made.written == 0 and made.existing == 0 and made.skipped:
        raise UserError(f"nothing was written: every one of the {len(made.skipped)} seed images was unreadable "
                        f"(e.g. seed {made.skipped[0][0]}: {made.skipped[0][1]})")
    return 0


def cmd_demo(args) -> int:
    """The main job: the quick mini experiment (Fashion-MNIST, offline, CPU); ``--smoke``: the smoke GIF-SD demo."""
    if not args.smoke:
        from gifkit.cli.mini import cmd_mini
        from gifkit.data.fashion import DataUnavailable, find_files

        try:
            find_files("fashion-mnist", "train"), find_files("fashion-mnist", "test")
        except DataUnavailable as e:
            print(f"gifkit demo: the main job (the quick mini experiment) needs Fashion-MNIST.\n{e}\n"
                  "Running the smoke demo (tiny random models, no data needed) instead.\n")
            args.smoke, args.out = True, None
        else:
            return cmd_mini(argparse.Namespace(quick=True, out=args.out))
    from gifkit.data import load_dataset
    from gifkit.experiments.plots import expansion_grid
    from gifkit.io.files import atomic_save_image

    out = Path(args.out or "results/demo")
    parser = argparse.ArgumentParser()
    add_expand_args(parser)
    ns = parser.parse_args(["--data", "smoke", "--out", str(out / "gif-sd"), "--method", "gif-sd", "--ratio", "5"])
    t = time.perf_counter()
    result = run_expand(ns)
    print(result.summary())
    dataset, _ = load_dataset("smoke", "train")
    grid = out / "grid.png"
    atomic_save_image(grid, expansion_grid(dataset, out / "gif-sd", n_seeds=8))
    print(f"demo done in {time.perf_counter() - t:.1f} s: images and metadata.csv in {out / 'gif-sd'}, "
          f"seeds (left column) and their variants in {grid}")
    print("Note: the smoke profile uses tiny random models, so the images are noise-like; "
          "use --profile paper with real checkpoints for real expansions.")
    return 0
