"""benchmarks/flops.py and benchmarks/gpu_check.py: FLOPs counted against a hand count, the per-image arithmetic,
the committed counts, the check's figures, budget and row order, and the check itself on tiny checkpoints (smoke),
also as a borrowed GPU machine runs it: wheels downloaded, installed with --target into a fresh folder."""
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)
    spec.loader.exec_module(module)
    return module


flops = _load("flops")
gpu_check = _load("gpu_check")


def test_flop_counter_matches_a_hand_count_of_the_tiny_clip():
    """The tiny CLIP image tower (32 px, patch 8, width 64, 2 layers, 1 head, MLP x4, embed 32): 17 tokens."""
    c = flops.clip_counts("tiny")
    tokens, width, embed = 17, 64, 32
    conv = 2 * (3 * 8 * 8) * width * 16  # patch embedding: 16 patches
    linear = 2 * tokens * width * 3 * width + 2 * tokens * width * width + 2 * 2 * tokens * width * 4 * width
    attention = 2 * 2 * tokens * tokens * width  # Q K^T and A V
    forward = conv + 2 * (linear + attention) + 2 * width * embed  # + the projection of the class token
    # backward to the image, weights frozen: one product per conv / linear, two per attention product
    backward = conv + 2 * (linear + 2 * attention) + 2 * width * embed
    assert c == {"clip_image": forward, "clip_image_grad": forward + backward}
    assert forward == 3_887_616


def test_per_image_composition_by_hand():
    c = {"sd_unet_pass": 10, "sd_text_encoder": 1, "sd_vae_encode": 3, "sd_vae_decode": 5, "sd_vae_decode_grad": 11,
         "sd_vae_decode_grad_checkpointing": 16, "clip_image": 0.5, "clip_image_grad": 2, "mae_encoder": 7,
         "mae_decoder": 4, "mae_decoder_grad": 9, "unclip_decoder_pass": 6, "unclip_text_encoder": 1,
         "unclip_image_encoder": 2}
    assert flops.steps_run(50, 0.9) == 45 and flops.steps_run(2, 0.9) == 1
    gif = flops.per_image(c, "gif-sd", 45)
    # 90 U-Net passes, 2 prompts, encode, decode with grad + CLIP with grad, decode, CLIP on the image + seed / 5
    assert gif["total"] == 900 + 2 + 3 + (11 + 2) + 5 + 0.5 * 1.2
    assert flops.per_image(c, "sd", 45)["total"] == gif["total"] - 13
    assert flops.per_image(c, "gif-sd", 45, checkpointing=True)["guidance"] == 16 + 2
    assert flops.per_image(c, "gif-mae", 0)["total"] == 7 + 9 + 2 + 4 + 0.6
    assert flops.per_image(c, "gif-dalle", 100)["total"] == 1200 + 2 + 2 + 2 * 1.2
    with pytest.raises(ValueError, match="no FLOP model"):
        flops.per_image(c, "randaugment", 1)


def test_committed_counts_are_consistent_and_quoted_in_the_docs():
    """benchmarks/flops.json's per-image table follows from its component counts, and docs/gpu.md quotes it."""
    report = json.loads((BENCH / "flops.json").read_text())
    assert report["size"] == "full"
    assert report["per_image_tflop"] == flops.summary(report["components"])
    gif, sd = report["per_image_tflop"]["gif-sd"], report["per_image_tflop"]["sd"]
    assert 75 < sd["total"] < gif["total"] < 90  # SD v1-4 at 512 px: ~0.8 TFLOP per U-Net pass, 90 passes
    doc = (ROOT / "docs" / "gpu.md").read_text()
    for method in ("gif-sd", "sd", "gif-mae", "gif-dalle"):
        total = report["per_image_tflop"][method]["total"]
        assert re.search(rf"\| {re.escape(method)} \| {total:.1f} \|", doc), f"docs/gpu.md lacks {method} {total:.1f}"


@pytest.mark.slow
def test_committed_counts_are_what_the_script_counts():
    assert flops.all_counts("full") == json.loads((BENCH / "flops.json").read_text())["components"]


