"""The paper path on one GPU with full-size random-weight checkpoints (no downloads), row by row within a budget.

1. writes SD v1-4, CLIP ViT-B/32 (openai), MAE ViT-L/16 and Karlo at their real sizes with gifkit.testing into a
   temporary Hugging Face cache under their hub ids (HF_HUB_OFFLINE=1: nothing is downloaded; loading by hub id
   reads the snapshot's revision, so no weight file is hashed), each only when a row needs it;
2. runs the rows in the order of their value: GIF-SD and unguided SD at --batch-size 1 and 4 (the cifar100s preset:
   K = 5, 512 px, strength 0.9 of 50 DDIM steps, CFG 50), the T4 row (GIF-SD at batch 1 in fp16 with decoder
   checkpointing, the process capped to a T4's memory: "fits" means it ran without running out of memory), GIF-MAE,
   the paper-profile CLI end to end (`gifkit expand --profile paper --preset cifar100s`, default hub ids), GIF-DALLE
   (100 decoder steps), then the speed levers, one row each beside GIF-SD's row with every lever off
   (benchmarks/gpu_levers.py: torch.compile, channels_last, fused QKV, batched VAE encode, the writer thread, and
   TAESD as the guidance decoder, beyond the paper, with its sign agreement);
3. after every row rewrites <out>/<gpu-name>.json (atomically), so a run stopped anywhere keeps every finished row;
   with --budget-s a row whose estimated time no longer fits is skipped (and said so), not started;
4. removes its temporary folder and prints a table.

Each row records: images, dtype, decoder checkpointing, the denoiser steps actually run (counted), the variants
flagged (non-finite score: left unperturbed), seconds per image with and without writing the PNGs, split into
prior / guidance / decode / I/O, peak allocated and reserved GPU memory, and the achieved TFLOP/s against the FLOPs
per image that benchmarks/flops.py counted (benchmarks/flops.json). The goals: GIF-SD <= 0.25 s per image on an
H100/H200-class GPU, guidance share (gif-sd - sd) / sd <= 25 %, and the T4 row fitting.

On a machine without network or package index (docs/gpu.md): carry the wheels of scripts/gpu_wheels.sh, then
    sh scripts/gpu_check.sh --out DIR --budget-s 420      # installs them with --target, runs this script
    python benchmarks/gpu_check.py --smoke --out DIR      # tiny checkpoints, 2 steps, CPU: checks the script itself
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script with a bare interpreter: the repository's gifkit
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_levers import COMPILE_S, lever_figures, lever_rows, lever_summary, lever_table  # noqa: E402

K = 5
PRESET = "cifar100s"
# A T4 has 15,360 MiB; the CUDA context and the cuBLAS / cuDNN workspaces take about 0.5 GiB of it outside
# PyTorch's allocator (an assumption, not measured here), so the T4 row caps the allocator at 14.5 GiB.
T4_ALLOCATOR_GIB = 14.5
# budget estimates before anything is measured: seconds to write each checkpoint kind, rate of the model work
WRITE_S = {"full": {"sd": 60, "clip": 10, "mae": 20, "unclip": 90, "taesd": 2},
           "tiny": {"sd": 5, "clip": 2, "mae": 2, "unclip": 5, "taesd": 1}}
ASSUMED_TFLOPS = {"cuda": 100.0, "cpu": 0.05}
TINY_S_PER_IMAGE = 1.0  # the smoke mode's tiny checkpoints on a CPU, before a row has measured its method
LOAD_S = {"full": 30.0, "tiny": 10.0}
CLI_S = {"full": 120.0, "tiny": 60.0}


def plan(batch_sizes: list[int], skip: list[str], compile_backend: str = "inductor") -> list[dict]:
    """The rows in the order of their value (what runs first when the budget is short); ``--skip lever`` leaves
    every lever row out."""
    rows = []
    for bs in batch_sizes:
        rows += [{"name": f"{m}-b{bs}", "method": m, "batch_size": bs, "needs": ["sd", "clip"]} for m in ("gif-sd", "sd")]
    rows.append({"name": "t4", "method": "gif-sd", "batch_size": 1, "needs": ["sd", "clip"], "dtype": "fp16",
                 "grad_checkpointing": True, "cap_gib": T4_ALLOCATOR_GIB})
    rows.append({"name": "gif-mae", "method": "gif-mae", "batch_size": max(batch_sizes), "needs": ["mae", "clip"]})
    rows.append({"name": "cli", "method": "gif-sd", "kind": "cli", "batch_size": 4, "needs": ["sd", "clip"]})
    rows.append({"name": "gif-dalle", "method": "gif-dalle", "batch_size": max(batch_sizes), "needs": ["unclip"]})
    rows += lever_rows(max(batch_sizes), compile_backend)
    return [r for r in rows if r["name"] not in skip and r["method"] not in skip and r.get("kind") not in skip]


def estimate_s(row: dict, state: dict) -> float:
    """Seconds ``row`` is expected to take: checkpoints still to write, loading, and its images (warm-up batch
    included) at the seconds per image measured for its method so far, else at its FLOPs / an assumed rate."""
    size, dev = state["size"], state["device_type"]
    write = sum(WRITE_S[size][k] for k in row["needs"] if k not in state["planted"])
    if row.get("kind") == "cli":
        return write + CLI_S[size]
    spi = state["s_per_image"].get(row["method"])
    if spi is None and size == "tiny":
        spi = TINY_S_PER_IMAGE
    elif spi is None:
        tflop = state["tflop"](row["method"]) if state.get("tflop") else 100.0
        spi = tflop / ASSUMED_TFLOPS[dev]
    if row.get("grad_checkpointing") or row.get("dtype") == "fp16":
        spi *= 1.5  # recomputation, and fp16 where the rows before ran bf16
    images = (state["seeds"] + row["batch_size"]) * K
    extra = COMPILE_S[size] if row.get("extra_s") == "compile" else 0.0
    return write + state.get("load_s", LOAD_S[size]) + extra + images * spi


def denoiser(prior):
    """The module that runs once per sampler step (SD's U-Net, unCLIP's decoder), or None (MAE)."""
    pipe = getattr(prior, "pipe", None)
    return getattr(pipe, "unet", None) or getattr(pipe, "decoder", None)


def step_counter(prior):
    """``(calls, undo)``: a counter of the denoiser's calls (None without a denoiser) and what removes it. A forward
    pre-hook; on a compiled U-Net the scheduler's steps instead (a hook there would enter the compiled graph and
    make it recompile), one per U-Net call (CFG runs both halves in one call)."""
    net, calls = denoiser(prior), [0]
    if net is None:
        return None, lambda: None
    if getattr(net, "_compiled_call_impl", None) is not None:
        scheduler = prior.pipe.scheduler
        step = scheduler.step

        def counted(*args, **kwargs):
            calls[0] += 1
            return step(*args, **kwargs)

        scheduler.step = counted
        return calls, lambda: vars(scheduler).pop("step", None)
    hook = net.register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls, hook.remove


def build_and_expand(method, dataset, names, device, *, batch_size, overlap_io=False, **options):
    """The one place gpu_check builds a method and expands with it: ``(method, run)``, where
    ``run(out, limit)`` expands the first ``limit`` seeds K times into ``out`` and returns the ExpandResult."""
    from gifkit.methods import create_method, expand

    m = create_method(method, names, profile="paper", device=device, **options)

    def run(out, limit):
        return expand(m, dataset, out, ratio=K, seed=0, batch_size=batch_size, limit=limit, progress=False,
                      overlap_io=overlap_io)

    return m, run


def _memory(device) -> dict:
    import torch

    if device.type != "cuda":
        import resource

        return {"peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20, 2)}
    return {"peak_allocated_gib": round(torch.cuda.max_memory_allocated(device) / 2 ** 30, 2),
            "peak_reserved_gib": round(torch.cuda.max_memory_reserved(device) / 2 ** 30, 2)}


def _fresh(device) -> None:
    import gc

    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def figures(r, seconds: float, flops_total: float | None) -> dict:
    """A timed expansion's figures per image: with and without I/O, the parts, and the achieved TFLOP/s."""
    n = max(r.written, 1)
    no_io = (seconds - r.timings.get("io", 0.0)) / n
    out = {"images": r.written, "flagged": r.flagged, "s_per_image": round(seconds / n, 4),
           "s_per_image_no_io": round(no_io, 4), **{k: round(v / n, 4) for k, v in r.timings.items()}}
    if flops_total:
        out["tflop_per_image"] = round(flops_total / 1e12, 3)
        out["achieved_tflops"] = round(flops_total / 1e12 / no_io, 2) if no_io > 0 else None
    return out


