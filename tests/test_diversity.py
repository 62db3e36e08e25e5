"""S_div made observable: the temperature, the official grouping of a seed's variants, and the per-variant
diagnostic of what S_div changes in the signed step (docs/design.md §1.5 and §2)."""
import math

import pytest
import torch

from gifkit.core.guidance import GuidanceConfig, diversity, group_slices, score_groups
from gifkit.core.prior import Job
from gifkit.methods.gif_sd import GifSD
from gifkit.data import load_dataset
from gifkit.models import tiny
from gifkit.models.guides import ZeroShotClassifier
from gifkit.priors.sd import SDPrior

pytestmark = pytest.mark.usefixtures("one_thread")


def test_diversity_temperature_by_hand():
    v = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # two unit features, mean (0.5, 0.5)
    for t in (1.0, 0.25):
        a, b = 1 / t, 0.0
        lse = math.log(math.exp(a) + math.exp(b))  # LSE(v_k / t), the same for both rows
        lse_bar = math.log(2 * math.exp(0.5 / t))  # LSE(mean / t)
        assert float(diversity(v, t)) == pytest.approx(lse - lse_bar, rel=1e-5)  # Jensen gap form of Eq. 6
    assert float(diversity(v, 0.1)) > 10 * float(diversity(v, 1.0))
    with pytest.raises(ValueError, match="temperature"):
        diversity(v, 0.0)


def test_the_bound_of_design_section_1_5_holds_for_unit_features():
    g = torch.Generator().manual_seed(0)
    for d in (64, 512):
        v = torch.nn.functional.normalize(torch.randn(5, d, generator=g), dim=-1)
        bound = (1 - v.mean(0).norm() ** 2) / (2 * d)
        assert float(diversity(v)) <= 1.05 * float(bound)


def test_group_slices_match_the_official_pairs():
    assert group_slices(5, 2) == [slice(0, 2), slice(2, 4), slice(4, 5)]
    assert group_slices(5, 0) == [slice(0, 5)] == group_slices(5, 5) == group_slices(5, 9)
    assert group_slices(1, 2) == [slice(0, 1)]
    with pytest.raises(ValueError, match="div_group"):
        GuidanceConfig(div_group=-1)
    with pytest.raises(ValueError, match="div_temperature"):
        GuidanceConfig(div_temperature=0)


def test_grouped_scores_sum_the_groups_and_the_singleton_has_no_diversity():
    g = torch.Generator().manual_seed(1)
    p_seed = torch.softmax(torch.randn(4, generator=g), -1)
    p_var = torch.softmax(torch.randn(5, 4, generator=g), -1)
    feats = torch.nn.functional.normalize(torch.randn(5, 8, generator=g), dim=-1)
    pairs = score_groups(p_seed, p_var, feats, 0, GuidanceConfig(div_group=2))
    whole = score_groups(p_seed, p_var, feats, 0, GuidanceConfig(div_group=0))
    assert [s for s, _ in pairs] == group_slices(5, 2) and len(whole) == 1
    assert pairs[-1][1].s_div == 0.0  # the official run's last group of one variant
    assert pairs[0][1].s_div == pytest.approx(float(diversity(feats[:2])), rel=1e-6)
    assert whole[0][1].s_div == pytest.approx(float(diversity(feats)), rel=1e-6)


@pytest.fixture(scope="module")
def models():
    ds, names = load_dataset("smoke")
    clip = tiny.tiny_clip()
    clf = ZeroShotClassifier(clip.model, clip.tokenizer, names)
    prior = SDPrior(tiny.tiny_sd(), steps=2, strength=0.9, guidance_scale=5.0)
    jobs = [Job(i, v, ds[i][0], ds[i][1], names[ds[i][1]], key=(0, i, v)) for i in (0, 1) for v in range(3)]
    return prior, clf, jobs


def imagine_batch(prior, clf, jobs, options):
    made = GifSD.from_models(prior, clf, **options)(jobs)
    return made.images, made.rows


def test_diagnostics_count_the_signs_s_div_flips(models):
    prior, clf, jobs = models
    # without S_div nothing can flip and its gradient is zero
    _, rows = imagine_batch(prior, clf, jobs, dict(w_div=0.0, div_diagnostics=True))
    assert all(r["div_sign_flips"] == 0 and r["div_grad_ratio"] == 0.0 for r in rows)
    entries = rows[0]["div_grad_entries"]
    assert entries == 2 * 4  # z and b: [C=4, 1, 1] each per variant
    # with S_div alone every nonzero entry's sign comes from S_div: "flipped" from sign 0, ratio infinite
    _, rows = imagine_batch(prior, clf, jobs, dict(w_inf=0.0, div_group=0, div_diagnostics=True))
    assert all(r["div_sign_flips"] > 0 and math.isinf(r["div_grad_ratio"]) for r in rows)
    # a sharp softmax makes S_div large against S_inf: its gradient grows with 1 / T
    _, warm = imagine_batch(prior, clf, jobs, dict(div_group=0, div_diagnostics=True))
    _, cold = imagine_batch(prior, clf, jobs, dict(div_group=0, div_temperature=0.01,
                                                                  div_diagnostics=True))
    assert sum(r["div_grad_ratio"] for r in cold) > 10 * sum(r["div_grad_ratio"] for r in warm)
    assert sum(r["div_sign_flips"] for r in cold) >= sum(r["div_sign_flips"] for r in warm)


def test_diagnostics_do_not_change_the_images(models):
    prior, clf, jobs = models
    a, _ = imagine_batch(prior, clf, jobs, dict(div_temperature=0.05))
    b, rows = imagine_batch(prior, clf, jobs, dict(div_temperature=0.05, div_diagnostics=True))
    assert torch.equal(a, b) and "div_sign_flips" in rows[0]
