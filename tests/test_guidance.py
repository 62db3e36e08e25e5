"""Zero-shot probabilities, S_inf (Eq. 5), S_div (Eq. 6), the score and the CLIP wrapper."""
import math

import pytest
import torch
import torch.nn.functional as F

from gifkit.core.guidance import (
    CLIP_MEAN,
    CLIP_STD,
    GuidanceTerms,
    clip_preprocess,
    diversity,
    entropy,
    gif_score,
    guidance_terms,
    informativeness,
    zero_shot_probs,
)
from gifkit.models.guides import ZeroShotClassifier

# --- zero_shot_probs ---------------------------------------------------------


def test_zero_shot_probs_scale_100():
    u = torch.tensor([[2.0, 0.0]], dtype=torch.float64)  # normalised to [1, 0]
    w = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    p = zero_shot_probs(u, w)  # logits [100, 0]
    e = math.exp(-100)
    torch.testing.assert_close(p, torch.tensor([[1 / (1 + e), e / (1 + e)]], dtype=torch.float64))


def test_zero_shot_probs_hand_computed_batch():
    u = torch.tensor([[3.0, 4.0], [0.0, -1.0]], dtype=torch.float64)  # -> [0.6, 0.8], [0, -1]
    w = torch.tensor([[1.0, 0.0], [0.0, 5.0]], dtype=torch.float64)  # -> e1, e2
    p = zero_shot_probs(u, w, logit_scale=10.0)  # logits [6, 8] and [0, -10]
    e2, e10 = math.exp(2), math.exp(-10)
    expected = torch.tensor([[1 / (1 + e2), e2 / (1 + e2)], [1 / (1 + e10), e10 / (1 + e10)]], dtype=torch.float64)
    torch.testing.assert_close(p, expected)
    torch.testing.assert_close(p.sum(-1), torch.ones(2, dtype=torch.float64))


def test_zero_shot_probs_shape_mismatch():
    with pytest.raises(ValueError, match="feature dims"):
        zero_shot_probs(torch.zeros(2, 3), torch.zeros(4, 5))
    with pytest.raises(ValueError, match=r"\[C, D\]"):
        zero_shot_probs(torch.zeros(2, 3), torch.zeros(3))


# --- entropy -----------------------------------------------------------------


def test_entropy_hand_computed():
    p = torch.tensor([[0.5, 0.5, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25], [0.25, 0.75, 0.0, 0.0]])
    torch.testing.assert_close(entropy(p), torch.tensor([math.log(2), math.log(4), 0.5623351446188083]))


def test_entropy_of_one_hot_is_zero_with_finite_gradient():
    p = torch.tensor([1.0, 0.0], requires_grad=True)
    h = entropy(p)
    assert h.item() == 0.0
    h.backward()
    assert torch.isfinite(p.grad).all()


def test_entropy_gradient_through_underflowing_softmax():
    logits = torch.tensor([[0.0, -200.0, 3.0]], requires_grad=True)
    p = torch.softmax(100 * logits, dim=-1)  # p[0, 0] and p[0, 1] underflow to exactly 0
    assert (p == 0).sum() == 2
    h = entropy(p)
    assert torch.isfinite(h).all()
    h.sum().backward()
    assert torch.isfinite(logits.grad).all()


# --- informativeness (Eq. 5) -------------------------------------------------

P_SEED = torch.tensor([0.6, 0.3, 0.1], dtype=torch.float64)
P_VAR = torch.tensor([[0.5, 0.25, 0.25], [0.2, 0.7, 0.1]], dtype=torch.float64)
H_VAR = (1.5 * math.log(2), -(0.2 * math.log(0.2) + 0.7 * math.log(0.7) + 0.1 * math.log(0.1)))
H_SEED = -(0.6 * math.log(0.6) + 0.3 * math.log(0.3) + 0.1 * math.log(0.1))


def test_informativeness_hand_computed():
    # y_hat = argmax p_seed = 0; mean p'[0] = (0.5 + 0.2) / 2
    expected = 0.35 + (H_VAR[0] + H_VAR[1]) / 2 - H_SEED
    assert expected == pytest.approx(0.3728239368, abs=1e-9)
    assert informativeness(P_SEED, P_VAR).item() == pytest.approx(expected, abs=1e-12)
    assert informativeness(P_SEED[None], P_VAR).item() == pytest.approx(expected, abs=1e-12)  # [1, C]
    # overriding y_hat (e.g. with the dataset label) changes only the first term
    assert informativeness(P_SEED, P_VAR, y_hat=1).item() == pytest.approx(expected + 0.125, abs=1e-12)


