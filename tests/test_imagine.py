"""The imagination step (Algorithm 1) and the driver with the tiny SD prior and tiny CLIP: gradients, projection,
the sign step, determinism, resume, non-finite scores, bad input."""
import filecmp
import json
import math
from pathlib import Path

import pytest
import torch

import gifkit.methods.gif as gif_module
from gifkit.core.prior import Job
from gifkit.data import load_dataset
from gifkit.io.images import to_tensor01
from gifkit.methods import expand
from gifkit.methods.gif_sd import GifSD
from gifkit.methods.sd import SD
from gifkit.models import tiny
from gifkit.models.guides import ZeroShotClassifier
from gifkit.priors.sd import DOMAINS, SDPrior, make_prompt

STEPS = 4


def gif_sd(prior, clf, names, cls=GifSD, **options):
    """GIF-SD (or another of its classes) on the given models with ``options``."""
    return cls.from_models(prior, clf, names, **options)


@pytest.fixture(scope="module")
def models():
    ds, names = load_dataset("smoke")
    clip = tiny.tiny_clip()
    clf = ZeroShotClassifier(clip.model, clip.tokenizer, names)
    prior = SDPrior(tiny.tiny_sd(), steps=STEPS, strength=0.9, guidance_scale=5.0)
    return ds, names, prior, clf


def _jobs(ds, names, seeds, k, seed=0):
    return [Job(i, v, ds[i][0], ds[i][1], names[ds[i][1]], key=(seed, i, v)) for i in seeds for v in range(k)]


class Recorder:
    """Capture what the loop hands to the optimiser and to the final decode."""

    def __init__(self, monkeypatch, prior):
        self.grads, self.before, self.after, self.final = [], [], [], None
        rec = self
        base = gif_module.LatentOptimizer

        class RecordingOptimizer(base):
            def step(self):
                rec.grads.append([p.grad.clone() for p in self.params])
                rec.before.append([p.detach().clone() for p in self.params])
                super().step()
                rec.after.append([p.detach().clone() for p in self.params])

        monkeypatch.setattr(gif_module, "LatentOptimizer", RecordingOptimizer)
        original = prior.generate

        def generate(f, jobs):
            rec.final = f.detach().clone()
            return original(f, jobs)

        monkeypatch.setattr(prior, "generate", generate)


def test_prompts_follow_the_paper_rule():
    p = make_prompt("fox", (0, 3, 1))
    assert p.endswith(" fox") and any(p.startswith(d) for d in DOMAINS)
    assert p == make_prompt("fox", (0, 3, 1)) and "  " not in p
    assert len({make_prompt("fox", (0, i, 0)) for i in range(30)}) > 5
    assert make_prompt("fox", (0, 1, 1), domain="Ultrasound image of").startswith("Ultrasound image of")
    assert make_prompt("fox", (0, 1, 1), mode="class") == "a photo of a fox"


def test_gradients_reach_z_and_b_only_and_projection_holds(models, monkeypatch):
    ds, names, prior, clf = models
    rec = Recorder(monkeypatch, prior)
    jobs = _jobs(ds, names, [0, 1], 3)
    f = prior.prepare(jobs).f  # deterministic: the same f the loop computes
    method = gif_sd(prior, clf, names, eps=0.05)
    made = method(jobs)
    images, rows = made.images, made.rows
    assert images.shape == (6, 3, 32, 32) and 0 <= images.min() and images.max() <= 1
    gz, gb = rec.grads[0]
    assert gz.shape == (6, 4, 1, 1) and gb.shape == (6, 4, 1, 1)  # channel-wise noise
    assert gz.abs().sum() > 0 and gb.abs().sum() > 0
    for m in (prior.pipe.unet, prior.pipe.vae, prior.pipe.text_encoder, clf.model):
        assert all(p.grad is None for p in m.parameters())
    # Eq. 1 with the projection: every saved latent within eps of f, and not equal to f
    assert (rec.final - f).abs().max() <= 0.05 + 1e-6
    assert (rec.final - f).abs().max() > 0.05 / 2
    assert {"s_inf", "s_div", "p_yhat", "entropy", "p_seed_yhat", "entropy_seed", "prompt"} <= set(rows[0])


