"""GIF-MAE and GIF-DALLE priors with tiny models on the CPU: shapes, patch
order, norm_pix_loss, gradients, projection, the embedding-only guidance path,
the 64 px decoder output, determinism and the CLI end to end."""
import filecmp
from pathlib import Path

import pytest
import torch

from gifkit.models import tiny
from gifkit.cli import main
from gifkit.data import load_dataset
from gifkit.core.guidance import guidance_terms
from gifkit.models.guides import ZeroShotClassifier
from gifkit.methods import create_method
from gifkit.methods.dalle import Dalle
from gifkit.methods.gif_dalle import GifDalle
from gifkit.methods.gif_mae import GifMAE
from gifkit.methods.mae import MAE
from gifkit.core.perturb import init_noise, perturb
from gifkit.core.prior import Job
from gifkit.priors.mae import MAEPrior
from gifkit.models.guides import TransformersCLIPZeroShot
from gifkit.priors.unclip import UnCLIPPrior
from gifkit.core.rng import generator
from gifkit.io.images import to_tensor01

DECODER_STEPS = 2


@pytest.fixture(scope="module")
def data():
    return load_dataset("smoke")


@pytest.fixture(scope="module")
def mae(data):
    _, names = data
    clip = tiny.tiny_clip()
    return MAEPrior(tiny.tiny_mae(), device="cpu"), ZeroShotClassifier(clip.model, clip.tokenizer, names)


@pytest.fixture(scope="module")
def unclip(data):
    _, names = data
    prior = UnCLIPPrior(tiny.tiny_unclip(), decoder_steps=DECODER_STEPS, super_res_steps=2, guidance_scale=4.0,
                        device="cpu")
    return prior, prior.make_classifier(names)


def imagine_batch(cls, prior, clf, jobs, **options):
    """One batch of ``jobs`` through method class ``cls`` on the given models: (images, rows)."""
    made = cls.from_models(prior, clf, **options)(jobs)
    return made.images, made.rows


def _jobs(data, seeds, k, seed=0):
    ds, names = data
    return [Job(i, v, ds[i][0], ds[i][1], names[ds[i][1]], key=(seed, i, v)) for i in seeds for v in range(k)]


def _capture_final(monkeypatch, prior) -> dict:
    """Record the latent the step hands to prior.generate."""
    seen = {}
    original = prior.generate

    def generate(f, jobs):
        seen["final"] = f.detach().clone()
        return original(f, jobs)

    monkeypatch.setattr(prior, "generate", generate)
    return seen


def _no_param_grads(*modules):
    return all(p.grad is None for m in modules for p in m.parameters())


