"""``gifkit mini`` (the mini experiment) and ``gifkit mini-prior`` (its VAE prior)."""
from __future__ import annotations

import time

from gifkit.cli.args import add_dataclass_args, values
from gifkit.experiments.mini import MiniConfig

__all__ = ["add_parser", "config_from_args", "cmd_mini", "cmd_mini_prior"]


def add_parser(sub) -> None:
    """``gifkit mini`` and ``gifkit mini-prior``."""
    p = sub.add_parser("mini", help="the mini profile's experiment: Fashion-MNIST, 20/class, offline, 2-core CPU")
    p.add_argument("--quick", action="store_true", help="1 seed, the 4 main arms (what `make demo` runs)")
    add_dataclass_args(p, MiniConfig)
    p.set_defaults(func=cmd_mini)
    q = sub.add_parser("mini-prior", help="train (or show) the mini profile's VAE prior, cached in the user cache")
    q.add_argument("--data", default="fashion-mnist", choices=["fashion-mnist", "mnist"])
    q.add_argument("--data-root", default=None)
    q.add_argument("--retrain", action="store_true", help="train again even when cached")
    q.add_argument("--epochs", type=int, default=None)
    q.set_defaults(func=cmd_mini_prior)


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
    """``gifkit mini-prior``: train (or load) the cached mini VAE prior and describe it."""
    from gifkit.priors.vae import cache_dir, get_vae

    kw = {"epochs": args.epochs} if args.epochs else {}
    t = time.perf_counter()
    _, meta = get_vae(args.data, retrain=args.retrain, data_root=args.data_root, **kw)
    st = meta["stats"]
    print(f"mini VAE prior of {args.data}: {cache_dir(args.data)} (sha256 {meta['sha256'][:16]}...), trained on "
          f"{st['n_images']} images in {st['seconds']} s; final -ELBO {st['history'][-1]['loss']:.2f} per image; "
          f"latent std per channel {st.get('latent_std_per_channel')}; ({time.perf_counter() - t:.1f} s now)")
    return 0