def test_informativeness_validation():
    with pytest.raises(ValueError, match="classes"):
        informativeness(torch.ones(4) / 4, P_VAR)
    with pytest.raises(ValueError, match=r"\[K, C\]"):
        informativeness(P_SEED, P_SEED)
    with pytest.raises(ValueError, match=r"\[C\] or \[1, C\]"):
        informativeness(P_VAR, P_VAR)
    with pytest.raises(ValueError, match="y_hat"):
        informativeness(P_SEED, P_VAR, y_hat=3)


# --- diversity (Eq. 6) -------------------------------------------------------


def test_diversity_is_exactly_zero_for_one_variant():
    v = F.normalize(torch.randn(1, 16, generator=torch.Generator().manual_seed(0)), dim=-1)
    assert diversity(v).item() == 0.0
    assert diversity(v.repeat(3, 1)).item() == pytest.approx(0.0, abs=1e-7)  # identical variants


def test_diversity_hand_computed():
    v = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    # q_bar = softmax([.5, .5]) = [.5, .5]; q_1 = [s, 1 - s], s = sigmoid(1); both KLs are equal
    s = 1 / (1 + math.exp(-1))
    expected = 0.5 * (math.log(0.25) - math.log(s * (1 - s)))
    assert expected == pytest.approx(0.1201145070, abs=1e-9)
    assert diversity(v).item() == pytest.approx(expected, abs=1e-12)


def test_diversity_equals_kldivloss_and_has_gradient():
    g = torch.Generator().manual_seed(3)
    v = F.normalize(torch.randn(5, 8, generator=g, dtype=torch.float64), dim=-1).requires_grad_(True)
    log_q = torch.log_softmax(v, dim=-1)  # [K, D]
    log_q_bar = torch.log_softmax(v.mean(0, keepdim=True), dim=-1).expand_as(log_q)  # [K, D]
    ref = torch.nn.KLDivLoss(reduction="batchmean", log_target=True)(log_q, log_q_bar)
    out = diversity(v)
    assert out.item() > 0
    torch.testing.assert_close(out, ref)
    out.backward()
    assert torch.isfinite(v.grad).all() and v.grad.abs().sum() > 0
    # analytic gradient (through q_k and through the undetached mean) matches finite differences
    assert torch.autograd.gradcheck(diversity, (v.detach().clone().requires_grad_(True),))


def test_diversity_validation():
    with pytest.raises(ValueError, match=r"\[K, D\]"):
        diversity(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match=r"\[K, D\]"):
        diversity(torch.zeros(0, 3))


# --- score -------------------------------------------------------------------


def test_guidance_terms_and_score():
    v = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    s_inf = 0.35 + (H_VAR[0] + H_VAR[1]) / 2 - H_SEED
    s_div = diversity(v).item()
    t = guidance_terms(P_SEED, P_VAR, v)
    assert isinstance(t, GuidanceTerms)
    assert t.score.item() == pytest.approx(s_inf + s_div, abs=1e-12)
    assert t.s_inf == pytest.approx(s_inf, abs=1e-12) and t.s_div == pytest.approx(s_div, abs=1e-12)
    assert t.y_hat == 0
    assert t.p_yhat_seed == pytest.approx(0.6) and t.entropy_seed == pytest.approx(H_SEED)
    torch.testing.assert_close(t.p_yhat_var, torch.tensor([0.5, 0.2]))
    torch.testing.assert_close(t.entropy_var, torch.tensor(H_VAR, dtype=torch.float32))
    weighted = gif_score(P_SEED, P_VAR, v, w_inf=2.0, w_div=0.5)
    assert weighted.item() == pytest.approx(2 * s_inf + 0.5 * s_div, abs=1e-12)
    with pytest.raises(ValueError, match="feature rows"):
        guidance_terms(P_SEED, P_VAR, v[:1])


def test_score_gradient_reaches_logits_and_features():
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(3, 4, generator=g, requires_grad=True)  # [K, C]
    feats = torch.randn(3, 8, generator=g, requires_grad=True)  # [K, D]
    p_seed = torch.softmax(torch.randn(4, generator=g), -1)
    t = guidance_terms(p_seed, torch.softmax(logits, -1), F.normalize(feats, dim=-1))
    assert t.score.requires_grad and not t.p_yhat_var.requires_grad
    t.score.backward()
    assert logits.grad.abs().sum() > 0 and feats.grad.abs().sum() > 0


# --- clip_preprocess ---------------------------------------------------------


def test_clip_preprocess_normalises_without_resize():
    x = torch.full((2, 3, 4, 4), 0.5)
    out = clip_preprocess(x, 4)
    expected = torch.tensor([(0.5 - m) / s for m, s in zip(CLIP_MEAN, CLIP_STD)]).view(1, 3, 1, 1)
    torch.testing.assert_close(out, expected.expand(2, 3, 4, 4))


