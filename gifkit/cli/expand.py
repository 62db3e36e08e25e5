"""``gifkit expand`` (any registered method into an expansion folder; resumable; ``accelerate launch`` to shard)
and ``gifkit demo`` (the main job)."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from gifkit.config import DEFAULT_RATIO, GIF_SD_PRESETS, PROFILE_NAMES
from gifkit.methods import METHODS, method_names

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
    p.add_argument("--eps", type=float, default=None, help="L-inf radius of the latent projection")
    p.add_argument("--noise", default=None, choices=["channel", "pixel"])
    p.add_argument("--update", default=None, choices=["sign", "adam"])
    p.add_argument("--opt-steps", type=int, default=None)
    p.add_argument("--step-size", type=float, default=None)
    p.add_argument("--w-inf", type=float, default=None, help="weight of S_inf (0 ablates it)")
    p.add_argument("--w-div", type=float, default=None, help="weight of S_div (0 ablates it)")
    p.add_argument("--official-clip-norm", action="store_true", default=None,
                   help="reproduce the official code's quirk: seeds normalised with CIFAR mean/std for CLIP, "
                        "created images not normalised (default: CLIP's own preprocessing for both)")
    p.add_argument("--strength", type=float, default=None)
    p.add_argument("--guidance-scale", type=float, default=None, help="classifier-free guidance scale of SD")
    p.add_argument("--steps", type=int, default=None,
                   help="sampler steps: SD's DDIM (smoke 10, paper 50) or the unCLIP decoder's (smoke 4, paper 100)")
    p.add_argument("--prompts", default=None, choices=["designed", "class"])
    p.add_argument("--model-id", default=None, help="hub id or local directory of the prior's checkpoint")
    p.add_argument("--batch-size", type=int, default=4, help="seeds per batch (batch_size * K images per pass)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None, help="only the first N seed images")
    p.add_argument("--output-size", type=int, default=None, help="save at N px (default: the prior's resolution)")
    p.add_argument("--device", default=None)
    p.add_argument("--no-progress", action="store_true")
    g = p.add_argument_group("ALIA (--method alia) and DreamDA (--method dreamda)")
    g.add_argument("--descriptions", nargs="+", default=None,
                   help="ALIA: domain descriptions (default: BLIP captions summarised by a text-generation model)")
    g.add_argument("--descriptions-file", default=None, help="ALIA: descriptions, one per line (or a JSON list)")
    g.add_argument("--editor", default=None, choices=["img2img", "instruct"],
                   help="ALIA: SD img2img (default) or InstructPix2Pix")
    g.add_argument("--image-guidance-scale", type=float, default=None, help="ALIA InstructPix2Pix (default 1.2)")
    g.add_argument("--alia-filter", default=None, choices=["both", "semantic", "confidence", "none"],
                   help="ALIA: filters applied to the edits (default both)")
    g.add_argument("--filter-classifier", default=None,
                   help="ALIA: a finished `gifkit train` run for the confidence filter (default: train one)")
    g.add_argument("--noise-scale", type=float, default=None,
                   help="DreamDA: std of the noise added to the U-Net bottleneck at every step (default 3)")


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
    if kind == "augment":  # augmentation baselines: no generative prior, no guidance flags
        guidance = model_kwargs = None
    elif kind == "pipeline":  # ALIA: captions, descriptions, edits (through expand), then the filters
        guidance = None
        model_kwargs = dict(descriptions=getattr(args, "descriptions", None),
                            descriptions_file=getattr(args, "descriptions_file", None),
                            editor=getattr(args, "editor", None), filter=getattr(args, "alia_filter", None),
                            filter_classifier=getattr(args, "filter_classifier", None), model_id=args.model_id,
                            steps=args.steps, strength=args.strength, guidance_scale=args.guidance_scale,
                            image_guidance_scale=getattr(args, "image_guidance_scale", None))
    else:
        model_kwargs = dict(strength=args.strength, guidance_scale=args.guidance_scale, steps=args.steps,
                            prompts=args.prompts, model_id=args.model_id, noise_scale=args.noise_scale)
        guidance = dict(eps=args.eps, noise=args.noise, update=args.update, opt_steps=args.opt_steps,
                        step_size=args.step_size, w_inf=args.w_inf, w_div=args.w_div,
                        official_clip_norm=args.official_clip_norm)
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
            return cmd_mini(argparse.Namespace(quick=True, out=args.out, data="fashion-mnist", data_root=None,
                                                    download=False, seeds=None, arms=None, steps=None,
                                                    n_per_class=None, retrain_prior=False, no_progress=False))
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
