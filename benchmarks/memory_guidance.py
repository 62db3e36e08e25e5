"""Peak memory of GIF-SD's guidance pass on the CPU at 512 px: the full-size SD v1 VAE decoder and CLIP
ViT-B/32 (random weights, gifkit.testing), decode with gradients + CLIP + backward for N variants at once.

Each setting runs in a fresh process; the figure is the peak resident memory during the pass (Linux ``VmHWM``
of ``/proc/self/status``, reset by ``/proc/self/clear_refs`` just before it) over the models' own footprint. "before" = all ``batch_size * K`` variants in one pass (gifkit <= 0.1);
"after" = one seed's K variants per pass, optionally with gradient checkpointing of the decoder.

    python benchmarks/memory_guidance.py [--images 1 2] [--dtype fp32]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def one(n: int, checkpointing: bool, dtype: str, folder: str) -> dict:
    import torch
    from diffusers import AutoencoderKL

    from gifkit.models import hub
    from gifkit.models.guides import ZeroShotClassifier

    torch.manual_seed(0)
    vae = AutoencoderKL.from_pretrained(f"{folder}/sd", subfolder="vae").to(hub.resolve_dtype(dtype, "cpu"))
    vae.eval().requires_grad_(False)
    clip = hub.load_clip(pretrained=f"{folder}/clip")
    if checkpointing:
        vae.enable_gradient_checkpointing()
    clf = ZeroShotClassifier(clip.model, clip.tokenizer, ["cat", "dog"])
    before = _rss_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark: the peak of the pass alone
    z = torch.zeros(n, 4, 1, 1, requires_grad=True)
    f = torch.randn(n, 4, 64, 64)
    t = time.perf_counter()
    x = vae.decode(((1 + z) * f).to(vae.dtype) / vae.config.scaling_factor).sample
    feats = clf.image_features((x.float() / 2 + 0.5).clamp(0, 1))
    feats.sum().backward()
    seconds = time.perf_counter() - t
    peak = _rss_kib("VmHWM")
    return {"images": n, "checkpointing": checkpointing, "dtype": dtype, "seconds": round(seconds, 1),
            "models_gib": round(before / 2 ** 20, 2), "pass_gib": round((peak - before) / 2 ** 20, 2),
            "per_image_gib": round((peak - before) / 2 ** 20 / n, 2)}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, nargs="+", default=[1, 2])
    p.add_argument("--dtype", nargs="+", default=["fp32"])
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    p.add_argument("--settings", nargs="+", default=None, help="IMAGES,CHECKPOINTING(0/1) pairs, e.g. 1,0 1,1 2,1")
    a = p.parse_args()
    if a.one:
        n, ck, dt, folder = a.one.split(",")
        print(json.dumps(one(int(n), ck == "1", dt, folder)))
        sys.exit(0)
    from gifkit import testing

    work = tempfile.mkdtemp(prefix="gifkit-mem-")
    testing.write_checkpoint("sd", f"{work}/sd", "full")
    testing.write_checkpoint("clip", f"{work}/clip", "full")
    settings = [tuple(int(x) for x in s.split(",")) for s in a.settings] if a.settings else \
        [(n, ck) for ck in (0, 1) for n in a.images]
    rows = []
    for dt in a.dtype:
        for n, ck in settings:
            out = subprocess.run([sys.executable, __file__, "--one", f"{n},{int(ck)},{dt},{work}"],
                                 capture_output=True, text=True)
            if out.returncode:
                print(out.stderr[-2000:], file=sys.stderr, flush=True)
                continue
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    print("| dtype | decoder checkpointing | images per pass | pass peak (GiB) | per image (GiB) | seconds |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['dtype']} | {'on' if r['checkpointing'] else 'off'} | {r['images']} | {r['pass_gib']} | "
              f"{r['per_image_gib']} | {r['seconds']} |")