def test_rows_come_in_the_order_of_their_value():
    names = [r["name"] for r in gpu_check.plan([1, 4], [])]
    levers = ["lever-compile", "lever-channels-last", "lever-fuse-qkv", "lever-batched-encode", "lever-overlap-io",
              "lever-taesd"]
    assert names == ["gif-sd-b1", "sd-b1", "gif-sd-b4", "sd-b4", "t4", "gif-mae", "cli", "gif-dalle", *levers]
    t4 = gpu_check.plan([1, 4], [])[4]
    assert (t4["method"], t4["batch_size"], t4["dtype"], t4["grad_checkpointing"]) == ("gif-sd", 1, "fp16", True)
    assert [r["name"] for r in gpu_check.plan([1], ["t4", "gif-dalle", "cli", "lever"])] == \
        ["gif-sd-b1", "sd-b1", "gif-mae"]


def test_lever_rows_each_switch_one_lever_beside_the_largest_batch():
    rows = {r["name"]: r for r in gpu_check.plan([1, 4], [], compile_backend="eager")}
    levers = [r for r in rows.values() if r["name"].startswith("lever-")]
    assert all(r["method"] == "gif-sd" and r["batch_size"] == 4 and r["vs"] == "gif-sd-b4" for r in levers)
    assert rows["lever-compile"]["options"] == {"torch_compile": "eager"}
    assert rows["lever-overlap-io"]["options"] == {} and rows["lever-overlap-io"]["overlap_io"] is True
    assert rows["lever-taesd"]["options"] == {"guidance_vae": "madebyollin/taesd"}
    assert rows["lever-taesd"]["needs"] == ["sd", "clip", "taesd"]
    assert sum(r["overlap_io"] for r in levers) == 1 and all(len(r["options"]) <= 1 for r in levers)
    state = {"size": "full", "device_type": "cuda", "planted": {"sd": 1, "clip": 1}, "s_per_image": {"gif-sd": 0.5},
             "seeds": 8, "load_s": 20.0}
    assert gpu_check.estimate_s(rows["lever-compile"], state) == pytest.approx(20 + 180 + 60 * 0.5)
    assert gpu_check.estimate_s(rows["lever-taesd"], state) == pytest.approx(2 + 20 + 60 * 0.5)


def test_lever_figures_by_hand(tmp_path):
    from PIL import Image

    import gpu_levers

    def save(row, name, value):
        d = tmp_path / row / "run" / "0"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((4, 4, 3), value, np.uint8)).save(d / name)

    for name in ("a.png", "b.png"):
        save("gif-sd-b4", name, 100)
        save("gif-sd-b1", name, 100)
    save("lever-x", "a.png", 100)
    save("lever-x", "b.png", 103)  # 48 channel values of 96 differ, by 3
    save("gif-sd-b1", "b.png", 101)
    assert gpu_levers.compare_images(tmp_path / "gif-sd-b4" / "run", tmp_path / "lever-x" / "run") == \
        {"max_pixel_difference": 3, "pixels_differing": 0.5, "compared_images": 2}
    assert gpu_levers.compare_images(tmp_path / "gif-sd-b4", tmp_path / "nothing")["max_pixel_difference"] is None
    rows = [{"name": "gif-sd-b1", "status": "ok"},
            {"name": "gif-sd-b4", "status": "ok", "s_per_image": 0.3, "s_per_image_no_io": 0.24}]
    row = {"name": "lever-x", "vs": "gif-sd-b4", "options": {"fuse_qkv": True}, "overlap_io": False}
    out = gpu_levers.lever_figures(row, {"s_per_image": 0.25, "s_per_image_no_io": 0.2}, rows, tmp_path)
    assert out["speedup"] == 1.2 and out["speedup_no_io"] == 1.2 and out["lever"] == {"fuse_qkv": True}
    assert out["max_pixel_difference"] == 3 and out["batching_max_pixel_difference"] == 1
    entry = {"name": "lever-x", "status": "ok", **out}
    assert gpu_levers.lever_summary(rows + [entry]) == {"lever-x": {"speedup": 1.2, "max_pixel_difference": 3,
                                                                    "batching_max_pixel_difference": 1}}
    assert gpu_check.best_per_method([{**entry, "method": "gif-sd", "s_per_image": 0.25}]) == {}  # not a default


