"""The speed levers' rows of benchmarks/gpu_check.py: GIF-SD with one lever on, beside its row with every lever off.

Each lever (gifkit.methods.speed, and the driver's overlap_io) is a row after the check's other rows, in the order
of its expected value: torch.compile of the U-Net and the guidance decoder (inductor on a GPU; the smoke mode's CPU
run uses the eager backend, which only traces), channels_last, fused QKV projections, the batched VAE encode, the
writer thread, and, beyond the paper, TAESD as the guidance decoder. A row runs the same seeds at the same batch
size as its baseline row (``gif-sd-b<largest batch size>``) and records ``speedup`` (the baseline's s/image over
its own) and how far its images are from the baseline's (``max_pixel_difference`` of the PNGs, 0-255, and the
fraction of pixels that differ at all), beside how far another batch size alone moves them
(``batching_max_pixel_difference``: gif-sd-b1 against gif-sd-b4, the rounding of batched kernels, which the
guidance's signed step and CFG 50 on random weights amplify). The TAESD row also records ``sign_agreement``: how often the guidance
step's signs agree with the step SD's own VAE gives (gifkit.methods.speed.sign_agreement) on the first seed.
docs/gpu.md says how these numbers decide the levers' defaults.
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["LEVERS", "COMPILE_S", "lever_rows", "compare_images", "lever_figures", "lever_summary", "lever_table"]

# name: the options of GIF-SD (or the driver's overlap_io) that the row switches on
LEVERS: dict[str, dict] = {
    "compile": {"torch_compile": None},  # the backend: inductor on a GPU, eager in the smoke mode
    "channels-last": {"channels_last": True},
    "fuse-qkv": {"fuse_qkv": True},
    "batched-encode": {"batched_encode": True},
    "overlap-io": {"overlap_io": True},
    "taesd": {"guidance_vae": "madebyollin/taesd"},  # beyond the paper: the guidance pass's decoder only
}
COMPILE_S = {"full": 180.0, "tiny": 30.0}  # budget estimate of compiling the U-Net and the decoder in the warm-up


def lever_rows(batch_size: int, compile_backend: str) -> list[dict]:
    """One GIF-SD row per lever at ``batch_size``, each naming its baseline row (``vs``)."""
    rows = []
    for name, options in LEVERS.items():
        options = {k: (compile_backend if k == "torch_compile" else v) for k, v in options.items()}
        row = {"name": f"lever-{name}", "method": "gif-sd", "kind": "lever", "batch_size": batch_size,
               "needs": ["sd", "clip"] + (["taesd"] if "guidance_vae" in options else []),
               "vs": f"gif-sd-b{batch_size}", "options": {k: v for k, v in options.items() if k != "overlap_io"},
               "overlap_io": bool(options.get("overlap_io"))}
        if "torch_compile" in options:
            row["extra_s"] = "compile"
        rows.append(row)
    return rows


def compare_images(a: Path, b: Path) -> dict:
    """The PNGs of two expansion folders with the same files: the largest difference of a pixel channel (0-255)
    and the fraction of channel values that differ; ``None`` values when the file lists differ or are empty."""
    import numpy as np
    from PIL import Image

    fa = sorted(p.relative_to(a) for p in Path(a).rglob("*.png"))
    fb = sorted(p.relative_to(b) for p in Path(b).rglob("*.png"))
    if not fa or fa != fb:
        return {"max_pixel_difference": None, "pixels_differing": None, "compared_images": 0}
    worst, differing, total = 0, 0, 0
    for rel in fa:
        x = np.asarray(Image.open(a / rel), dtype=np.int16)
        y = np.asarray(Image.open(b / rel), dtype=np.int16)
        d = np.abs(x - y)
        worst, differing, total = max(worst, int(d.max())), differing + int((d > 0).sum()), total + d.size
    return {"max_pixel_difference": worst, "pixels_differing": round(differing / total, 6), "compared_images": len(fa)}


def lever_figures(row: dict, entry: dict, rows_before: list[dict], work: Path, method=None, jobs=None) -> dict:
    """What a lever row adds to its timed figures: its baseline, the speed-up over it, how far its images are
    from the baseline's, and (TAESD) the sign agreement of the guidance step on ``jobs``."""
    out = {"vs": row["vs"], "lever": {**row["options"], **({"overlap_io": True} if row["overlap_io"] else {})}}
    base = next((r for r in rows_before if r["name"] == row["vs"] and r.get("status") == "ok"), None)
    if base is not None and entry.get("s_per_image"):
        out["speedup"] = round(base["s_per_image"] / entry["s_per_image"], 3)
        out["speedup_no_io"] = round(base["s_per_image_no_io"] / entry["s_per_image_no_io"], 3)
        out.update(compare_images(work / row["vs"] / "run", work / row["name"] / "run"))
        other = next((r["name"] for r in rows_before if r["name"].startswith("gif-sd-b") and r["name"] != row["vs"]
                      and r.get("status") == "ok"), None)
        if other is not None:  # the yardstick: how far batching alone moves the same images (another batch size)
            out["batching_max_pixel_difference"] = \
                compare_images(work / other / "run", work / row["vs"] / "run")["max_pixel_difference"]
    if method is not None and jobs and getattr(method.prior, "guidance_vae", None) is not None:
        from gifkit.methods.speed import sign_agreement

        out["sign_agreement"] = sign_agreement(method, jobs)
    return out


def lever_summary(rows: list[dict]) -> dict:
    """``{lever row: {speedup, max_pixel_difference, sign agreement fraction}}`` of the lever rows that ran."""
    out = {}
    for r in rows:
        if r["name"].startswith("lever-") and r.get("status") == "ok":
            out[r["name"]] = {"speedup": r.get("speedup"), "max_pixel_difference": r.get("max_pixel_difference"),
                              "batching_max_pixel_difference": r.get("batching_max_pixel_difference"),
                              **({"sign_agreement": r["sign_agreement"]["fraction"]} if "sign_agreement" in r else {})}
    return out


def lever_table(summary: dict) -> str:
    lines = ["| lever | speed-up | max pixel difference | batching's | sign agreement |", "|---|---|---|---|---|"]
    for name, v in summary.items():
        lines.append(f"| {name} | {v['speedup']} | {v['max_pixel_difference']} | "
                     f"{v['batching_max_pixel_difference']} | {v.get('sign_agreement', '')} |")
    return "\n".join(lines)