def _score_and_backward(prior, clf, f, k):
    """One guidance pass as the loop does it: (z, b) per job, S on the unprojected latent, backward."""
    z, b = map(torch.cat, zip(*[init_noise(f[j:j + 1], 1, "channel", generator(0, j, "noise"), prior.channel_dim)
                                for j in range(f.shape[0])]))
    z, b = z.float().requires_grad_(True), b.float().requires_grad_(True)
    feats = prior.guidance_features(perturb(f.float(), z, b), clf)
    with torch.no_grad():
        p_seed = clf.probs_from_features(prior.guidance_features(f.float(), clf))
    p_var = clf.probs_from_features(feats)
    score = sum(guidance_terms(p_seed[s * k], p_var[s * k:(s + 1) * k], feats[s * k:(s + 1) * k]).score
                for s in range(f.shape[0] // k))
    score.backward()
    return z, b


# ----------------------------------------------------------------------------- MAE


def test_mae_shapes_and_range(data, mae):
    prior, _ = mae
    jobs = _jobs(data, [0, 1], 2)
    lat = prior.prepare(jobs)
    cfg = prior.model.config
    n_patches = (cfg.image_size // cfg.patch_size) ** 2
    assert lat.f.shape == (4, 1 + n_patches, cfg.hidden_size)  # CLS + patches, encoder width
    assert lat.patch_mean.shape == lat.patch_var.shape == (4, n_patches, 1)
    x = prior.decode(lat.f)
    assert x.shape == (4, 3, cfg.image_size, cfg.image_size) and prior.resolution == cfg.image_size
    assert 0 <= x.min() and x.max() <= 1
    assert torch.equal(x, prior.decode(prior.prepare(jobs).f))  # deterministic


def test_mae_patch_order_matches_the_models_own_forward(data, mae):
    """decode(prepare(x)) == unpatchify(model(x).logits): tokens keep their patch order (no shuffle)."""
    prior, _ = mae
    jobs = _jobs(data, [0, 1, 2], 1)
    pix = prior.pixels([j.image for j in jobs])
    torch.manual_seed(123)  # the model's own forward shuffles with random noise and unshuffles via ids_restore
    with torch.no_grad():
        logits = prior.model(pixel_values=pix).logits  # [N, L, P*P*3]
    reference = prior.to_images(logits)
    ours = prior.decode(prior.prepare(jobs).f)
    assert torch.allclose(ours, reference, atol=1e-5)
    # f's token t is patch t: a random shuffle of f's patch tokens breaks the match
    f = prior.prepare(jobs).f
    perm = torch.randperm(f.shape[1] - 1, generator=torch.Generator().manual_seed(0)) + 1
    shuffled = torch.cat([f[:, :1], f[:, perm]], dim=1)
    assert not torch.allclose(prior.decode(shuffled), reference, atol=1e-3)


def test_mae_norm_pix_loss_is_undone_with_the_seeds_patch_statistics(data):
    model = tiny.tiny_mae()
    model.config.norm_pix_loss = True  # as facebook/vit-mae-large
    prior = MAEPrior(model, device="cpu")
    jobs = _jobs(data, [0, 3], 1)
    lat = prior.prepare(jobs)
    pix = prior.pixels([j.image for j in jobs])
    target = model.patchify(pix)  # [N, L, P*P*3]: what the decoder learns to predict, per-patch normalised
    normed = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6).sqrt()
    seeds01 = (pix * prior.std + prior.mean).clamp(0, 1)
    assert torch.allclose(prior.to_images(normed), seeds01, atol=1e-4)  # a perfect prediction gives the seed back
    swapped = (lat.patch_mean.flip(0), lat.patch_var.flip(0))
    assert not torch.allclose(prior.to_images(normed, swapped), seeds01, atol=1e-2)  # row i uses seed i's stats
    assert prior.decode(lat.f).shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="patch statistics"):
        prior.decode(lat.f[:1])  # rows that prepare() did not produce


def test_mae_rejects_masking_and_bad_latents(mae):
    prior, _ = mae
    with pytest.raises(ValueError, match="mask_ratio"):
        model = tiny.tiny_mae()
        model.config.mask_ratio = 0.75
        MAEPrior(model)
    with pytest.raises(ValueError, match="CLS"):
        prior.decode(torch.zeros(1, 5, 32))


def test_mae_gradients_reach_z_and_b_only(data, mae):
    prior, clf = mae
    k = 2
    f = prior.prepare(_jobs(data, [0, 1], k)).f
    z, b = _score_and_backward(prior, clf, f, k)
    assert z.shape == b.shape == (4, 1, f.shape[-1])  # channel-wise: shared over tokens
    for g in (z.grad, b.grad):
        assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0
    assert _no_param_grads(prior.model, clf.model)


def test_gif_mae_projection_holds_on_the_final_latent(data, mae, monkeypatch):
    prior, clf = mae
    jobs = _jobs(data, [0, 1], 2)
    f = prior.prepare(jobs).f
    seen = _capture_final(monkeypatch, prior)
    eps = 0.3  # small enough for the clamp to bite
    images, rows = imagine_batch(GifMAE, prior, clf, jobs, eps=eps)
    final = seen["final"]
    assert images.shape == (4, 3, 32, 32) and all("s_inf" in r for r in rows)
    assert (final - f).abs().max() <= eps + 1e-5
    assert (final - f).abs().max() > eps / 2  # it moved
    assert (final[0] - final[1]).abs().max() > 0  # variants differ


def test_unguided_mae_is_a_random_projected_perturbation(data, mae, monkeypatch):
    prior, clf = mae
    jobs = _jobs(data, [0], 2)
    f = prior.prepare(jobs).f
    seen = _capture_final(monkeypatch, prior)
    calls = []
    monkeypatch.setattr(prior, "guidance_features", lambda *a: calls.append(1))
    _, rows = imagine_batch(MAE, prior, clf, jobs)
    assert not calls and "s_inf" not in rows[0] and rows[0]["opt_steps"] == 0  # no guidance step
    delta = (seen["final"] - f).abs()
    assert delta.max() <= 5.0 + 1e-5 and delta.max() > 0 and rows[0]["eps"] == 5.0


# ----------------------------------------------------------------------------- unCLIP


def test_unclip_latent_is_the_pipelines_clip_embedding(data, unclip):
    prior, clf = unclip
    jobs = _jobs(data, [0, 1], 2)
    f = prior.prepare(jobs).f
    pipe = prior.pipe
    e = pipe.image_encoder.config.projection_dim if hasattr(pipe.image_encoder.config, "projection_dim") else None
    assert f.shape == (4, e)
    with torch.no_grad():
        ref = pipe._encode_image([j.image for j in jobs], torch.device("cpu"), 1)  # the pipeline's own path
    assert torch.allclose(f, ref, atol=1e-6)
    # the classifier is the same CLIP: the features of the seed image agree with normalize(f)
    p_img = clf.probs(torch.cat([to_tensor01(j.image)[None] for j in jobs[::2]]))
    p_emb = clf.probs_from_features(prior.guidance_features(f[::2], clf))
    assert torch.allclose(p_img, p_emb, atol=0.05)


def test_transformers_clip_zero_shot(data, unclip):
    prior, clf = unclip
    _, names = data
    pipe = prior.pipe
    assert clf.text_features.shape == (len(names), pipe.text_encoder.config.projection_dim)
    assert torch.allclose(clf.text_features.norm(dim=-1), torch.ones(len(names)), atol=1e-5)
    tok = pipe.tokenizer([f"This is a photo of a {c}" for c in names], padding="max_length",
                         max_length=pipe.tokenizer.model_max_length, return_tensors="pt")
    with torch.no_grad():
        w = torch.nn.functional.normalize(pipe.text_encoder(tok.input_ids).text_embeds, dim=-1)
    assert torch.allclose(clf.text_features, w, atol=1e-5)
    x = torch.rand(3, 3, 40, 40)
    p = clf.probs(x)
    assert p.shape == (3, len(names)) and torch.allclose(p.sum(-1), torch.ones(3), atol=1e-5)
    u = clf.image_features(x)
    expected = torch.softmax(100 * u @ w.T, dim=-1)  # logit scale 100, fixed
    assert torch.allclose(clf.probs_from_features(u), expected, atol=1e-5)
    with pytest.raises(ValueError):
        TransformersCLIPZeroShot.from_pipeline(pipe, "cat")


def test_unclip_guidance_uses_the_embedding_and_never_decodes(data, unclip, monkeypatch):
    prior, clf = unclip
    k = 2
    jobs = _jobs(data, [0, 1], k)
    f = prior.prepare(jobs).f

    def no_decode(*a, **kw):
        raise AssertionError("decode called on the unCLIP guidance path")

    monkeypatch.setattr(prior, "decode", no_decode)
    z, b = _score_and_backward(prior, clf, f, k)
    assert z.shape == (4, f.shape[1])  # per-dimension noise [K, E]
    for g in (z.grad, b.grad):
        assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0
    pipe = prior.pipe
    assert _no_param_grads(pipe.image_encoder, pipe.text_encoder, pipe.decoder, pipe.text_proj, clf)

    seen = _capture_final(monkeypatch, prior)
    eps = 0.1
    images, rows = imagine_batch(GifDalle, prior, clf, jobs, eps=eps)
    assert images.shape == (4, 3, prior.resolution, prior.resolution) and "s_inf" in rows[0]
    delta = (seen["final"] - f).abs()
    assert delta.max() <= eps + 1e-6 and delta.max() > 0


def test_unclip_default_output_is_the_decoders_and_matches_the_pipeline(data, monkeypatch):
    """Default: the decoder's images (32 px tiny / 64 px Karlo): gifkit's decoder loop equals the pipeline's own
    decoder stage, and super_res=True is the pipeline's whole image variation."""
    pipe = tiny.tiny_unclip()
    prior = UnCLIPPrior(pipe, decoder_steps=DECODER_STEPS, super_res_steps=2, guidance_scale=4.0, device="cpu")
    jobs = _jobs(data, [0], 2)
    f = prior.prepare(jobs).f
    small = prior.generate(f, jobs)
    assert prior.resolution == pipe.decoder.config.sample_size == small.shape[-1] == 32
    # the full pipeline (with super-resolution) goes through the same decoder stage first
    captured = []
    step = pipe.decoder_scheduler.step

    def spy(*a, **kw):
        out = step(*a, **kw)
        if kw.get("prev_timestep", 0) is None:
            captured.append(out.prev_sample.clamp(-1, 1))
        return out

    monkeypatch.setattr(pipe.decoder_scheduler, "step", spy)
    with torch.no_grad():
        full = pipe(image=[j.image for j in jobs], decoder_num_inference_steps=DECODER_STEPS,
                    super_res_num_inference_steps=2, decoder_guidance_scale=4.0,
                    generator=[generator(*j.key, "decoder") for j in jobs], output_type="np").images
    monkeypatch.undo()
    assert torch.allclose(small, captured[0] * 0.5 + 0.5, atol=1e-5)
    # unguided 'dalle' with super_res=True is exactly the pipeline's own image variation of the seed
    big = UnCLIPPrior(pipe, decoder_steps=DECODER_STEPS, super_res_steps=2, guidance_scale=4.0,
                      super_res=True).generate(f, jobs)
    assert big.shape == (2, 3, 64, 64)
    assert torch.allclose(big, torch.from_numpy(full).permute(0, 3, 1, 2), atol=1e-5)
    with pytest.raises(ValueError, match="not differentiable"):
        prior.decode(f, grad=True)


def test_unguided_dalle_generates_from_f_unchanged(data, unclip, monkeypatch):
    prior, clf = unclip
    jobs = _jobs(data, [0], 2)
    f = prior.prepare(jobs).f
    seen = _capture_final(monkeypatch, prior)
    images, _ = imagine_batch(Dalle, prior, clf, jobs)
    assert torch.equal(seen["final"], f)
    assert not torch.equal(images[0], images[1])  # variants differ by their decoder noise only


# ----------------------------------------------------------------------------- registry, CLI, determinism


def test_create_method_builds_the_new_methods_with_their_defaults(data):
    _, names = data
    m = create_method("gif-mae", names, device="cpu")
    assert isinstance(m.prior, MAEPrior) and isinstance(m.guide, ZeroShotClassifier) and m.guidance.eps == 5.0
    assert m.prior.params["mask_ratio"] == 0.0
    with pytest.raises(ValueError, match="preset"):
        create_method("gif-mae", names, device="cpu", preset="cifar100s")  # GIF-SD's per-dataset settings
    m = create_method("gif-mae", names, device="cpu", eps=2.0, noise="pixel")
    assert m.guidance.eps == 2.0 and m.guidance.noise == "pixel"  # explicit settings win
    m = create_method("mae", names, device="cpu")
    assert m.guidance.opt_steps == 0 and m.guidance.eps == 5.0
    m = create_method("gif-dalle", names, device="cpu", steps=3)
    assert isinstance(m.prior, UnCLIPPrior) and isinstance(m.guide, TransformersCLIPZeroShot)
    assert m.guide.image_encoder is m.prior.pipe.image_encoder  # the classifier is the prior's own CLIP
    assert m.guidance.eps == 0.1 and m.prior.params["decoder_steps"] == 3 and m.prior.params["super_res"] is False
    assert create_method("gif-dalle", names, device="cpu").prior.decoder_steps == 4  # the smoke profile's
    assert create_method("dalle", names, device="cpu").guidance is None
    assert isinstance(create_method("gif-sd", names, device="cpu").guide, ZeroShotClassifier)


def _expand(out: Path, method: str) -> int:
    steps = ["--steps", str(DECODER_STEPS)] if "dalle" in method else []  # the unCLIP decoder's steps
    return main(["expand", "--data", "smoke", "--out", str(out), "--method", method, "--ratio", "2", "--limit", "2",
                 "--batch-size", "2", *steps, "--device", "cpu", "--no-progress"])


def _tree(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())


@pytest.mark.parametrize("method", ["gif-mae", "mae", "gif-dalle", "dalle"])
def test_cli_end_to_end(method, tmp_path, capsys):
    out = tmp_path / "a"
    assert _expand(out, method) == 0
    assert "4 written" in capsys.readouterr().out
    pngs = sorted(out.rglob("*.png"))
    assert len(pngs) == 4
    meta = (out / "metadata.csv").read_text().splitlines()
    assert len(meta) == 5 and all(f",{method}," in row for row in meta[1:])
    if method in ("gif-mae", "gif-dalle"):  # determinism: a second run writes identical bytes
        again = tmp_path / "b"
        assert _expand(again, method) == 0
        assert _tree(out) == _tree(again)
        names = [p for p in _tree(out) if p.endswith((".png", ".csv"))]
        match, mismatch, errors = filecmp.cmpfiles(out, again, names, shallow=False)
        assert not mismatch and not errors and "metadata.csv" in match