def test_estimate_uses_measured_seconds_then_flops():
    state = {"size": "full", "device_type": "cuda", "planted": {"sd": 1.0}, "s_per_image": {}, "seeds": 8,
             "tflop": lambda m: 80.0, "load_s": 20.0}
    row = {"name": "gif-sd-b4", "method": "gif-sd", "batch_size": 4, "needs": ["sd", "clip"]}
    # clip still to write (10 s), load 20 s, (8 + 4) seeds x 5 images at 80 TFLOP / 100 TFLOP/s
    assert gpu_check.estimate_s(row, state) == pytest.approx(10 + 20 + 60 * 0.8)
    state["s_per_image"]["gif-sd"] = 0.5
    state["planted"]["clip"] = 1.0
    assert gpu_check.estimate_s(row, state) == pytest.approx(20 + 60 * 0.5)


def test_figures_and_goals_by_hand():
    r = SimpleNamespace(written=4, flagged=1, timings={"prior": 4.0, "guidance": 2.0, "decode": 1.0, "io": 2.0})
    f = gpu_check.figures(r, 10.0, 8e12)
    assert f["s_per_image"] == 2.5 and f["s_per_image_no_io"] == 2.0 and f["io"] == 0.5 and f["flagged"] == 1
    assert f["achieved_tflops"] == 4.0 and f["tflop_per_image"] == 8.0
    rows = [{"name": "gif-sd-b1", "method": "gif-sd", "batch_size": 1, "status": "ok", "s_per_image": 0.30,
             "s_per_image_no_io": 0.25},
            {"name": "sd-b1", "method": "sd", "batch_size": 1, "status": "ok", "s_per_image": 0.22,
             "s_per_image_no_io": 0.20},
            {"name": "gif-sd-b4", "method": "gif-sd", "batch_size": 4, "status": "ok", "s_per_image": 0.24,
             "s_per_image_no_io": 0.22},
            {"name": "t4", "method": "gif-sd", "batch_size": 1, "status": "oom", "fits": False}]
    g = gpu_check.goals(rows)
    assert g["gif_sd_s_per_image"] == 0.24 and g["gif_sd_batch_size"] == 4 and g["gif_sd_le_0_25s"]
    assert g["guidance_share"] == {1: 0.25} and g["guidance_le_25pct"]  # (0.25 - 0.20) / 0.20; no sd-b4 row
    assert g["t4_fits"] is False
    assert gpu_check.best_per_method(rows) == {"gif-sd": 0.24, "sd": 0.22}


def test_costs_read_a_gpu_report_and_leave_a_smoke_report_out(tmp_path):
    from gifkit.experiments.costs import measured_gpu_figures

    report = {"gpu": "NVIDIA H200", "smoke": False, "seconds_per_image": {"gif-sd": 0.24, "sd": 0.22}}
    (tmp_path / "NVIDIA-H200.json").write_text(json.dumps(report))
    (tmp_path / "cpu-smoke.json").write_text(json.dumps({**report, "gpu": "cpu", "smoke": True}))
    assert measured_gpu_figures(tmp_path) == {"NVIDIA H200": {"gif-sd": 0.24, "sd": 0.22}}


def test_cli_row_keeps_pythonpath():
    env = gpu_check.subprocess_env({"PYTHONPATH": "/tmp/site", "X": "1"})
    assert env["PYTHONPATH"] == os.pathsep.join([str(ROOT), "/tmp/site"]) and env["X"] == "1"
    assert gpu_check.subprocess_env({})["PYTHONPATH"] == str(ROOT)