def test_clip_preprocess_center_crop_and_resize():
    x = torch.arange(2 * 3 * 8 * 12, dtype=torch.float32).view(2, 3, 8, 12)
    out = clip_preprocess(x, (8, 8), mean=(0, 0, 0), std=(1, 1, 1))  # short side already 8
    torch.testing.assert_close(out, x[:, :, :, 2:10])  # crop left = round((12 - 8) / 2)
    const = torch.full((1, 3, 20, 40), 0.25, requires_grad=True)
    out = clip_preprocess(const, 10, mean=(0, 0, 0), std=(1, 1, 1))  # resize to 10x20, crop 10x10
    assert out.shape == (1, 3, 10, 10)
    torch.testing.assert_close(out, torch.full((1, 3, 10, 10), 0.25))
    out.sum().backward()
    assert const.grad.abs().sum() > 0


def test_clip_preprocess_validation():
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        clip_preprocess(torch.zeros(1, 1, 4, 4), 4)
    with pytest.raises(ValueError, match="square"):
        clip_preprocess(torch.zeros(1, 3, 4, 4), (4, 6))


# --- ZeroShotClassifier with a tiny random open_clip model ---------------------

CLASSES = ["cat", "dog", "red car"]


@pytest.fixture(scope="module")
def tiny_clip():
    open_clip = pytest.importorskip("open_clip")
    torch.manual_seed(0)
    model = open_clip.model.CLIP(
        embed_dim=32,
        vision_cfg=open_clip.model.CLIPVisionCfg(layers=2, width=32, patch_size=8, image_size=32, head_width=16),
        text_cfg=open_clip.model.CLIPTextCfg(context_length=77, vocab_size=49408, width=32, heads=4, layers=2),
    )
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    assert len(tokenizer.encoder) == 49408 == tokenizer.vocab_size
    return model, tokenizer


@pytest.fixture(scope="module")
def classifier(tiny_clip):
    model, tokenizer = tiny_clip
    return ZeroShotClassifier(model, tokenizer, CLASSES)


def test_classifier_text_features(classifier, tiny_clip):
    model, tokenizer = tiny_clip
    tf = classifier.text_features
    assert tf.shape == (3, 32)
    torch.testing.assert_close(tf.norm(dim=-1), torch.ones(3))
    with torch.no_grad():
        ref = F.normalize(model.encode_text(tokenizer([f"This is a photo of a {c}" for c in CLASSES])), dim=-1)
    torch.testing.assert_close(tf, ref)
    assert all(not p.requires_grad for p in model.parameters())
    assert not model.training
    classifier.train()
    assert not model.training  # stays in eval


def test_classifier_template_ensemble(tiny_clip):
    model, tokenizer = tiny_clip
    templates = ("a photo of a {}.", "a sketch of a {}.")
    zs = ZeroShotClassifier(model, tokenizer, CLASSES, templates=templates)
    with torch.no_grad():
        per = [F.normalize(model.encode_text(tokenizer([t.format(c) for c in CLASSES])), dim=-1) for t in templates]
    torch.testing.assert_close(zs.text_features, F.normalize((per[0] + per[1]) / 2, dim=-1))


def test_classifier_probs_and_gradients(classifier):
    assert classifier.image_size == 32  # from model.visual.image_size (no preprocess_cfg)
    assert classifier.mean == CLIP_MEAN and classifier.std == CLIP_STD
    images = torch.rand(2, 3, 48, 64, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    p = classifier.probs(images)
    assert p.shape == (2, 3)
    torch.testing.assert_close(p.sum(-1), torch.ones(2))
    feats = classifier.image_features(images)
    assert feats.shape == (2, 32)
    torch.testing.assert_close(feats.norm(dim=-1), torch.ones(2))
    torch.testing.assert_close(classifier.probs_from_features(feats), p)
    torch.testing.assert_close(classifier(images), p)
    p[:, 0].sum().backward()
    assert torch.isfinite(images.grad).all() and images.grad.abs().sum() > 0


def test_classifier_preprocess_cfg_and_overrides(tiny_clip, monkeypatch):
    model, tokenizer = tiny_clip
    cfg = {"size": 32, "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}
    monkeypatch.setattr(model.visual, "preprocess_cfg", cfg, raising=False)
    zs = ZeroShotClassifier(model, tokenizer, CLASSES[:1])
    assert (zs.image_size, zs.mean, zs.std) == (32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    zs = ZeroShotClassifier(model, tokenizer, CLASSES[:1], image_size=(16, 16), mean=(0, 0, 0), std=(1, 1, 1))
    assert (zs.image_size, zs.mean, zs.std) == (16, (0, 0, 0), (1, 1, 1))


def test_classifier_validation(tiny_clip):
    model, tokenizer = tiny_clip
    with pytest.raises(ValueError, match="class_names is empty"):
        ZeroShotClassifier(model, tokenizer, [])
    with pytest.raises(ValueError, match="template"):
        ZeroShotClassifier(model, tokenizer, CLASSES, templates=("a photo",))
