"""DreamDA's CycleDiffusion source branch as the official run has it: an empty source prompt at source guidance 1.5,
and one x_t (and source-branch draws) per seed shared by its variants; each is a flag."""
import pytest
import torch

from gifkit.core.prior import Job
from gifkit.methods.dreamda import DreamDAConfig
from gifkit.models import tiny
from gifkit.priors.dreamda import DreamDAPrior

pytestmark = pytest.mark.usefixtures("one_thread")
KW = dict(sampler="cycle", steps=4, strength=0.8, guidance_scale=7.5)


def _jobs(smoke, k):
    ds, names = smoke
    return [Job(0, v, ds[0][0], ds[0][1], names[ds[0][1]], key=(0, 0, v)) for v in range(k)]


def test_official_source_branch_is_the_default():
    cfg = DreamDAConfig()
    assert (cfg.source_prompt, cfg.source_guidance_scale, cfg.shared_start) == ("", 1.5, True)
    prior = DreamDAPrior(tiny.tiny_sd(), noise_scale=3.0, **KW)
    assert {k: prior.params[k] for k in ("source_prompt", "source_guidance_scale", "shared_start")} == \
        {"source_prompt": "", "source_guidance_scale": 1.5, "shared_start": True}


def test_the_pipeline_gets_the_source_prompt_and_scale(smoke, monkeypatch):
    prior = DreamDAPrior(tiny.tiny_sd(), noise_scale=0.0, **KW)
    seen = []
    cycle = prior.cycle_pipeline()
    real = type(cycle).__call__

    def spy(self, *args, **kwargs):
        seen.append((kwargs["prompt"], kwargs["source_prompt"], kwargs["source_guidance_scale"]))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(type(cycle), "__call__", spy)
    jobs = _jobs(smoke, 1)
    prior.prepare(jobs)
    assert seen == [(f"a photo of a {jobs[0].class_name}", "", 1.5)]
    seen.clear()
    DreamDAPrior(prior.pipe, noise_scale=0.0, source_prompt="class", source_guidance_scale=1.0, **KW).prepare(jobs)
    assert seen == [(f"a photo of a {jobs[0].class_name}",) * 2 + (1.0,)]


def test_variants_of_a_seed_share_x_t_unless_told_otherwise(smoke):
    pipe = tiny.tiny_sd()
    jobs = _jobs(smoke, 2)
    shared = DreamDAPrior(pipe, noise_scale=0.0, **KW).prepare(jobs).f
    assert torch.equal(shared[0], shared[1])  # same x_t, same source draws, no bottleneck noise: the same latent
    own = DreamDAPrior(pipe, noise_scale=0.0, shared_start=False, **KW).prepare(jobs).f
    assert float((own[0] - own[1]).abs().mean()) > 1e-3
    noisy = DreamDAPrior(pipe, noise_scale=3.0, **KW).prepare(jobs).f
    assert float((noisy[0] - noisy[1]).abs().mean()) > 1e-3  # the bottleneck noise alone tells them apart
