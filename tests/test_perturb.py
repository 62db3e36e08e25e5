"""Eq. 1: perturbation, L-inf projection, noise init and the update rules."""
import pytest
import torch

from gifkit.core.perturb import (
    UPDATE_RULES,
    LatentOptimizer,
    init_noise,
    perturb,
    project_linf,
    sign_step,
)


def test_every_update_rule_moves_uphill_and_an_unknown_one_is_refused():
    for rule in UPDATE_RULES:  # one step on S = <w, x> raises S, whatever the rule
        x = torch.zeros(3, requires_grad=True)
        w = torch.tensor([1.0, -2.0, 0.5])
        opt = LatentOptimizer([x], rule=rule, steps=1, step_size=0.1)
        (w * x).sum().backward()
        opt.step()
        assert float((w * x).sum()) > 0, rule
    with pytest.raises(ValueError, match="sign"):
        LatentOptimizer([torch.zeros(1, requires_grad=True)], rule="sgd")


# --- perturb -----------------------------------------------------------------


def test_perturb_hand_computed():
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 2, 1, 2)  # [1, C=2, 1, 2]
    z = torch.tensor([[0.5, 0.0], [1.0, -1.0]]).view(2, 2, 1, 1)  # [K=2, C, 1, 1]
    b = torch.tensor([[1.0, 0.0], [0.0, 2.0]]).view(2, 2, 1, 1)
    out = perturb(f, z, b)
    expected = torch.tensor(
        [
            [[[2.5, 4.0]], [[3.0, 4.0]]],  # k=0: ch0 1.5*f+1, ch1 1*f+0
            [[[2.0, 4.0]], [[2.0, 2.0]]],  # k=1: ch0 2*f+0,   ch1 0*f+2
        ]
    )
    assert out.shape == (2, 2, 1, 2)
    torch.testing.assert_close(out, expected)


def test_perturb_zero_noise_is_identity_and_bad_shapes_raise():
    f = torch.randn(1, 3, 4, 4)
    torch.testing.assert_close(perturb(f, torch.zeros(1, 3, 1, 1), torch.zeros(1, 3, 1, 1)), f)
    with pytest.raises(ValueError, match="broadcast"):
        perturb(f, torch.zeros(2, 5, 1, 1), torch.zeros(2, 5, 1, 1))


# --- project_linf ------------------------------------------------------------


def test_project_linf_hand_computed_and_gradient():
    x = torch.tensor([-3.0, -0.5, 0.2, 2.0], requires_grad=True)
    c = torch.tensor([0.0, 0.0, 0.0, 0.5])
    out = project_linf(x, c, 1.0)
    torch.testing.assert_close(out, torch.tensor([-1.0, -0.5, 0.2, 1.5]))
    out.sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([0.0, 1.0, 1.0, 0.0]))


def test_project_linf_holds_with_broadcast_center():
    g = torch.Generator().manual_seed(0)
    c = torch.randn(1, 4, 6, 6, generator=g)  # [1, C, H, W]
    x = c + 2 * torch.randn(5, 4, 6, 6, generator=g)  # [K, C, H, W]
    eps = 0.8
    out = project_linf(x, c, eps)
    assert out.shape == x.shape
    assert ((out - c).abs() <= eps + 1e-6).all()
    inside = (x - c).abs() <= eps
    assert inside.any() and (~inside).any()
    assert torch.equal(out[inside], x[inside])
    torch.testing.assert_close(project_linf(x, c, 0.0), c.expand_as(x))


@pytest.mark.parametrize("eps", [-0.1, float("nan")])
def test_project_linf_bad_eps(eps):
    with pytest.raises(ValueError, match="eps"):
        project_linf(torch.zeros(2), torch.zeros(2), eps)


# --- init_noise --------------------------------------------------------------


def test_init_noise_shapes():
    f = torch.randn(2, 4, 8, 8)
    z, b = init_noise(f, 3)
    assert z.shape == b.shape == (3, 4, 1, 1)
    z, b = init_noise(f, 3, mode="pixel")
    assert z.shape == b.shape == (3, 4, 8, 8)
    tokens = torch.randn(1, 5, 6)  # [N, T, D]
    z, b = init_noise(tokens, 2, channel_dim=-1)
    assert z.shape == b.shape == (2, 1, 6)
    z, b = init_noise(tokens, 2)  # channel_dim=1: per token
    assert z.shape == (2, 5, 1)
    z, b = init_noise(tokens, 2, mode="pixel")
    assert z.shape == (2, 5, 6)


def test_init_noise_ranges_dtype_and_no_grad():
    f = torch.randn(1, 4, 16, 16, dtype=torch.float64)
    z, b = init_noise(f, 8, mode="pixel", generator=torch.Generator().manual_seed(1))
    assert z.dtype == b.dtype == torch.float64
    assert not z.requires_grad and not b.requires_grad
    assert z.min() >= 0 and z.max() < 1
    assert abs(z.mean().item() - 0.5) < 0.02  # 8192 uniform draws
    assert abs(b.mean().item()) < 0.05 and abs(b.std().item() - 1) < 0.05  # normal
    assert (b < 0).any()


