"""The pre-2023-12-06 official S_div (`--div-quirk pre-2023-12`) and the exact S_div sign-flip diagnostic, by
hand-computed values."""
import math

import pytest
import torch

from gifkit.core.guidance import (GuidanceConfig, GuidanceTerms, diversity, diversity_pre_fix, guidance_terms,
                                  score_groups)
from gifkit.methods.callbacks import DivDiagnostics, StepState


def test_pre_fix_s_div_value_and_gradient_by_hand():
    v = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], requires_grad=True)
    # mean a = (0.5, 0.5, 0): -LSE(a) = -log(2 e^0.5 + 1); d/dv_k = -(1/K) softmax(a)
    z = 2 * math.exp(0.5) + 1
    value = diversity_pre_fix(v)
    assert float(value.detach()) == pytest.approx(-math.log(z), abs=1e-6)
    (grad,) = torch.autograd.grad(value, v)
    row = [-0.5 * math.exp(0.5) / z, -0.5 * math.exp(0.5) / z, -0.5 / z]
    assert grad.tolist() == [pytest.approx(row, abs=1e-7)] * 2
    # the official expression itself: KLDivLoss(batchmean, log_target) of the repeated mean against its log_softmax
    mean = v.mean(0, keepdim=True).repeat(2, 1)
    official = torch.nn.KLDivLoss(reduction="batchmean", log_target=True)(mean, torch.log_softmax(mean, dim=1))
    assert float(official.detach()) == pytest.approx(float(value.detach()), abs=1e-6)
    # temperature divides the mean feature: -LSE(a / T)
    assert float(diversity_pre_fix(v, 0.5)) == pytest.approx(-math.log(2 * math.e + 1), abs=1e-6)


def test_pre_fix_s_div_has_a_gradient_far_larger_than_the_fixed_term():
    """Not a constant: on random 512-d unit features its gradient is 20-40 times the fixed Eq. 6's."""
    for k in (2, 5):
        v = torch.nn.functional.normalize(torch.randn(k, 512, generator=torch.Generator().manual_seed(k)), dim=-1)
        v.requires_grad_(True)
        (fixed,) = torch.autograd.grad(diversity(v), v)
        (quirk,) = torch.autograd.grad(diversity_pre_fix(v), v)
        assert 20 < float(quirk.norm() / fixed.norm()) < 40


def test_div_quirk_flows_through_the_score_and_stays_out_of_the_default_record():
    p_seed = torch.tensor([0.7, 0.2, 0.1])
    p_var = torch.tensor([[0.6, 0.3, 0.1], [0.5, 0.4, 0.1]])
    feats = torch.nn.functional.normalize(torch.tensor([[1.0, 2.0, 0.5], [0.3, 1.0, 2.0]]), dim=-1)
    quirk = GuidanceConfig(div_quirk="pre-2023-12", div_group=0)
    [(_, terms)] = score_groups(p_seed, p_var, feats, 0, quirk)
    assert terms.s_div == pytest.approx(float(diversity_pre_fix(feats)), abs=1e-7)
    plain = guidance_terms(p_seed, p_var, feats, y_hat=0)
    assert terms.s_inf == pytest.approx(plain.s_inf) and terms.s_div != pytest.approx(plain.s_div)
    assert "div_quirk" not in GuidanceConfig().record() and quirk.record()["div_quirk"] == "pre-2023-12"
    with pytest.raises(ValueError, match="div_quirk"):
        GuidanceConfig(div_quirk="2022")


def _terms(score, s_div):
    zero = torch.zeros(1)
    return GuidanceTerms(score=score, s_inf=0.0, s_div=float(s_div), s_div_tensor=s_div, y_hat=0, p_yhat_seed=0.0,
                         entropy_seed=0.0, p_yhat_var=zero, entropy_var=zero)


def _diagnose(steps, c_rest, c_div):
    """One variant with z, b of 2 entries each; S = rest . (z, b) + S_div, S_div = c_div . (z, b)."""
    g = GuidanceConfig()
    state = StepState([None], 1, g)
    diag = DivDiagnostics(g)
    z = torch.zeros(1, 2, requires_grad=True)
    b = torch.zeros(1, 2, requires_grad=True)
    for _ in range(steps):
        x = torch.cat([z, b], 1)
        s_div = (x * c_div).sum()
        score = (x * c_rest).sum() + g.w_div * s_div
        kept = [_terms(score, s_div)]
        z.grad, b.grad = None, None
        diag.before_backward(state, kept, z, b)
        score.backward()
        diag.before_step(state, z, b)
    rows = [{}]
    diag.rows(state, None, rows)
    return rows[0]


def test_sign_flip_diagnostic_is_exact_where_s_div_dwarfs_the_rest():
    # rest gradient +1e-3 everywhere; S_div's: +1e5 (same sign: no flip), -1e5 (flips), 0 (no flip), -1e-4 (no flip)
    c_rest = torch.tensor([[1e-3, 1e-3, 1e-3, 1e-3]])
    c_div = torch.tensor([[1e5, -1e5, 0.0, -1e-4]])
    row = _diagnose(1, c_rest, c_div)
    assert row["div_sign_flips"] == 1 and row["div_grad_entries"] == 4
    # the float32 difference (the whole gradient minus S_div's) loses the rest where S_div is 1e5: it would
    # count the first entry as flipped too
    g_all = (c_rest + c_div).float()
    assert int((torch.sign(g_all) != torch.sign(g_all - c_div)).sum()) == 2
    assert row["div_grad_ratio"] == pytest.approx(math.sqrt(2e10 + 1e-8) / math.sqrt(4e-6), rel=1e-5)


def test_sign_flip_share_counts_every_step_entry():
    c_rest = torch.tensor([[1.0, -1.0, 1.0, -1.0]])
    c_div = torch.tensor([[-2.0, 2.0, -2.0, 0.5]])  # flips 3 of 4 per step
    row = _diagnose(3, c_rest, c_div)
    assert (row["div_sign_flips"], row["div_grad_entries"]) == (9, 12)
    assert row["div_sign_flips"] / row["div_grad_entries"] == 0.75 <= 1
