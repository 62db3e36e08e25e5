"""Guidance memory is bounded by one seed's K variants, whatever --batch-size (tiny models, CPU)."""
import pytest
import torch

from gifkit.methods import expand
from gifkit.methods.gif_sd import GifSD
from gifkit.methods.sd import SD
from gifkit.models import tiny
from gifkit.models.guides import ZeroShotClassifier
from gifkit.priors.sd import SDPrior
from test_priors_mae_unclip import _capture_final, _jobs  # the shared helpers: a job list, the final latent

pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny_clip():
    clip = tiny.tiny_clip()
    return clip.model, clip.tokenizer


@pytest.fixture(scope="module")
def models(smoke):
    ds, names = smoke
    clip = tiny.tiny_clip()
    return ds, names, ZeroShotClassifier(clip.model, clip.tokenizer, names)


def _sd(**kw):
    return SDPrior(tiny.tiny_sd(), **{"steps": 2, "strength": 0.9, "guidance_scale": 5.0, **kw})


def _spy(monkeypatch, prior):
    """Record how many latents each decode call gets, with and without gradients."""
    calls = {"grad": [], "nograd": []}
    original = prior.decode

    def decode(f, grad=False, **kw):
        calls["grad" if grad else "nograd"].append(f.shape[0])
        return original(f, grad, **kw)

    monkeypatch.setattr(prior, "decode", decode)
    return calls


@pytest.mark.parametrize("batch_size", [1, 3])
def test_variants_decoded_at_once_do_not_grow_with_batch_size(models, tmp_path, monkeypatch, batch_size):
    ds, names, clf = models
    prior = _sd()
    calls = _spy(monkeypatch, prior)
    k = 2
    r = expand(GifSD.from_models(prior, clf, names), ds, tmp_path / "out", ratio=k, batch_size=batch_size, limit=3,
               progress=False)
    assert r.written == 3 * k
    assert max(calls["grad"]) == k and max(calls["nograd"]) == k  # one seed's K variants, never batch_size * K
    assert len(calls["grad"]) == 3  # one guidance pass per seed


def test_chunked_and_checkpointed_guidance_equal_one_pass(models, monkeypatch):
    """Per-seed passes accumulate the same gradient as one pass over the batch, and gradient checkpointing of
    the VAE decoder recomputes the same values: the guided latents agree."""
    ds, names, clf = models
    jobs = _jobs((ds, names), [0, 1, 2], 2)
    results = []
    for per, ckpt in [(3, False), (1, False), (1, True)]:
        prior = _sd(checkpointing=ckpt)
        seen = _capture_final(monkeypatch, prior)
        method = GifSD.from_models(prior, clf, names)
        method.seeds_per_pass = per
        method(jobs)
        results.append(seen["final"])
    torch.testing.assert_close(results[1], results[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(results[2], results[1], atol=1e-5, rtol=1e-4)
    assert prior.pipe.vae.decoder.gradient_checkpointing


def test_chunked_guidance_keeps_the_diversity_groups_and_diagnostics(models, monkeypatch):
    """With K = 3 in official pairs (2 + 1) and S_div weighted up, per-seed passes give the same latents, score
    terms and S_div sign-flip diagnostics as one pass over the batch."""
    ds, names, clf = models
    jobs = _jobs((ds, names), [0, 1], 3)
    g = dict(w_div=50.0, div_temperature=0.05, div_group=2, div_diagnostics=True)
    out = []
    for per in (2, 1):
        prior = _sd()
        seen = _capture_final(monkeypatch, prior)
        method = GifSD.from_models(prior, clf, names, **g)
        method.seeds_per_pass = per
        rows = method(jobs).rows
        out.append((seen["final"], rows))
    torch.testing.assert_close(out[1][0], out[0][0], atol=1e-5, rtol=1e-4)
    for a, b in zip(out[0][1], out[1][1]):
        assert a["div_sign_flips"] == b["div_sign_flips"] and a["div_grad_entries"] == b["div_grad_entries"] > 0
        assert a["s_div"] == pytest.approx(b["s_div"], rel=1e-4, abs=1e-7)
    assert [r["s_div"] for r in out[0][1]][2::3] == [0.0, 0.0]  # the last variant of each seed is alone
    assert sum(r["div_sign_flips"] for r in out[0][1]) > 0  # S_div this strong does flip signs


def test_batch_size_auto_keeps_a_folders_batch_size(models, tmp_path, monkeypatch):
    ds, names, clf = models
    method = SD.from_models(_sd(), clf, names)
    monkeypatch.setattr(SD, "auto_batch_size", lambda *a, **k: 3)
    expand(method, ds, tmp_path / "o", ratio=1, batch_size="auto", limit=2, progress=False)
    monkeypatch.setattr(SD, "auto_batch_size", lambda *a, **k: 1)  # less free memory on the resume
    r = expand(method, ds, tmp_path / "o", ratio=1, batch_size="auto", limit=2, progress=False)
    assert r.existing == 2  # resumed with the recorded batch size, not refused


def test_memory_estimate_scales_with_resolution_dtype_and_checkpointing():
    prior = _sd()
    base = prior.memory_per_image(True)
    assert base == pytest.approx(6.1 * 2 ** 30 * (prior.resolution / 512) ** 2)
    assert _sd(checkpointing=True).memory_per_image(True) == pytest.approx(base * 3.3 / 6.1)  # measured slopes
    half = SDPrior(tiny.tiny_sd().to(dtype=torch.float16), steps=2, strength=0.9, guidance_scale=5.0)
    assert half.memory_per_image(False) == pytest.approx(prior.memory_per_image(False) / 2)
    assert SD.from_models(prior, ZeroShotClassifier(*_tiny_clip(), ["a", "b"])).auto_batch_size(5) == 4  # no CUDA