def expand_row(row: dict, ctx: dict) -> dict:
    """Build the row's method, run one warm-up batch, then time ``seeds`` seeds x K."""
    import torch

    import flops as flop_model

    device, work = ctx["device"], ctx["work"]
    kwargs = {"gif-sd": {"steps": ctx["steps"], "preset": PRESET}, "sd": {"steps": ctx["steps"], "preset": PRESET},
              "gif-dalle": {"steps": ctx["dalle_steps"]}}.get(row["method"], {})
    kwargs.update({k: row[k] for k in ("dtype", "grad_checkpointing") if k in row}, **row.get("options", {}))
    cap = row.get("cap_gib") if device.type == "cuda" else None
    if cap:
        total = torch.cuda.get_device_properties(device).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, cap * 2 ** 30 / total), device)
    out = {"cap_gib": cap}
    try:
        _fresh(device)
        t = time.perf_counter()
        method, run = build_and_expand(row["method"], ctx["dataset"], ctx["names"], device,
                                       batch_size=row["batch_size"], overlap_io=row.get("overlap_io", False), **kwargs)
        prior = getattr(method, "prior", None)
        out["load_s"] = round(time.perf_counter() - t, 1)
        if device.type == "cuda":
            out["weights_gib"] = round(torch.cuda.memory_allocated(device) / 2 ** 30, 2)
        out.update(dtype=str(getattr(prior, "dtype", "")).replace("torch.", ""),
                   checkpointing=bool(getattr(prior, "checkpointing", False)))
        t = time.perf_counter()
        run(work / row["name"] / "warmup", row["batch_size"])  # kernels, allocator, cuDNN choices: not timed
        out["warmup_s"] = round(time.perf_counter() - t, 1)
        calls, uncount = step_counter(prior)
        _fresh(device)
        t = time.perf_counter()
        r = run(work / row["name"] / "run", ctx["seeds"])
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - t
        uncount()
        batches = math.ceil(ctx["seeds"] / row["batch_size"])
        out["steps_run"] = calls[0] / batches if calls else None
        model = None
        if ctx["flops"] is not None and not row.get("options", {}).get("guidance_vae"):  # TAESD: not the counted path
            model = flop_model.per_image(ctx["flops"], row["method"], int(out["steps_run"] or 0),
                                         checkpointing=out["checkpointing"])["total"]
        out.update(figures(r, seconds, model), status="ok", **_memory(device))
        if row.get("kind") == "lever":
            out.update(lever_figures(row, out, ctx["rows"], work, method, _first_seed_jobs(ctx)))
        del prior, run, method
    except torch.cuda.OutOfMemoryError as e:
        out.update(status="oom", error=str(e).splitlines()[0][:300], **_memory(device))
    except Exception as e:  # noqa: BLE001 - one broken row must not cost the rows after it
        out.update(status="error", error=f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}")
    finally:
        if cap:
            torch.cuda.set_per_process_memory_fraction(1.0, device)
        _fresh(device)
    if cap:
        out["fits"] = out["status"] == "ok"
    return out


