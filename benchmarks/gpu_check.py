"""`make gpu-check`: the paper path on one GPU, with full-size random-weight checkpoints (no downloads).

1. writes SD v1-4, CLIP ViT-B/32 (openai), MAE ViT-L/16 and Karlo at their real sizes with gifkit.testing, into a
   temporary Hugging Face cache under their hub ids (HF_HUB_OFFLINE=1: nothing is downloaded);
2. times GIF-SD (K = 5, 512 px, strength 0.9 of 50 DDIM steps, CFG 50: the cifar100s preset) against unguided SD at
   several --batch-size, then GIF-MAE and GIF-DALLE (100 decoder steps), each in seconds per image split into
   prior / guidance / decode / I/O, with the peak GPU memory of every run;
3. runs the paper-profile CLI end to end (`gifkit expand --profile paper --preset cifar100s`, default hub ids);
4. writes results/gpu/<gpu-name>.json and prints a table for the README.

Goals (issue 15): GIF-SD <= 0.25 s per image on an H100/H200-class GPU including guidance, guidance <= 25 % of
unguided SD's time, GIF-SD with K = 5 at 512 px within a 16 GB T4's memory (peak at --batch-size 1).

    python benchmarks/gpu_check.py                 # on a CUDA GPU, < 8 minutes on an H100/H200
    python benchmarks/gpu_check.py --smoke         # tiny checkpoints, 2 steps, CPU: checks the script itself
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _peak_gib(device) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 30
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def _reset(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def timed(method, dataset, names, device, out, *, batch_size, ratio, limit, preset, model_kwargs, seeds_per_pass=1):
    """One expansion: its seconds per image (total, prior, guidance, decode, io) and peak memory."""
    from gifkit.core.imagine import expand
    from gifkit.methods import build_models

    prior, clf, g, params = build_models(method, "paper", names, preset=preset, device=device, **model_kwargs)
    for _ in range(1):  # warm-up batch (kernels, allocator), not timed
        expand(dataset, names, prior, clf, out / "warmup", ratio=ratio, method=method, guidance=g, params=params,
               batch_size=batch_size, limit=batch_size, progress=False, seeds_per_pass=seeds_per_pass)
    _reset(device)
    r = expand(dataset, names, prior, clf, out / "run", ratio=ratio, method=method, guidance=g, params=params,
               batch_size=batch_size, limit=limit, progress=False, seeds_per_pass=seeds_per_pass)
    n = max(r.written, 1)
    row = {"method": method, "batch_size": batch_size, "k": ratio, "images": r.written,
           "s_per_image": round(r.seconds / n, 4), **{k: round(v / n, 4) for k, v in r.timings.items()},
           "peak_gib": round(_peak_gib(device), 2), "dtype": str(getattr(prior, "dtype", "")).replace("torch.", "")}
    del prior, clf
    return row


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="tiny checkpoints, 2 DDIM steps, CPU: a dry run")
    p.add_argument("--device", default=None)
    p.add_argument("--seeds", type=int, default=None, help="seed images per timed run (default 8; smoke 2)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=None, help="GIF-SD batch sizes (default 1 2 4)")
    p.add_argument("--skip", nargs="*", default=[], choices=["mae", "dalle", "cli"])
    p.add_argument("--out", default=str(ROOT / "results" / "gpu"))
    a = p.parse_args()

    import torch

    device = torch.device(a.device or ("cuda" if torch.cuda.is_available() and not a.smoke else "cpu"))
    if device.type != "cuda" and not a.smoke:
        print("gpu-check needs a CUDA GPU (or --smoke for a CPU dry run)", file=sys.stderr)
        return 2
    size, steps = ("tiny", 2) if a.smoke else ("full", 50)
    seeds = a.seeds or (2 if a.smoke else 8)
    batch_sizes = a.batch_sizes or ([1, 2] if a.smoke else [1, 2, 4])
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu-{platform.machine()}"
    t_all = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="gifkit-gpu-check-"))
    cache = work / "hf-cache"
    os.environ.update(HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(cache))  # read before the libraries below import

    from gifkit import testing
    from gifkit.data import load_dataset

    t = time.perf_counter()
    kinds = ["sd", "clip"] + (["mae"] if "mae" not in a.skip else []) + (["unclip"] if "dalle" not in a.skip else [])
    folders = {k: testing.plant_hub_cache(k, cache, size, device=device if device.type == "cuda" else None)
               for k in kinds}
    write_s = time.perf_counter() - t
    print(f"{gpu}: {size} checkpoints written in {write_s:.0f} s ({', '.join(kinds)})", flush=True)
    dataset, names = load_dataset("smoke", n_per_class=max(1, (seeds + 3) // 4))
    common = dict(clip_pretrained=str(folders["clip"]), steps=steps)
    rows = []
    for method in ("sd", "gif-sd"):
        for bs in batch_sizes:
            rows.append(timed(method, dataset, names, device, work / f"{method}-{bs}", batch_size=bs, ratio=5,
                              limit=seeds, preset="cifar100s", model_kwargs={"model_id": str(folders["sd"]), **common}))
            print(rows[-1], flush=True)
    if "mae" not in a.skip:
        rows.append(timed("gif-mae", dataset, names, device, work / "gif-mae", batch_size=max(batch_sizes), ratio=5,
                          limit=seeds, preset=None, model_kwargs={"model_id": str(folders["mae"]), **common}))
        print(rows[-1], flush=True)
    if "dalle" not in a.skip:
        rows.append(timed("gif-dalle", dataset, names, device, work / "gif-dalle", batch_size=max(batch_sizes),
                          ratio=5, limit=seeds, preset=None,
                          model_kwargs={"model_id": str(folders["unclip"]), "steps": 4 if a.smoke else 100}))
        print(rows[-1], flush=True)
    cli = None
    if "cli" not in a.skip:  # the paper profile end to end, default hub ids from the planted cache
        import subprocess

        t = time.perf_counter()
        cmd = [sys.executable, "-m", "gifkit", "expand", "--data", "smoke", "--out", str(work / "cli"), "--method",
               "gif-sd", "--profile", "paper", "--preset", "cifar100s", "--limit", "2", "--no-progress",
               "--device", device.type] + (["--steps", "2"] if a.smoke else [])
        res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        cli = {"command": " ".join(cmd[1:]), "returncode": res.returncode, "seconds": round(time.perf_counter() - t, 1),
               "summary": (res.stdout.strip().splitlines() or [res.stderr.strip()[-300:]])[-1]}
        print(cli, flush=True)
    gif = {r["batch_size"]: r for r in rows if r["method"] == "gif-sd"}
    sd = {r["batch_size"]: r for r in rows if r["method"] == "sd"}
    best = min(gif.values(), key=lambda r: r["s_per_image"])
    report = {
        "gpu": gpu, "device": str(device), "size": size, "ddim_steps": steps, "strength": 0.9, "k": 5,
        "versions": {m: __import__(m).__version__ for m in ("torch", "diffusers", "transformers", "open_clip")},
        "checkpoint_write_seconds": round(write_s, 1), "runs": rows, "cli": cli,
        "goals": {"gif_sd_s_per_image": best["s_per_image"], "gif_sd_le_0.25s": best["s_per_image"] <= 0.25,
                  "guidance_share_of_sd": round(best["guidance"] / max(sd[best["batch_size"]]["s_per_image"], 1e-9), 3),
                  "guidance_le_25pct": best["guidance"] <= 0.25 * sd[best["batch_size"]]["s_per_image"],
                  "peak_gib_batch_1": gif.get(1, best)["peak_gib"], "fits_16gb_t4_batch_1": gif.get(1, best)["peak_gib"] < 15.0},
        "total_seconds": round(time.perf_counter() - t_all, 1)}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", gpu).strip("-") + ("-smoke" if a.smoke else "")
    (out / f"{name}.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nwritten {out / (name + '.json')} in {report['total_seconds']:.0f} s\n")
    print(f"| {gpu} ({report['versions']['torch']}) | batch | s / image | prior | guidance | decode | I/O | peak GiB | dtype |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} K=5 | {r['batch_size']} | {r['s_per_image']:.3f} | {r['prior']:.3f} | "
              f"{r['guidance']:.3f} | {r['decode']:.3f} | {r['io']:.3f} | {r['peak_gib']:.1f} | {r['dtype']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
