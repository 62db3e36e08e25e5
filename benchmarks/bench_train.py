"""Training images/s of `gifkit train` against a bare timm/torch loop on the same model and data.

Both sides use the same dataset, transforms, DataLoader settings, model
(``timm.create_model``), SGD, loss and mixed-precision policy; the bare loop
has no accelerate, no ExpandedDataset, no per-step lr schedule, no progress
bar and no checkpoints. Throughput is measured on training steps only (the
evaluation after each epoch is excluded on both sides), from the epochs after
the first (warm-up), and the two are run alternately ``--rounds`` times; the
median per side is reported. The harness should cost under 10 %.

    python benchmarks/bench_train.py                       # CPU: tiny model, 32 px, smoke data
    python benchmarks/bench_train.py --arch resnet50 --image-size 224 --batch-size 128 --workers 8   # GPU
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F


def bare_loop(args, dataset, transform) -> list[float]:
    """Images/s per epoch of a plain timm/torch training loop."""
    import timm
    from torch.utils.data import DataLoader

    from gifkit.train.data import Transformed

    cuda = torch.cuda.is_available() and args.device != "cpu"
    device = torch.device("cuda" if cuda else "cpu")
    torch.manual_seed(0)
    model = timm.create_model(args.arch, num_classes=len(dataset.classes)).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    loader = DataLoader(Transformed(dataset, transform), batch_size=args.batch_size, shuffle=True,
                        num_workers=args.workers, pin_memory=cuda, persistent_workers=args.workers > 0, drop_last=True)
    dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler(enabled=cuda and dtype == torch.float16)
    rates = []
    for _ in range(args.epochs):
        model.train()
        if cuda:
            torch.cuda.synchronize()
        t0, n = time.perf_counter(), 0
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=dtype, enabled=cuda):
                loss = F.cross_entropy(model(x).float(), y)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            opt.zero_grad(set_to_none=True)
            n += x.shape[0]
        if cuda:
            torch.cuda.synchronize()
        rates.append(n / (time.perf_counter() - t0))
    return rates


def gifkit_loop(args, out: str) -> list[float]:
    """Images/s per epoch of :func:`gifkit.train.loop.train` (from its result's history)."""
    from gifkit.train.config import make_config
    from gifkit.train.loop import train

    cfg = make_config("paper", data=args.data, data_kwargs={"n_per_class": args.n_per_class}, arch=args.arch,
                      image_size=args.image_size, batch_size=args.batch_size, epochs=args.epochs, lr=0.01,
                      workers=args.workers, device=args.device, out=out, resume=False, progress=not args.quiet,
                      profile="smoke")
    return [h["train_images_per_s"] for h in train(cfg)["history"]]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="smoke")
    p.add_argument("--n-per-class", type=int, default=128, help="training images per class (smoke data)")
    p.add_argument("--arch", default="test_resnet")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--device", default=None)
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from gifkit.data import load_dataset
    from gifkit.train.config import make_config
    from gifkit.train.data import IMAGENET_MEAN, IMAGENET_STD, train_transform

    dataset, _ = load_dataset(args.data, "train", n_per_class=args.n_per_class)
    transform = train_transform(make_config("paper", data=args.data, image_size=args.image_size),
                                IMAGENET_MEAN, IMAGENET_STD)
    dev = "cuda" if torch.cuda.is_available() and args.device != "cpu" else "cpu"
    print(f"{args.arch} at {args.image_size} px, batch {args.batch_size}, {len(dataset)} images x {args.epochs} "
          f"epochs, {args.rounds} rounds, device {dev}, CPU threads {torch.get_num_threads()}, workers {args.workers}")
    bare, ours = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            b = bare_loop(args, dataset, transform)[1:]
            g = gifkit_loop(args, f"{tmp}/r{r}")[1:]
            bare += b
            ours += g
            print(f"round {r + 1}: bare {statistics.median(b):9.1f} img/s   "
                  f"gifkit train {statistics.median(g):9.1f} img/s")
    mb, mg = statistics.median(bare), statistics.median(ours)
    print(f"median over epochs 2..{args.epochs} of all rounds: bare {mb:.1f} img/s, gifkit train {mg:.1f} img/s, "
          f"harness cost {100 * (1 - mg / mb):+.1f} %")


if __name__ == "__main__":
    main()