def _run_check(args, tmp_path, python=sys.executable, script=None, env=None):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    cmd = ["sh", str(script)] if script else [python, str(BENCH / "gpu_check.py")]
    env = {**os.environ, "TMPDIR": str(tmp), "HF_HUB_OFFLINE": "1", **(env or {})}
    r = subprocess.run(cmd + args + ["--out", str(tmp_path / "out")], capture_output=True, text=True, env=env,
                       cwd=tmp_path, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert not list(tmp.glob("gifkit-gpu-check-*")), "the temporary folder was left behind"
    return json.loads((tmp_path / "out" / "cpu-smoke.json").read_text())


def test_budget_skips_the_rows_that_do_not_fit(tmp_path):
    report = _run_check(["--smoke", "--budget-s", "1"], tmp_path)
    assert [r["name"] for r in report["rows"]] == [r["name"] for r in gpu_check.plan([1, 2], [])]
    assert all(r["status"] == "skipped" and r["reason"].startswith("budget") for r in report["rows"])
    assert report["checkpoint_write_s"] == {} and report["goals"] == {}


def _check_smoke_rows(report):
    rows = {r["name"]: r for r in report["rows"]}
    assert rows["gif-sd-b1"]["status"] == "ok", rows["gif-sd-b1"]
    gif = rows["gif-sd-b1"]
    assert gif["images"] == 5 and gif["flagged"] == 0 and gif["steps_run"] == 1  # int(2 x 0.9) DDIM steps
    assert gif["dtype"] == "float32" and gif["checkpointing"] is False
    assert gif["s_per_image"] >= gif["s_per_image_no_io"] > 0 and gif["achieved_tflops"] is not None
    if "t4" in rows:
        t4 = rows["t4"]
        assert t4["status"] == "ok" and t4["dtype"] == "float16" and t4["checkpointing"] is True
        assert t4["cap_gib"] is None and "fits" not in t4  # no GPU: the memory cap applies on CUDA only
    assert rows["cli"]["status"] == "ok" and rows["cli"]["returncode"] == 0
    assert {"sd", "clip"} <= report["checkpoint_write_s"].keys()
    return rows


def test_smoke_check_writes_every_row(tmp_path):
    report = _run_check(["--smoke", "--seeds", "1", "--batch-sizes", "1", "--skip", "sd-b1", "t4", "gif-mae",
                         "gif-dalle", "lever"], tmp_path)
    assert [r["name"] for r in report["rows"]] == ["gif-sd-b1", "cli"]
    assert report["seconds_per_image"] == {"gif-sd": report["rows"][0]["s_per_image"]}
    assert report["checkpoint_write_s"].keys() == {"sd", "clip"}  # what the rows that ran need, nothing more
    _check_smoke_rows(report)


def _check_lever_rows(rows):
    for name in ("lever-overlap-io", "lever-taesd"):
        assert rows[name]["status"] == "ok" and rows[name]["vs"] == "gif-sd-b1" and rows[name]["speedup"] > 0, rows[name]
    assert rows["lever-overlap-io"]["max_pixel_difference"] == 0 and rows["lever-overlap-io"]["io_thread"] > 0
    agreement = rows["lever-taesd"]["sign_agreement"]  # the first seed's K = 5 variants, 4 channels x (z, b)
    assert agreement["entries"] == 5 * 4 * 2 and agreement["images"] == 5 and agreement["max_f_difference"] == 0
    assert rows["lever-taesd"]["lever"] == {"guidance_vae": "madebyollin/taesd"}


def test_smoke_check_runs_the_lever_rows(tmp_path):
    """Two lever rows on the CPU (the writer thread; TAESD with its sign agreement); `slow`: all of them."""
    report = _run_check(["--smoke", "--seeds", "1", "--batch-sizes", "1", "--skip", "sd-b1", "t4", "gif-mae",
                         "gif-dalle", "cli", "lever-compile", "lever-channels-last", "lever-fuse-qkv",
                         "lever-batched-encode"], tmp_path)
    rows = {r["name"]: r for r in report["rows"]}
    assert list(rows) == ["gif-sd-b1", "lever-overlap-io", "lever-taesd"]
    _check_lever_rows(rows)
    assert report["seconds_per_image"] == {"gif-sd": rows["gif-sd-b1"]["s_per_image"]}  # levers are no default
    assert set(report["levers"]) == {"lever-overlap-io", "lever-taesd"}
    assert report["checkpoint_write_s"].keys() == {"sd", "clip", "taesd"}


@pytest.mark.slow
def test_smoke_check_runs_every_lever_row(tmp_path):
    report = _run_check(["--smoke", "--seeds", "1", "--batch-sizes", "1", "--skip", "sd-b1", "t4", "gif-mae",
                         "gif-dalle", "cli"], tmp_path)
    rows = {r["name"]: r for r in report["rows"]}
    assert all(rows[r["name"]]["status"] == "ok" for r in gpu_check.lever_rows(1, "eager")), rows
    _check_lever_rows(rows)
    assert rows["lever-compile"]["lever"] == {"torch_compile": "eager"}
    for name in ("lever-compile", "lever-fuse-qkv"):  # on the CPU: the same kernels, the same images
        assert rows[name]["max_pixel_difference"] == 0, rows[name]


@pytest.mark.slow
@pytest.mark.network
def test_carried_wheels_install_into_a_fresh_target_and_run_the_check(tmp_path):
    """What a GPU machine without network runs: scripts/gpu_wheels.sh here, then scripts/gpu_check.sh there (the
    wheels installed with --target into a fresh folder, put first on PYTHONPATH). GIFKIT_GPU_TEST_PYTHON: an
    interpreter without diffusers / open_clip (e.g. Python 3.12 with the GPU machine's packages), so that only the
    carried wheels can provide them; default: this interpreter."""
    wheels = tmp_path / "whl"
    r = subprocess.run(["sh", str(ROOT / "scripts" / "gpu_wheels.sh"), str(wheels)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    names = sorted(re.sub(r"-\d.*", "", p.name).lower() for p in wheels.glob("*.whl"))
    assert names == ["diffusers", "ftfy", "importlib_metadata", "open_clip_torch", "platformdirs", "wcwidth"]
    site = tmp_path / "site"
    python = os.environ.get("GIFKIT_GPU_TEST_PYTHON", sys.executable)
    report = _run_check(["--smoke", "--seeds", "1", "--batch-sizes", "1", "--skip", "sd-b1"], tmp_path,
                        script=ROOT / "scripts" / "gpu_check.sh",
                        env={"PYTHON": python, "GIFKIT_WHEELS": str(wheels), "GIFKIT_SITE": str(site)})
    for name in ("diffusers", "open_clip"):
        assert report["modules"][name].startswith(str(site)), report["modules"]
    rows = _check_smoke_rows(report)
    assert "t4" in rows and rows["gif-mae"]["status"] == "ok" and rows["gif-dalle"]["status"] == "ok"
    assert rows["gif-dalle"]["steps_run"] == 4


def test_colab_t4_estimate_in_the_docs_is_its_own_arithmetic():
    """docs/gpu.md's T4 table: 2.5-4 it/s for the sampler, the FLOP counts at that same effective rate for the VAE
    and the guidance pass, 10 classes x 5 seeds x K = 5 per arm, 18 of 20 DDIM steps run."""
    c = json.loads((BENCH / "flops.json").read_text())["components"]
    doc = (ROOT / "docs" / "gpu.md").read_text()
    per_iteration = 2 * c["sd_unet_pass"] / 1e12
    rates = (per_iteration * 2.5, per_iteration * 4.0)
    images = 10 * 5 * 5
    sampler = (2 * images * 18 / 4.0 / 60, 2 * images * 18 / 2.5 / 60)
    vae = tuple(2 * images * (c["sd_vae_encode"] + c["sd_vae_decode"]) / 1e12 / r / 60 for r in rates[::-1])
    guidance = tuple(images * (c["sd_vae_decode_grad_checkpointing"] + c["clip_image_grad"]) / 1e12 / r / 60
                     for r in rates[::-1])
    assert f"{rates[0]:.1f}-{rates[1]:.1f} TFLOP/s" in doc and f"{per_iteration:.2f} TFLOP per iteration" in doc
    for lo, hi in (sampler, vae, guidance):
        assert f"| {lo:.1f}-{hi:.1f} min |" in doc
    low, high = 2 + 3 + sampler[0] + vae[0] + guidance[0], 3 + 6 + sampler[1] + vae[1] + guidance[1] + 1
    assert f"about {round(low)}-{round(high)} min" in doc
    assert f"about {round(low)}-{round(high)} minutes" in (ROOT / "docs" / "design.md").read_text()
    assert f"about {round(low)}-{round(high)} minutes" in (ROOT / "gifkit" / "experiments" / "colab.py").read_text()
    half = (2 + 3 + (sampler[0] + vae[0] + guidance[0]) / 2, 3 + 6 + 1 + (sampler[1] + vae[1] + guidance[1]) / 2)
    assert f"about {int(half[0])}-{round(half[1])} min" in doc
