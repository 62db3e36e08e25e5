"""sha256 of every file each expansion method writes on the smoke profile, through ``gifkit expand``.

A refactoring that must not change behaviour runs this before and after and compares the two JSON files::

    python scripts/smoke_hashes.py --out /tmp/before.json
    ... change ...
    python scripts/smoke_hashes.py --out /tmp/after.json --compare /tmp/before.json

Every registered method runs on 6 smoke seeds at K = 3 in batches of 2 seeds (so batching is exercised), with
the guidance variants the paper's ablations use. Bytes are only comparable on one machine and one set of
library versions (``run.json`` records that condition).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE = ["--data", "smoke", "--ratio", "3", "--limit", "6", "--batch-size", "2", "--no-progress"]
CASES: dict[str, list[str]] = {
    "gif-sd": ["--method", "gif-sd"],
    "sd": ["--method", "sd"],
    "gif-sd-pathmnist": ["--method", "gif-sd", "--preset", "pathmnist"],
    "gif-sd-pixel": ["--method", "gif-sd", "--noise", "pixel"],
    "gif-sd-adam": ["--method", "gif-sd", "--update", "adam", "--opt-steps", "2"],
    "gif-sd-diag": ["--method", "gif-sd", "--div-diagnostics", "--div-temperature", "0.05"],
    "gif-sd-quirk": ["--method", "gif-sd", "--official-clip-norm"],
    "gif-sd-random": ["--method", "gif-sd", "--opt-steps", "0"],
    "gif-sd-inf": ["--method", "gif-sd", "--w-div", "0", "--div-group", "0"],
    "gif-mae": ["--method", "gif-mae"],
    "mae": ["--method", "mae"],
    "gif-dalle": ["--method", "gif-dalle"],
    "dalle": ["--method", "dalle"],
    "gif-vae": ["--method", "gif-vae"],
    "vae": ["--method", "vae"],
    "dreamda": ["--method", "dreamda"],
    "dreamda-img2img": ["--method", "dreamda", "--sampler", "img2img"],
    "alia": ["--method", "alia"],
    "alia-instruct": ["--method", "alia", "--editor", "instruct", "--descriptions", "in the snow", "at night"],
    "randaugment": ["--method", "randaugment"],
    "cutout": ["--method", "cutout"],
    "gridmask": ["--method", "gridmask"],
    "mixup": ["--method", "mixup"],
    "cutmix": ["--method", "cutmix"],
}


TIMING_KEYS = ("per_s", "seconds")  # measured durations in a training run's records (ALIA's filter classifier)


def _without_timings(value):
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if not any(t in k for t in TIMING_KEYS)}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def digest(folder: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every regular file under ``folder`` (and its ``.alia`` sibling); a training
    run's JSON records (``result.json``, ``state.json``) are hashed without their measured durations."""
    out = {}
    for root in (folder, folder.with_name(folder.name + ".alia")):
        if not root.is_dir():
            continue
        for p in sorted(root.rglob("*")):
            if p.is_file():
                rel = str(p.relative_to(folder.parent))
                data = p.read_bytes()
                if p.name in ("result.json", "state.json"):
                    data = json.dumps(_without_timings(json.loads(data)), sort_keys=True).encode()
                out[rel] = hashlib.sha256(data).hexdigest()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="JSON file of the hashes")
    ap.add_argument("--compare", default=None, help="an earlier JSON file: report every difference")
    ap.add_argument("--only", nargs="*", default=None, help="run only these cases")
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "gifkit-smoke-hashes"),
                    help="scratch folder, emptied first (a fixed path: records that name a folder compare equal)")
    args = ap.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    hashes: dict[str, dict[str, str]] = {}
    shutil.rmtree(args.work, ignore_errors=True)
    Path(args.work).mkdir(parents=True)
    tmp = args.work
    if True:
        # gif-sd-tuned / sd-tuned need a tuned pipeline: a smoke `gifkit finetune` first
        tuned = Path(tmp) / "tuned"
        cases = dict(CASES)
        subprocess.run([sys.executable, "-m", "gifkit", "finetune", "--data", "smoke", "--out", str(tuned),
                        "--profile", "smoke", "--steps", "2"], check=True, env=env, capture_output=True)
        cases["gif-sd-tuned"] = ["--method", "gif-sd-tuned", "--model-id", str(tuned)]
        cases["sd-tuned"] = ["--method", "sd-tuned", "--model-id", str(tuned)]
        for name, extra in cases.items():
            if args.only and name not in args.only:
                continue
            out = Path(tmp) / name
            t = time.perf_counter()
            r = subprocess.run([sys.executable, "-m", "gifkit", "expand", *BASE, "--out", str(out), *extra],
                               env=env, capture_output=True, text=True)
            if r.returncode:
                print(f"{name}: exit {r.returncode}\n{r.stderr[-2000:]}", file=sys.stderr)
                hashes[name] = {"error": r.stderr[-500:]}
                continue
            hashes[name] = digest(out)
            print(f"{name}: {len(hashes[name])} files, {time.perf_counter() - t:.1f} s", flush=True)
            Path(args.out).write_text(json.dumps(hashes, indent=1, sort_keys=True) + "\n")  # after every case
    if args.compare:
        old = json.loads(Path(args.compare).read_text())
        bad = 0
        for name in sorted(set(old) | set(hashes)):
            a, b = old.get(name, {}), hashes.get(name, {})
            diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            if diff:
                bad += 1
                print(f"DIFFERENT {name}: {len(diff)} files, e.g. {diff[:4]}")
            else:
                print(f"same      {name}: {len(a)} files")
        print(f"{len(set(old) | set(hashes)) - bad} cases identical, {bad} differ")
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
