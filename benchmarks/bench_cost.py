"""Table 6 on this machine: seconds per created image and the time for 10,000 images, per expansion method.

Each method (:func:`gifkit.methods.create_method`) expands the first ``--seeds`` seeds ``--ratio`` times
(:func:`gifkit.methods.expand`) into a temporary folder; the figure is ``ExpandResult.seconds_per_image`` (the expansion loop, without model
loading). The paper's numbers (V100s) are printed beside. Not a test: it prints figures.

    python benchmarks/bench_cost.py                       # smoke: tiny models, CPU, seconds
    python benchmarks/bench_cost.py --profile paper --data cifar100s --seeds 100   # real checkpoints, GPU
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from gifkit.data import load_dataset
from gifkit.experiments.paper import load_table
from gifkit.experiments.study import shared_options
from gifkit.methods import create_method, expand

PAPER_NAMES = {"cutout": "Cutout", "gridmask": "GridMask", "randaugment": "RandAugment", "gif-mae": "GIF-MAE",
               "gif-sd": "GIF-SD"}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="smoke", choices=["smoke", "mini", "paper"])
    p.add_argument("--data", default=None, help="default: smoke (smoke), fashion-mnist (mini), cifar100s (paper)")
    p.add_argument("--methods", nargs="+",
                   default=None, help="default: randaugment cutout gridmask gif-mae gif-dalle gif-sd (mini: the VAE)")
    p.add_argument("--seeds", type=int, default=8, help="seed images expanded per method")
    p.add_argument("--ratio", type=int, default=5)
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    data = a.data or {"smoke": "smoke", "mini": "fashion-mnist", "paper": "cifar100s"}[a.profile]
    methods = a.methods or (["randaugment", "cutout", "gridmask", "vae", "gif-vae"] if a.profile == "mini" else
                            ["randaugment", "cutout", "gridmask", "gif-mae", "gif-dalle", "gif-sd"])
    preset = "cifar100s" if data == "cifar100s" else None
    paper = load_table("table6_cost").set_index("method")["seconds_per_image"]
    print(f"profile {a.profile}, data {data}, {a.seeds} seeds x {a.ratio}, torch threads {torch.get_num_threads()}")
    print(f"{'method':12s} {'images':>6s} {'s/image':>9s} {'10k images':>11s} {'paper s/image':>14s}")
    dataset, classes = load_dataset(data, "train", profile=a.profile)
    with tempfile.TemporaryDirectory() as tmp:
        for m in methods:
            method = create_method(m, classes, profile=a.profile, device=a.device,
                                   **shared_options(m, {"preset": preset}, dataset))
            r = expand(method, dataset, Path(tmp) / m, ratio=a.ratio, limit=a.seeds, progress=False)
            spi = r.seconds_per_image
            ref = paper.get(PAPER_NAMES.get(m, ""), float("nan"))
            print(f"{m:12s} {r.written:6d} {spi:9.4f} {spi * 10_000 / 60:9.1f} min {ref:14.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