def test_one_sign_step_moves_each_entry_by_the_step_size(models, monkeypatch):
    ds, names, prior, clf = models
    rec = Recorder(monkeypatch, prior)
    gif_sd(prior, clf, names, step_size=0.1)(_jobs(ds, names, [2], 2))
    for before, after, grad in zip(rec.before[0], rec.after[0], rec.grads[0]):
        moved = (after - before).abs()
        assert torch.allclose(moved[grad != 0], torch.full_like(moved[grad != 0], 0.1), atol=1e-6)
        assert torch.all(moved[grad == 0] == 0)
    assert len(rec.grads) == 1  # the official single step


def test_unguided_decodes_f_unchanged(models, monkeypatch):
    ds, names, prior, clf = models
    rec = Recorder(monkeypatch, prior)
    jobs = _jobs(ds, names, [0], 2)
    f = prior.prepare(jobs).f
    rows = gif_sd(prior, clf, names, cls=SD)(jobs).rows
    assert torch.equal(rec.final, f) and not rec.grads and "s_inf" not in rows[0] and "eps" not in rows[0]


def test_diversity_is_zero_for_k1(models):
    ds, names, prior, clf = models
    rows = gif_sd(prior, clf, names)(_jobs(ds, names, [0, 1], 1)).rows
    assert all(r["s_div"] == 0.0 for r in rows)


def test_non_finite_score_leaves_variant_unperturbed_and_flags(models, monkeypatch):
    ds, names, prior, clf = models
    rec = Recorder(monkeypatch, prior)

    class NanForFirstSeed(GifSD):
        """A score that is not finite for the seed of index 0 (the extension point a new criterion uses)."""

        def score(self, p_seed, p_var, feats, y_hat):
            groups = super().score(p_seed, p_var, feats, y_hat)
            if torch.equal(p_seed, self.first):
                groups = [(g, t.plus("s_bad", torch.tensor(math.nan))) for g, t in groups]
            return groups

    method = gif_sd(prior, clf, names, cls=NanForFirstSeed)
    jobs = _jobs(ds, names, [0, 1], 2)
    method.first = clf.probs(to_tensor01(jobs[0].image)[None])[0]  # p_seed of seed 0
    f = prior.prepare(jobs).f
    rows = method(jobs).rows
    assert [r["flagged"] for r in rows] == [1, 1, 0, 0]
    assert torch.equal(rec.final[:2], f[:2]) and not torch.equal(rec.final[2:], f[2:])
    assert all(torch.isfinite(g).all() for g in rec.grads[0])


def _run(ds, names, prior, clf, out, options=None, **kw):
    args = dict(ratio=2, batch_size=2, progress=False, limit=6)
    args.update(kw)
    return expand(gif_sd(prior, clf, names, **(options or {})), ds, out, **args)


def _same_tree(a: Path, b: Path):
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b
    _, mismatch, errors = filecmp.cmpfiles(a, b, [str(p) for p in files_a], shallow=False)
    assert not mismatch and not errors


def test_two_runs_write_identical_bytes(models, tmp_path):
    ds, names, prior, clf = models
    r = _run(ds, names, prior, clf, tmp_path / "a")
    _run(ds, names, prior, clf, tmp_path / "b")
    assert r.written == 12
    _same_tree(tmp_path / "a", tmp_path / "b")
    meta = (tmp_path / "a" / "metadata.csv").read_text().splitlines()
    assert len(meta) == 13 and meta[0].startswith("file_name,label,class_name,seed_index,seed_path,variant,method")


