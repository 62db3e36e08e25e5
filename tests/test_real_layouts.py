"""The paper path on checkpoints laid out as on the Hub (gifkit.testing): every loader from a local folder and from
a local Hugging Face cache holding the hub ids, the guiding CLIP's QuickGELU, doctor --check, run.json provenance,
and every paper-profile method end to end through the CLI. Tiny widths here; the full-size GIF-SD run is `slow`."""
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gifkit import testing
from gifkit.cli import main
from gifkit.config import GUIDANCE_CLIP_REPO, MODEL_IDS
from gifkit.models import hub

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Every kind written once, tiny, as a local folder."""
    root = tmp_path_factory.mktemp("layouts")
    return {kind: testing.write_checkpoint(kind, root / kind) for kind in testing.KINDS}


@pytest.fixture(scope="module")
def hub_cache(folders, tmp_path_factory):
    """A Hugging Face cache holding every hub id of the paper profile (SD v1.5's id with an SD layout)."""
    import shutil

    cache = tmp_path_factory.mktemp("hf-cache")
    for kind, repo in [*testing.HUB_IDS.items(), ("sd", MODEL_IDS["sd15"])]:
        snap = testing.snapshot_dir(cache, repo, "1" * 40)
        shutil.copytree(folders[kind], snap)
        (snap.parent.parent / "refs").mkdir(exist_ok=True)
        (snap.parent.parent / "refs" / "main").write_text("1" * 40)
    return cache


def test_layouts_hold_what_the_loaders_need_and_missing_files_are_named(folders, tmp_path):
    import shutil

    key = {"ip2p": "ip2p"}
    for kind, d in folders.items():
        assert hub.missing_files(key.get(kind, kind), d) == [], kind
    index = json.loads((folders["unclip"] / "model_index.json").read_text())
    assert index["text_proj"] == ["unclip", "UnCLIPTextProjModel"]  # what diffusers >= 0.36 cannot resolve
    assert json.loads((folders["mae"] / "config.json").read_text())["norm_pix_loss"] is False
    assert "quick_gelu" not in json.loads((folders["clip"] / "open_clip_config.json").read_text())["model_cfg"]
    broken = shutil.copytree(folders["sd"], tmp_path / "sd")
    (broken / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    assert hub.missing_files("sd", broken) == ["unet/diffusion_pytorch_model.safetensors (or "
                                               "unet/diffusion_pytorch_model.bin)"]
    assert hub.check_checkpoint("sd", str(broken)).startswith("incomplete: missing unet/")
    assert hub.check_checkpoint("mae", str(folders["mae"])) == "loadable"


def test_same_seed_same_bytes(tmp_path):
    a = testing.write_checkpoint("mae", tmp_path / "a", seed=3)
    b = testing.write_checkpoint("mae", tmp_path / "b", seed=3)
    assert hub.weights_digest(a) == hub.weights_digest(b)
    assert hub.weights_digest(a) != hub.weights_digest(testing.write_checkpoint("mae", tmp_path / "c", seed=4))


def test_every_loader_reads_its_folder(folders):
    from diffusers import StableDiffusionImg2ImgPipeline, UnCLIPImageVariationPipeline

    sd = hub.load_sd(str(folders["sd"]))
    assert isinstance(sd, StableDiffusionImg2ImgPipeline) and type(sd.scheduler).__name__ == "DDIMScheduler"
    assert sd.unet.config.sample_size * sd.vae_scale_factor == 64 and len(sd.tokenizer) == 49408
    karlo = hub.load_unclip(str(folders["unclip"]))
    assert isinstance(karlo, UnCLIPImageVariationPipeline)
    assert type(karlo.text_proj).__name__ == "UnCLIPTextProjModel"
    assert hub.load_mae(str(folders["mae"])).config.mask_ratio == 0.0
    assert hub.load_instruct_pix2pix(str(folders["ip2p"])).unet.config.in_channels == 8
    blip = hub.load_blip(str(folders["blip"]))
    assert blip.processor.tokenizer.bos_token == "[DEC]"
    llm = hub.load_text_generator(str(folders["llm"]))
    assert "<|im_start|>assistant" in llm.tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    src = hub.source_of(karlo)
    assert src["path"] == str(folders["unclip"].resolve()) and src["dtype"] == "float32"
    assert set(src["sha256"]) >= {"decoder/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"}


def test_guiding_clip_is_openais_quickgelu_model_from_a_folder(folders):
    """OpenAI's ViT-B/32 was trained with QuickGELU; a GELU build gives other features (and this test fails)."""
    import open_clip

    cfg = json.loads((folders["clip"] / "open_clip_config.json").read_text())["model_cfg"]
    from safetensors.torch import load_file

    state = load_file(str(folders["clip"] / "open_clip_model.safetensors"))
    quick = open_clip.model.CLIP(**cfg, quick_gelu=True).eval()
    gelu = open_clip.model.CLIP(**cfg, quick_gelu=False).eval()
    quick.load_state_dict(state), gelu.load_state_dict(state)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        want, wrong = quick.encode_image(x), gelu.encode_image(x)
    assert not torch.allclose(want, wrong, atol=1e-4)  # the activation matters
    for name in ("ViT-B-32-quickgelu", "ViT-B-32"):  # the default, and the plain name with OpenAI's download
        bundle = hub.load_clip(name, str(folders["clip"]))
        assert hub.clip_has_quick_gelu(bundle.model), name
        with torch.no_grad():
            torch.testing.assert_close(bundle.model.encode_image(x), want)
    assert not hub.clip_has_quick_gelu(gelu)


def _cache_env(cache: Path) -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "OMP_NUM_THREADS": "1",
            "PYTHONPATH": str(ROOT)}


def test_paper_profile_from_the_hub_cache_doctor_and_every_method(hub_cache, tmp_path):
    """Hub ids resolved from a local cache (as after `hf download`): doctor --check says every checkpoint loads,
    and every paper-profile method expands through the CLI with the default ids."""
    methods = {"gif-sd": [], "sd": [], "gif-mae": [], "mae": [], "gif-dalle": [], "dalle": [], "dreamda": [],
               "alia": ["--alia-filter", "semantic"]}
    script = f"""
import json, sys
from gifkit.cli import main
from gifkit.methods import option_names
assert main(["doctor", "--check"]) == 0
codes = {{}}
for method, extra in {json.dumps(methods)}.items():
    steps = ["--steps", "2"] if "steps" in option_names(method) else []  # MAE has no sampler
    codes[method] = main(["expand", "--data", "smoke", "--out", {str(tmp_path)!r} + "/" + method, "--method", method,
                          "--profile", "paper", "--ratio", "2", "--limit", "2", "--batch-size", "2", *steps,
                          "--device", "cpu", "--no-progress", *extra])
print("CODES", json.dumps(codes))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=_cache_env(hub_cache),
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    status = {ln.split()[0]: ln for ln in lines if ln.startswith("  ") and "(" in ln and "/" in ln}
    for key in hub.KNOWN_CHECKPOINTS:
        assert "loadable" in status[key] and "not loadable" not in status[key], status[key]
    codes = json.loads(next(ln for ln in lines if ln.startswith("CODES"))[6:])
    assert codes == {m: 0 for m in methods}
    for method in methods:
        folder = tmp_path / (method if method != "alia" else "alia.alia/candidates")  # ALIA: its edits
        assert len(list(folder.rglob("*.png"))) == 4, method  # 2 seeds x K = 2
        run = json.loads((folder / "run.json").read_text())
        prov, env = run["provenance"], run["environment"]
        assert prov["profile"] == "paper" and env["device"]["type"] == "cpu" and "float32" in env["dtypes"]
        assert prov["models"]["prior"]["revision"] == "1" * 40, method
        assert env["versions"]["torch"].split("+")[0] == torch.__version__.split("+")[0]
    guide = json.loads((tmp_path / "gif-sd" / "run.json").read_text())["provenance"]["models"]["guide"]
    assert guide["id"] == GUIDANCE_CLIP_REPO and guide["quick_gelu"] is True
    assert json.loads((tmp_path / "gif-sd" / "run.json").read_text())["provenance"]["models"]["prior"]["id"] == \
        MODEL_IDS["sd"]


def test_expand_paper_profile_with_local_folders_records_provenance(folders, tmp_path, capsys):
    out = tmp_path / "gif-sd"
    args = ["expand", "--data", "smoke", "--out", str(out), "--method", "gif-sd", "--profile", "paper",
            "--model-id", str(folders["sd"]), "--clip-pretrained", str(folders["clip"]), "--ratio", "2",
            "--limit", "2", "--batch-size", "auto", "--steps", "2", "--device", "cpu", "--no-progress"]
    assert main(args) == 0
    run = json.loads((out / "run.json").read_text())
    prov = run["provenance"]
    assert run["batch_size"] == 4  # auto on a CPU
    assert prov["models"]["prior"]["path"] == str(folders["sd"].resolve())
    assert prov["models"]["prior"]["sha256"] == hub.weights_digest(folders["sd"])
    assert prov["models"]["guide"]["path"] == str(folders["clip"].resolve())
    assert {"torch", "diffusers", "transformers", "open_clip_torch"} <= set(run["environment"]["versions"])
    assert main(args) == 0  # resumes: same settings, same provenance
    assert "already there" in capsys.readouterr().out
    karlo = tmp_path / "gif-dalle"
    assert main(["expand", "--data", "smoke", "--out", str(karlo), "--method", "gif-dalle", "--profile", "paper",
                 "--model-id", str(folders["unclip"]), "--ratio", "2", "--limit", "2", "--steps", "2",
                 "--device", "cpu", "--no-progress"]) == 0
    assert len(list(karlo.rglob("*.png"))) == 4


def test_guide_option_on_real_layouts_clip_folder_and_timm_checkpoint(folders, tmp_path):
    """--guide clip:<name>/<folder> guides GIF-SD with that CLIP (its provenance in run.json); a wrong timm
    checkpoint head is a one-line error."""
    out = tmp_path / "gif-sd"
    spec = f"clip:ViT-B-32-quickgelu/{folders['clip']}"
    assert main(["expand", "--data", "smoke", "--out", str(out), "--method", "gif-sd", "--profile", "paper",
                 "--model-id", str(folders["sd"]), "--guide", spec, "--ratio", "2", "--limit", "2", "--steps", "2",
                 "--device", "cpu", "--no-progress"]) == 0
    guide = json.loads((out / "run.json").read_text())["provenance"]["models"]["guide"]
    assert guide["guide"] == spec and guide["path"] == str(folders["clip"].resolve()) and guide["quick_gelu"] is True
    assert guide["sha256"] == hub.weights_digest(folders["clip"])
    from safetensors.torch import save_file

    from gifkit.models.classifiers import create_model

    ckpt = tmp_path / "ten.safetensors"
    save_file(create_model("test_resnet", 10).state_dict(), str(ckpt))
    code = main(["expand", "--data", "smoke", "--out", str(tmp_path / "t"), "--method", "gif-sd", "--profile",
                 "paper", "--model-id", str(folders["sd"]), "--guide", f"timm:test_resnet:{ckpt}", "--limit", "1",
                 "--steps", "2", "--device", "cpu", "--no-progress"])
    assert code == 2


def test_missing_clip_folder_is_a_one_line_error(tmp_path, capsys):
    code = main(["expand", "--data", "smoke", "--out", str(tmp_path / "o"), "--method", "gif-sd", "--profile", "paper",
                 "--clip-pretrained", str(tmp_path / "nope"), "--limit", "1", "--device", "cpu", "--no-progress"])
    assert code == 2


@pytest.mark.slow
def test_full_size_gif_sd_512px(tmp_path):
    """The real SD v1-4 and CLIP ViT-B/32 sizes (random weights), 512 px, K = 2, 2 DDIM steps, on the CPU.
    Prints its time and peak RSS (docs/memory.md)."""
    t = time.perf_counter()
    sd = testing.write_checkpoint("sd", tmp_path / "sd", "full")
    clip = testing.write_checkpoint("clip", tmp_path / "clip", "full")
    written = time.perf_counter() - t
    t = time.perf_counter()
    out = tmp_path / "out"
    assert main(["expand", "--data", "smoke", "--out", str(out), "--method", "gif-sd", "--profile", "paper",
                 "--model-id", str(sd), "--clip-pretrained", str(clip), "--ratio", "2", "--limit", "1",
                 "--batch-size", "1", "--steps", "2", "--device", "cpu", "--no-progress"]) == 0
    seconds = time.perf_counter() - t
    from PIL import Image

    images = sorted(out.rglob("*.png"))
    assert len(images) == 2 and Image.open(images[0]).size == (512, 512)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # KiB -> GiB
    print(f"\nfull-size GIF-SD 512 px, K=2, 2 steps: checkpoints written in {written:.0f} s, expansion {seconds:.0f} s, "
          f"peak RSS {peak:.1f} GiB")


def test_colab_stages_run_and_resume_on_the_smoke_profile(tmp_path):
    """The colab profile's stages (data, expand sd / gif-sd, grids, diagnostics, linear probe), on tiny models."""
    from gifkit.experiments.colab import run_colab

    kw = dict(profile="smoke", data="smoke", n_classes=2, seeds_per_class=1, test_per_class=2, ratio=2,
              progress=False)
    s = run_colab(tmp_path, **kw)
    assert s["arms"]["gif-sd"]["written"] == 4 and set(s["seconds"]) == {"data", "expand", "grids", "diagnostics",
                                                                          "probe"}
    gif = next(d for d in s["diagnostics"] if d["arm"] == "gif-sd")
    assert gif["s_inf"] is not None and gif["s_div"] is not None and 0 <= gif["p_yhat"] <= 1
    assert [p["train"] for p in s["probe"]] == ["original", "original + sd", "original + gif-sd"]
    assert (tmp_path / "grid_gif-sd.png").is_file() and (tmp_path / "probe.csv").is_file()
    again = run_colab(tmp_path, **kw)  # after a disconnect: nothing is made twice
    assert again["arms"]["gif-sd"] == {**again["arms"]["gif-sd"], "written": 0, "existing": 4}
