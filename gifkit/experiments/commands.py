"""The experiments' commands: ``gifkit mini`` (the mini experiment), ``gifkit mini-prior`` (its VAE prior) and
``gifkit demo`` (the main job). The library's own commands live in :mod:`gifkit.cli`; ``gifkit`` assembles both
(:mod:`gifkit.__main__`)."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from gifkit.config.flags import add_dataclass_args, values
from gifkit.experiments.mini import MiniConfig

__all__ = ["add_parsers", "config_from_args", "cmd_mini", "cmd_mini_prior", "cmd_demo"]


def add_parsers(sub) -> None:
    """``gifkit mini``, ``gifkit mini-prior`` and ``gifkit demo`` on the ``gifkit`` subcommand parser."""
    p = sub.add_parser("mini", help="the mini profile's experiment: Fashion-MNIST, 20/class, offline, 2-core CPU")
    p.add_argument("--quick", action="store_true", help="1 seed, the 4 main arms (what `make demo` runs)")
    add_dataclass_args(p, MiniConfig)
    p.set_defaults(func=cmd_mini)
    q = sub.add_parser("mini-prior", help="show the mini profile's VAE prior (shipped for Fashion-MNIST), or train it into the user cache")
    q.add_argument("--data", default="fashion-mnist", choices=["fashion-mnist", "mnist"])
    q.add_argument("--data-root", default=None)
    q.add_argument("--retrain", action="store_true", help="train again (into the user cache) and say whether the bytes equal the shipped ones")
    q.add_argument("--epochs", type=int, default=None)
    q.set_defaults(func=cmd_mini_prior)
    d = sub.add_parser("demo", help="the main job: the quick mini experiment (offline, CPU, < 10 min); "
                                    "--smoke: GIF-SD on tiny models")
    d.add_argument("--out", default=None, help="default results/mini/quick (--smoke: results/demo)")
    d.add_argument("--smoke", action="store_true", help="the smoke demo: GIF-SD on tiny random models, seconds")
    d.set_defaults(func=cmd_demo)


def config_from_args(args) -> MiniConfig:
    """The :class:`MiniConfig` of ``gifkit mini`` (``--quick``: :meth:`MiniConfig.quick`) with the flags given."""
    over = values(args, MiniConfig)
    return MiniConfig.quick(**over) if args.quick else MiniConfig(**over)


def cmd_mini(args) -> int:
    """``gifkit mini``: run (or resume) the mini experiment and print its summary."""
    from gifkit.data.fashion import DataUnavailable
    from gifkit.experiments.mini import run_mini

    try:
        res = run_mini(config_from_args(args))
    except DataUnavailable as e:
        print(f"gifkit mini: {e}")
        return 3
    s = res["summary"]
    for _, r in s.iterrows():
        sd = f" ± {r['accuracy_std']:.2f}" if r["n_seeds"] > 1 else ""
        print(f"  {r['arm']:14s} {r['accuracy_mean']:6.2f}{sd} %   {r['description']}")
    return 0


def cmd_mini_prior(args) -> int:
    """``gifkit mini-prior``: load (the shipped or cached one) or train the mini VAE prior and describe it."""
    from gifkit.priors.vae import get_vae

    kw = {"epochs": args.epochs} if args.epochs else {}
    t = time.perf_counter()
    _, meta = get_vae(args.data, retrain=args.retrain, data_root=args.data_root, **kw)
    st = meta["stats"]
    print(f"mini VAE prior of {args.data}: {meta['folder']} (sha256 {meta['sha256'][:16]}...), trained on "
          f"{st['n_images']} images in {st['seconds']} s; final -ELBO {st['history'][-1]['loss']:.2f} per image; "
          f"latent std per channel {st.get('latent_std_per_channel')}; ({time.perf_counter() - t:.1f} s now)")
    return 0


def cmd_demo(args) -> int:
    """The main job: the quick mini experiment (Fashion-MNIST, offline, CPU); ``--smoke``: the smoke GIF-SD demo."""
    if not args.smoke:
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
    from gifkit.methods import create_method, expand

    out = Path(args.out or "results/demo")
    t = time.perf_counter()
    dataset, classes = load_dataset("smoke", "train")
    result = expand(create_method("gif-sd", classes, profile="smoke"), dataset, out / "gif-sd", ratio=5)
    print(result.summary())
    grid = out / "grid.png"
    atomic_save_image(grid, expansion_grid(dataset, out / "gif-sd", n_seeds=8))
    print(f"demo done in {time.perf_counter() - t:.1f} s: images and metadata.csv in {out / 'gif-sd'}, "
          f"seeds (left column) and their variants in {grid}")
    print("Note: the smoke profile uses tiny random models, so the images are noise-like; "
          "use --profile paper with real checkpoints for real expansions.")
    return 0