def test_resume_after_crash_equals_one_run(models, tmp_path, monkeypatch):
    ds, names, prior, clf = models
    _run(ds, names, prior, clf, tmp_path / "full")

    from gifkit.io.store import ExpansionStore

    calls = {"n": 0}
    real_write_part = ExpansionStore.write_part

    def crash_on_second_batch(self, batch_id, rows):
        calls["n"] += 1
        if calls["n"] == 2:  # images of batch 2 are on disk, its part file is not
            raise KeyboardInterrupt("simulated crash")
        return real_write_part(self, batch_id, rows)

    monkeypatch.setattr(ExpansionStore, "write_part", crash_on_second_batch)
    with pytest.raises(KeyboardInterrupt):
        _run(ds, names, prior, clf, tmp_path / "resumed")
    monkeypatch.setattr(ExpansionStore, "write_part", real_write_part)
    survivors = {p: p.stat().st_mtime_ns for p in (tmp_path / "resumed").rglob("*.png")}
    assert len(survivors) == 8  # batches 1 and 2 wrote their images

    prepared = []
    real_prepare = prior.prepare
    monkeypatch.setattr(prior, "prepare", lambda jobs: prepared.append(len(jobs)) or real_prepare(jobs))
    r = _run(ds, names, prior, clf, tmp_path / "resumed")
    assert prepared == [4, 4]  # batch 1 skipped; batch 2 recomputed for its rows; batch 3 new
    assert r.written == 4 and r.existing == 8
    assert all(p.stat().st_mtime_ns == t for p, t in survivors.items())  # nothing valid rewritten
    _same_tree(tmp_path / "full", tmp_path / "resumed")


def test_limit_can_grow_and_settings_cannot_change(models, tmp_path):
    ds, names, prior, clf = models
    _run(ds, names, prior, clf, tmp_path / "x", limit=2)
    r = _run(ds, names, prior, clf, tmp_path / "x", limit=4)
    assert r.existing == 4 and r.written == 4
    with pytest.raises(ValueError, match="guidance"):
        _run(ds, names, prior, clf, tmp_path / "x", options={"eps": 0.1})
    with pytest.raises(ValueError, match="ratio"):
        _run(ds, names, prior, clf, tmp_path / "y", ratio=0)
    assert json.loads((tmp_path / "x" / "run.json").read_text())["ratio"] == 2


def test_bad_seed_images_are_skipped_and_listed(models, tmp_path):
    from PIL import Image

    _, _, prior, clf = models
    root = tmp_path / "imgs"
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
    Image.new("RGB", (20, 12), (250, 0, 0)).save(root / "cat" / "a.png")
    Image.new("LA", (16, 16)).save(root / "cat" / "b.png")
    (root / "dog" / "c.png").write_bytes(b"\x89PNG broken")
    ds, names = load_dataset(str(root))
    r = expand(gif_sd(prior, clf, names), ds, tmp_path / "out", ratio=2, batch_size=4, progress=False)
    assert r.written == 4 and [i for i, _ in r.skipped] == [2] and "c.png" in r.skipped[0][1]
    assert json.loads((tmp_path / "out" / "skipped.json").read_text())[0][0] == 2
    again = expand(gif_sd(prior, clf, names), ds, tmp_path / "out", ratio=2, batch_size=4, progress=False)
    assert again.written == 0 and again.existing == 4  # the known-bad seed does not force a recompute
    assert not (tmp_path / "out" / ".parts").exists()


def test_official_clip_norm_quirk_changes_seed_and_generated_preprocessing(models, monkeypatch):
    ds, names, prior, clf = models
    seen = []
    real = clf.image_features

    def spy(x):
        seen.append((clf.mean, clf.std, x.requires_grad))
        return real(x)

    monkeypatch.setattr(clf, "image_features", spy)
    jobs = _jobs(ds, names, [0], 2)
    gif_sd(prior, clf, names, official_clip_norm=True, opt_steps=2, update="adam", lr=0.1)(jobs)
    from gifkit.core.guidance import CIFAR_MEAN, CLIP_MEAN

    assert seen[0][0] == CIFAR_MEAN  # the seed
    assert [s[0] for s in seen[1:3]] == [(0.0, 0.0, 0.0)] * 2 and all(s[2] for s in seen[1:3])  # two guided passes
    assert seen[-1][0] == tuple(CLIP_MEAN) and clf.mean == tuple(CLIP_MEAN)  # reporting, then restored