def _first_seed_jobs(ctx) -> list:
    """The K jobs of the first seed (what the TAESD row's sign agreement runs on)."""
    from gifkit.core.prior import Job

    image, label = ctx["dataset"][0]
    return [Job(0, v, image, label, ctx["names"][label], key=(0, 0, v)) for v in range(K)]


def subprocess_env(environ=None) -> dict:
    """The environment of the CLI row's subprocess: PYTHONPATH kept (where the carried wheels are installed) with
    the repository put first."""
    environ = dict(os.environ if environ is None else environ)
    environ["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [environ.get("PYTHONPATH")] if p])
    return environ


def module_paths(names=("gifkit", "diffusers", "open_clip", "transformers", "torch")) -> dict:
    """Where each library was imported from (the carried wheels' --target folder, or the machine's own)."""
    import importlib

    out = {}
    for name in names:
        try:
            out[name] = str(Path(importlib.import_module(name).__file__).parent)
        except ImportError as e:
            out[name] = f"not importable: {e}"
    return out


def cli_row(row: dict, ctx: dict) -> dict:
    """``gifkit expand --profile paper`` in a subprocess on the default hub ids (the planted cache)."""
    device = ctx["device"]
    env = subprocess_env()
    cmd = [sys.executable, "-m", "gifkit", "expand", "--data", "smoke", "--out", str(ctx["work"] / "cli"), "--method",
           "gif-sd", "--profile", "paper", "--preset", PRESET, "--limit", "2", "--no-progress", "--device",
           device.type, "--steps", str(ctx["steps"])]
    t = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = res.stdout.strip().splitlines() or [res.stderr.strip()[-300:]]
    return {"status": "ok" if res.returncode == 0 else "error", "command": " ".join(cmd[1:]),
            "returncode": res.returncode, "seconds": round(time.perf_counter() - t, 1), "summary": lines[-1]}


def _lever(row: dict) -> bool:
    return row["name"].startswith("lever-")


def goals(rows: list[dict]) -> dict:
    """The goals from the rows that ran: best GIF-SD s/image, guidance share (gif - sd) / sd at the same batch
    size (without I/O), and whether the T4 row fit."""
    ok = {r["name"]: r for r in rows if r.get("status") == "ok" and "s_per_image_no_io" in r}
    out = {}
    gif = [r for r in ok.values() if r["method"] == "gif-sd" and r["name"] != "t4" and not _lever(r)]
    if gif:
        best = min(gif, key=lambda r: r["s_per_image"])
        out.update(gif_sd_s_per_image=best["s_per_image"], gif_sd_batch_size=best["batch_size"],
                   gif_sd_le_0_25s=best["s_per_image"] <= 0.25)
    shares = {}
    for r in gif:
        sd = ok.get(f"sd-b{r['batch_size']}")
        if sd:
            shares[r["batch_size"]] = round((r["s_per_image_no_io"] - sd["s_per_image_no_io"])
                                            / sd["s_per_image_no_io"], 3)
    if shares:
        out["guidance_share"] = shares
        out["guidance_le_25pct"] = min(shares.values()) <= 0.25
    t4 = next((r for r in rows if r["name"] == "t4" and "fits" in r), None)
    if t4:
        out.update(t4_fits=t4["fits"], t4_peak_reserved_gib=t4.get("peak_reserved_gib"))
    return out


def best_per_method(rows: list[dict]) -> dict:
    """``{method: fastest s/image}`` over the rows that ran at the default settings (the T4 and lever rows left
    out)."""
    out = {}
    for r in rows:
        if r.get("status") == "ok" and "s_per_image" in r and r["name"] != "t4" and not _lever(r):
            out[r["method"]] = min(out.get(r["method"], r["s_per_image"]), r["s_per_image"])
    return out


def table(report: dict) -> str:
    head = "| row | batch | dtype | ckpt | steps | s / image | no I/O | prior | guidance | decode | TFLOP/s | peak GiB | flagged |"
    lines = [f"{report['gpu']} ({report['environment']['versions'].get('torch')})", head, "|" + "---|" * 13]
    for r in report["rows"]:
        if r.get("status") != "ok" or "s_per_image" not in r:
            lines.append(f"| {r['name']} | {r.get('status')}: {r.get('reason') or r.get('error') or r.get('summary', '')} |")
            continue
        peak = r.get("peak_reserved_gib", r.get("peak_rss_gib"))
        lines.append(f"| {r['name']} | {r['batch_size']} | {r['dtype']} | {'on' if r['checkpointing'] else 'off'} | "
                     f"{r['steps_run']} | {r['s_per_image']:.3f} | {r['s_per_image_no_io']:.3f} | {r['prior']:.3f} | "
                     f"{r['guidance']:.3f} | {r['decode']:.3f} | {r.get('achieved_tflops')} | {peak} | {r['flagged']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="tiny checkpoints, 2 DDIM steps, CPU: a dry run")
    p.add_argument("--device", default=None)
    p.add_argument("--out", default=str(ROOT / "results" / "gpu"), help="folder of <gpu-name>.json")
    p.add_argument("--budget-s", type=float, default=None, help="skip the rows that would end after this many "
                   "seconds from the start (estimated from the rows before)")
    p.add_argument("--seeds", type=int, default=None, help="seed images per timed run (default 8; smoke 2)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=None, help="GIF-SD / SD batch sizes (default 1 4)")
    p.add_argument("--skip", nargs="*", default=[], help="rows or methods to leave out (t4, gif-mae, cli, gif-dalle, ...)")
    p.add_argument("--compile-backend", default=None, choices=("inductor", "aot_eager", "eager"),
                   help="torch.compile backend of the compile lever's row (default inductor; smoke: eager)")
    p.add_argument("--flops", default=str(Path(__file__).with_name("flops.json")),
                   help="the FLOP counts of benchmarks/flops.py (smoke: counted on the tiny configs)")
    a = p.parse_args(argv)
    t_all = time.perf_counter()

    import torch

    device = torch.device(a.device or ("cuda" if torch.cuda.is_available() and not a.smoke else "cpu"))
    if device.type != "cuda" and not a.smoke:
        print("gpu_check needs a CUDA GPU (or --smoke for a CPU dry run)", file=sys.stderr)
        return 2
    size = "tiny" if a.smoke else "full"
    seeds = a.seeds or (2 if a.smoke else 8)
    batch_sizes = a.batch_sizes or ([1, 2] if a.smoke else [1, 4])
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    out_file = Path(a.out) / (re.sub(r"[^A-Za-z0-9_.-]+", "-", gpu).strip("-") + ("-smoke" if a.smoke else "") + ".json")
    work = Path(tempfile.mkdtemp(prefix="gifkit-gpu-check-"))
    cache = work / "hf-cache"
    os.environ.update(HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(cache))  # read when the libraries below import
    try:
        return _run(a, device, size, seeds, batch_sizes, gpu, out_file, work, cache, t_all)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(a, device, size, seeds, batch_sizes, gpu, out_file, work, cache, t_all) -> int:
    import flops as flop_model
    from gifkit import testing
    from gifkit.data import load_dataset
    from gifkit.io.files import write_json
    from gifkit.io.runs import run_environment

    if a.smoke:  # counted on the tiny configs when the first row runs (a budget that skips every row needs none)
        counts = _Lazy(lambda: flop_model.all_counts("tiny"))
    else:
        counts = json.loads(Path(a.flops).read_text())["components"] if Path(a.flops).is_file() else None
    dataset, names = load_dataset("smoke", n_per_class=max(1, (seeds + 3) // 4))
    ctx = {"device": device, "work": work, "dataset": dataset, "names": names, "seeds": seeds, "flops": counts,
           "steps": 2 if a.smoke else 50, "dalle_steps": 4 if a.smoke else 100}
    steps_run = {"gif-sd": flop_model.steps_run(ctx["steps"], flop_model.SD_STRENGTH), "gif-mae": 0, "gif-dalle": ctx["dalle_steps"]}
    state = {"size": size, "device_type": device.type, "planted": {}, "s_per_image": {}, "seeds": seeds,
             "tflop": (lambda m: flop_model.per_image(counts, m, steps_run.get(m, steps_run["gif-sd"]))["total"] / 1e12)
             if counts and not a.smoke else None}
    report = {"gpu": gpu, "device": str(device), "size": size, "smoke": a.smoke, "k": K, "preset": PRESET,
              "ddim_steps": ctx["steps"], "budget_s": a.budget_s, "seeds_per_row": seeds,
              "environment": run_environment(device), "driver": _driver(), "modules": module_paths(), "flops_source": None if a.smoke else a.flops,
              "checkpoint_write_s": state["planted"], "rows": [], "goals": {}}
    ctx["rows"] = report["rows"]  # the lever rows compare with the rows before them
    for row in plan(batch_sizes, a.skip, a.compile_backend or ("eager" if a.smoke else "inductor")):
        elapsed = time.perf_counter() - t_all
        need = estimate_s(row, state)
        entry = {"name": row["name"], "method": row["method"], "batch_size": row["batch_size"], "k": K}
        if a.budget_s is not None and elapsed + need > a.budget_s:
            entry.update(status="skipped", reason=f"budget: needs ~{need:.0f} s, {a.budget_s - elapsed:.0f} s left")
        else:
            for kind in row["needs"]:
                if kind not in state["planted"]:
                    t = time.perf_counter()
                    testing.plant_hub_cache(kind, cache, size, device=device if device.type == "cuda" else None)
                    state["planted"][kind] = round(time.perf_counter() - t, 1)
            entry.update(cli_row(row, ctx) if row.get("kind") == "cli" else expand_row(row, ctx))
            if entry.get("status") == "ok" and "s_per_image" in entry:
                state["s_per_image"].setdefault(row["method"], entry["s_per_image"])
                state["load_s"] = max(state.get("load_s", 0.0), entry["load_s"] + entry["warmup_s"] / 2)
        entry["estimate_s"] = round(need, 1)
        report["rows"].append(entry)
        report["goals"] = goals(report["rows"])
        report["seconds_per_image"] = best_per_method(report["rows"])  # what gifkit.experiments.costs reads
        report["levers"] = lever_summary(report["rows"])
        report["total_s"] = round(time.perf_counter() - t_all, 1)
        write_json(out_file, report)  # atomic: a run stopped later keeps this row
        print(json.dumps(entry), flush=True)
    print(f"\nwritten {out_file} in {report['total_s']:.0f} s\n\n{table(report)}")
    if report.get("levers"):
        print("\n" + lever_table(report["levers"]))
    return 0


class _Lazy(dict):
    """A dict filled by ``fill()`` the first time it is read."""

    def __init__(self, fill):
        super().__init__()
        self._fill = fill

    def __getitem__(self, key):
        if not len(self):
            self.update(self._fill())
        return super().__getitem__(key)

    def __bool__(self):
        return True


def _driver() -> str | None:
    try:
        res = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
        return res.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


if __name__ == "__main__":
    sys.exit(main())
