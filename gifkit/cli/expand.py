"""``gifkit expand`` (any registered method into an expansion folder; resumable; ``accelerate launch`` to shard)
and ``gifkit demo`` (the main job)."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from gifkit.cli.args import add_dataclass_args, values
from gifkit.config import DEFAULT_RATIO, GIF_SD_PRESETS, PROFILE_NAMES
from gifkit.core.imagine import GuidanceConfig
from gifkit.methods import METHODS, PriorOptions, method_names

__all__ = ["add_expand_args", "run_expand", "cmd_expand", "cmd_demo"]


def add_expand_args(p: argparse.ArgumentParser) -> None:
    """The options of ``gifkit expand`` (also what ``gifkit demo --smoke`` runs with)."""
    p.add_argument("--data", required=True, help="dataset name (e.g. smoke) or an image folder <root>/<class>/<img>")
    p.add_argument("--split", default="train")
    p.add_argument("--data-root", default=None, help="where a named dataset's files are")
    p.add_argument("--out", required=True, help="output folder (ImageFolder + metadata.csv); re-running resumes")
    p.add_argument("--method", default="gif-sd", choices=method_names(), metavar="METHOD",
                   help="expansion method: " + "; ".join(f"{n} ({m.kind})" for n, m in METHODS.items()))
    p.add_argument("--ratio", type=int, default=None, help="K, variants per seed (default: the preset's, else 5)")
    p.add_argument("--profile", default="smoke", choices=list(PROFILE_NAMES))
    p.add_argument("--preset", default=None, help="the paper's per-dataset settings, e.g. cifar100s, pets, pathmnist")
    p.add_argument("--batch-size", type=_batch_size, default=4,
                   help="seeds per batch (batch_size * K images through the sampler at once; the guidance pass runs "
                        "one seed's K variants at a time), or 'auto': as many as fit in the free GPU memory")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None, help="only the first N seed images")
    p.add_argument("--output-size", type=int, default=None, help="save at N px (default: the prior's resolution)")
    p.add_argument("--device", default=None)
    p.add_argument("--no-progress", action="store_true")
    add_dataclass_args(p.add_argument_group("guidance (GIF methods; see docs/design.md §1.6)"), GuidanceConfig,
                       defaults={"eps": "0.8 (GIF-SD); GIF-MAE 5, GIF-DALLE 0.1; a --preset's"})
    add_dataclass_args(p.add_argument_group("the prior (generative methods) and ALIA / DreamDA"), PriorOptions)


def _batch_size(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seeds or 'auto', got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"--batch-size must be >= 1, got {value}")
    return value


def run_expand(args):
    """Run ``gifkit expand`` for ``args`` through :func:`gifkit.experiments.study.expand_method`; returns the result."""
    from accelerate import PartialState

    from gifkit.data import load_dataset
    from gifkit.experiments.study import expand_method

    state = PartialState(cpu=args.device == "cpu")
    dataset, class_names = load_dataset(args.data, args.split, root=args.data_root, profile=args.profile)
    ratio = args.ratio if args.ratio is not None else GIF_SD_PRESETS.get(args.preset or "", {}).get("ratio", DEFAULT_RATIO)
    if ratio < 1:
        raise ValueError(f"--ratio must be >= 1, got {ratio}")
    kind = METHODS[args.method].kind
    guidance = values(args, GuidanceConfig) if kind == "prior" else None  # ALIA's edits are not guided
    model_kwargs = values(args, PriorOptions) if kind != "augment" else None
    batch_size = args.batch_size
    if kind == "pipeline":  # ALIA builds its CLIP (semantic filter) deep inside: hand it over by the environment
        import os

        from gifkit.models.guides import CLIP_ENV

        for var, key in zip(CLIP_ENV, ("clip_model", "clip_pretrained")):
            if model_kwargs.get(key):
                os.environ[var] = model_kwargs[key]
        model_kwargs = {k: v for k, v in model_kwargs.items()
                        if k not in ("clip_model", "clip_pretrained", "dtype", "grad_checkpointing")}
    if batch_size == "auto" and kind != "prior":
        batch_size = None  # the method's default
    device = args.device if args.device else (state.device if state.num_processes > 1 else None)
    return expand_method(args.data, args.method, args.out, profile=args.profile, ratio=ratio, seed=args.seed,
                         limit=args.limit, preset=args.preset, guidance=guidance, model_kwargs=model_kwargs,
                         dataset=dataset, class_names=class_names, device=device, batch_size=batch_size,
                         progress=not args.no_progress and state.is_local_main_process, split=args.split,
                         data_root=args.data_root, output_size=args.output_size,
                         shard=(state.process_index, state.num_processes),
                         barrier=state.wait_for_everyone if state.num_processes > 1 else None)


def cmd_expand(args) -> int:
    result = run_expand(args)
    print(result.summary())
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

    out = Path(args.out or "results/demo")
    parser = argparse.ArgumentParser()
    add_expand_args(parser)
    ns = parser.parse_args(["--data", "smoke", "--out", str(out / "gif-sd"), "--method", "gif-sd", "--ratio", "5"])
    t = time.perf_counter()
    result = run_expand(ns)
    print(result.summary())
    dataset, _ = load_dataset("smoke", "train")
    grid = out / "grid.png"
    expansion_grid(dataset, out / "gif-sd", n_seeds=8).save(grid)
    print(f"demo done in {time.perf_counter() - t:.1f} s: images and metadata.csv in {out / 'gif-sd'}, "
          f"seeds (left column) and their variants in {grid}")
    print("Note: the smoke profile uses tiny random models, so the images are noise-like; "
          "use --profile paper with real checkpoints for real expansions.")
    return 0