def test_init_noise_streams():
    f = torch.randn(1, 4, 8, 8)
    z1, b1 = init_noise(f, 3, generator=torch.Generator().manual_seed(7))
    z2, b2 = init_noise(f, 3, generator=torch.Generator().manual_seed(7))
    assert torch.equal(z1, z2) and torch.equal(b1, b2)
    # z first (rand), then b (randn), from the same generator
    g = torch.Generator().manual_seed(7)
    assert torch.equal(z1, torch.rand(3, 4, 1, 1, generator=g))
    assert torch.equal(b1, torch.randn(3, 4, 1, 1, generator=g))
    z3, b3 = init_noise(f, 3, generator=torch.Generator().manual_seed(8))
    assert not torch.equal(z1, z3) and not torch.equal(b1, b3)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(k=2, mode="voxel"), "mode"),
        (dict(k=0), "k must be"),
        (dict(k=2, channel_dim=0), "channel_dim"),
        (dict(k=2, channel_dim=4), "channel_dim"),
    ],
)
def test_init_noise_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        init_noise(torch.zeros(1, 4, 2, 2), **kwargs)


def test_init_noise_rejects_integer_latent():
    with pytest.raises(ValueError, match="floating"):
        init_noise(torch.zeros(1, 4, 2, 2, dtype=torch.long), 1)


# --- update rules ------------------------------------------------------------


def test_sign_step_hand_computed():
    p = torch.tensor([1.0, 2.0, 3.0, 4.0])
    g = torch.tensor([0.5, -1e-8, 0.0, 7.0])
    sign_step([p], [g], step_size=0.25)
    torch.testing.assert_close(p, torch.tensor([1.25, 1.75, 3.0, 4.25]))  # zero grad: no move


def test_one_official_sign_step_on_eq1():
    """S = sum((1+z) f + b): dS/dz = f (per channel), dS/db = 1; one step of 0.1."""
    f = torch.tensor([2.0, -3.0, 0.0]).view(1, 3, 1, 1)  # [1, C, 1, 1]; channel 2 has zero grad
    z = torch.zeros(1, 3, 1, 1, requires_grad=True)
    b = torch.zeros(1, 3, 1, 1, requires_grad=True)
    opt = LatentOptimizer([z, b])  # official defaults: sign, 1 step, 0.1
    assert (opt.rule, opt.steps, opt.step_size) == ("sign", 1, 0.1)
    for _ in range(opt.steps):
        perturb(f, z, b).sum().backward()
        opt.step()
    torch.testing.assert_close(z.detach().flatten(), torch.tensor([0.1, -0.1, 0.0]))
    torch.testing.assert_close(b.detach().flatten(), torch.tensor([0.1, 0.1, 0.1]))
    assert torch.equal(z.grad, torch.zeros_like(z)) and torch.equal(b.grad, torch.zeros_like(b))
    assert opt.n_steps == 1


def test_adam_rule_ascends_concave_objective():
    x = torch.zeros(1, requires_grad=True)
    opt = LatentOptimizer([x], rule="adam", steps=30, step_size=0.1)

    def objective():
        return -((x - 3.0) ** 2).sum()  # max at x = 3

    start = objective().item()
    values = []
    for i in range(opt.steps):
        obj = objective()
        obj.backward()
        opt.step()
        values.append(objective().item())
        if i == 0:  # Adam's first step is lr * g / (|g| + eps) = lr
            torch.testing.assert_close(x.detach(), torch.tensor([0.1]))
    assert values[-1] > start
    assert all(b >= a for a, b in zip(values, values[1:]))  # monotone while below the max
    assert 2.0 < x.item() < 3.5


def test_adam_lr_overrides_step_size():
    x = torch.zeros(1, requires_grad=True)
    opt = LatentOptimizer([x], rule="adam", step_size=0.1, lr=0.5)
    (2 * x).sum().backward()
    opt.step()
    torch.testing.assert_close(x.detach(), torch.tensor([0.5]))


def test_optimizer_validation():
    x = torch.zeros(1, requires_grad=True)
    with pytest.raises(ValueError, match="rule"):
        LatentOptimizer([x], rule="sgd")
    with pytest.raises(ValueError, match="steps"):
        LatentOptimizer([x], steps=-1)
    with pytest.raises(ValueError, match="lr only applies"):
        LatentOptimizer([x], rule="sign", lr=0.1)
    with pytest.raises(ValueError, match="step_size"):
        LatentOptimizer([x], step_size=0.0)
    with pytest.raises(ValueError, match="no gradient"):
        LatentOptimizer([x]).step()
    with pytest.raises(ValueError, match="2 grads"):
        sign_step([x], [x, x])
