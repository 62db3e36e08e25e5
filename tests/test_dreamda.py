"""DreamDA (arXiv 2403.12803) on the smoke profile: the bottleneck hook, determinism, expand + resume,
AMST's pseudo-labels and asymmetric loss, `gifkit train --amst`, and the CLI end to end."""
import json

import pandas as pd
import pytest
import torch

from gifkit.models import tiny
from gifkit.models.classifiers import AMSTNet
from gifkit.train.amst import AMSTConfig, amst_loss, label_synthetic, pseudo_labels, train_amst
from gifkit.train.runs import load_run
from gifkit.cli import main
from gifkit.priors.dreamda import BottleneckNoise, DreamDAPrior
from gifkit.methods import create_method, expand
from gifkit.methods.dreamda import DreamDA
from gifkit.core.prior import Job
from gifkit.core.rng import generator
from gifkit.io.store import read_metadata
from gifkit.train.config import make_config

STEPS = 5


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def prior():
    return DreamDAPrior(tiny.tiny_sd(), sampler="img2img", steps=STEPS, strength=0.8, guidance_scale=7.5,
                        noise_scale=3.0)


def _jobs(ds, names, seeds, k, seed=0):
    return [Job(i, v, ds[i][0], ds[i][1], names[ds[i][1]], key=(seed, i, v)) for i in seeds for v in range(k)]


def test_hook_perturbs_the_mid_block_output_and_is_removed():
    unet = tiny.tiny_sd().unet
    x = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    x = torch.cat([x[:1], x[:1]])  # two copies of one job, as with classifier-free guidance
    text = torch.zeros(2, 77, 32)
    seen = []
    record = lambda: unet.mid_block.register_forward_hook(lambda m, i, o: seen.append(o.detach().clone()))  # noqa
    with torch.no_grad():
        rec = record()
        plain = unet(x, 10, text).sample
        rec.remove()
        with BottleneckNoise(unet, [generator(0, 0, 0, "bottleneck")], scale=2.0) as hook:
            rec = record()  # runs after our hook: sees the perturbed bottleneck
            noisy = unet(x, 10, text).sample
            noisy2 = unet(x, 10, text).sample  # the next reverse step draws new noise
            rec.remove()
    assert hook.calls == 2 and not unet.mid_block._forward_hooks  # our hook is gone
    delta = seen[1] - seen[0]
    assert 1.5 < float(delta.std()) < 2.5  # N(0, 2^2) added to the bottleneck
    assert torch.allclose(delta[0], delta[1])  # both guidance copies of the job get the same noise
    assert not torch.allclose(seen[1], seen[2])
    assert not torch.allclose(plain, noisy) and not torch.allclose(noisy, noisy2)
    with pytest.raises(ValueError, match="noise_scale"):
        BottleneckNoise(unet, [generator(0)], scale=-1)


def test_cycle_rows_perturb_only_the_target_branch_with_independent_draws():
    unet = tiny.tiny_sd().unet
    x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0)).repeat(4, 1, 1, 1)
    text = torch.zeros(4, 77, 32)  # [source-uncond, target-uncond, source-text, target-text], as CycleDiffusion
    seen = []
    with torch.no_grad():
        rec = unet.mid_block.register_forward_hook(lambda m, i, o: seen.append(o.detach().clone()))
        unet(x, 10, text)
        rec.remove()
        with BottleneckNoise(unet, [generator(0, 0, 0, "bottleneck")], scale=3.0, rows="target"):
            rec = unet.mid_block.register_forward_hook(lambda m, i, o: seen.append(o.detach().clone()))
            unet(x, 10, text)
            rec.remove()
    delta = seen[1] - seen[0]
    assert float(delta[0].abs().max()) == 0 == float(delta[2].abs().max())  # the source branch is untouched
    assert 2.5 < float(delta[1].std()) < 3.5 and 2.5 < float(delta[3].std()) < 3.5  # N(0, 3^2) on the target
    assert not torch.allclose(delta[1], delta[3])  # independent draws for the two target rows
    with pytest.raises(ValueError, match="one generator"):
        BottleneckNoise(unet, [generator(0), generator(1)], scale=1.0, rows="target")


@pytest.mark.parametrize("sampler", ["cycle", "img2img"])
def test_noise_scales_0_1_3_give_different_images_with_either_sampler(smoke, sampler):
    ds, names = smoke
    jobs = _jobs(ds, names, [0, 1], 1)
    pipe = tiny.tiny_sd()
    kw = dict(sampler=sampler, steps=STEPS, strength=0.8, guidance_scale=7.5)
    f = {s: DreamDAPrior(pipe, noise_scale=s, **kw).prepare(jobs).f for s in (0.0, 1.0, 3.0)}
    d01, d13 = float((f[0.0] - f[1.0]).abs().mean()), float((f[1.0] - f[3.0]).abs().mean())
    assert d01 > 1e-2 and d13 > 1e-2 and float((f[0.0] - f[3.0]).abs().mean()) > d01
    again = DreamDAPrior(pipe, noise_scale=3.0, **kw)
    assert torch.equal(again.prepare(jobs).f, f[3.0])  # deterministic
    assert again.params["sampler"] == sampler and again.eta == (1.0 if sampler == "cycle" else 0.0)


def test_noise_at_every_reverse_step_and_zero_noise_is_plain_img2img(smoke, prior):
    ds, names = smoke
    jobs = _jobs(ds, names, [0, 1], 2)
    f = prior.prepare(jobs).f
    assert f.shape == (4, 4, 16, 16)
    assert prior.last_calls == int(STEPS * 0.8)  # one perturbed U-Net call per reverse step (CFG batched)
    quiet = DreamDAPrior(prior.pipe, sampler="img2img", steps=STEPS, strength=0.8, guidance_scale=7.5,
                         noise_scale=0.0)
    f0 = quiet.prepare(jobs).f
    with torch.no_grad():
        ref = prior.pipe(prompt=[f"a photo of a {j.class_name}" for j in jobs],
                         image=[quiet._transform(j) for j in jobs], strength=0.8, num_inference_steps=STEPS,
                         guidance_scale=7.5, eta=0.0, generator=[generator(*j.key, "img2img") for j in jobs],
                         output_type="latent").images
    assert torch.allclose(f0, ref, atol=1e-5)
    assert float((f - f0).abs().mean()) > 1e-3  # the perturbation changes the result
    assert prior.params["noise_scale"] == 3.0 and prior.params["strength"] == 0.8


def test_deterministic_and_independent_of_batching(smoke, prior):
    ds, names = smoke
    jobs = _jobs(ds, names, [0, 1], 2)
    f = prior.prepare(jobs).f
    assert torch.allclose(prior.prepare(jobs[2:]).f, f[2:], atol=1e-4)
    assert torch.allclose(prior.prepare(jobs).f, f, atol=1e-6)
    assert not torch.allclose(f[0], f[1], atol=1e-3)  # variants of one seed differ
    with pytest.raises(ValueError, match="noise_scale"):
        DreamDAPrior(prior.pipe, sampler="cycle", steps=2, strength=0.8, guidance_scale=7.5, noise_scale=-0.5)


def test_expand_through_create_method_and_resume(smoke, tmp_path):
    ds, names = smoke
    method = create_method("dreamda", names, device="cpu", steps=3, noise_scale=1.5)
    params = method.prior.params
    assert method.guidance is None and params["noise_scale"] == 1.5 and params["strength"] == 0.8
    assert params["sampler"] == "cycle" and create_method("dreamda", names, device="cpu").prior.steps == 10
    out = tmp_path / "dd"
    r = expand(method, ds, out, ratio=2, limit=4, batch_size=2, progress=False)
    assert r.written == 8
    meta = read_metadata(out)
    assert set(meta["method"]) == {"dreamda"} and set(meta["noise_scale"]) == {1.5}
    assert meta["prompt"].iloc[0] == f"a photo of a {names[0]}"
    again = expand(method, ds, out, ratio=2, limit=4, batch_size=2, progress=False)
    assert again.written == 0 and again.existing == 8


def test_pseudo_labels_need_agreement_and_confidence():
    aux = torch.tensor([
        [[5.0, 0, 0], [5.0, 0, 0], [0, 0.1, 0], [0, 5.0, 0]],  # head 1
        [[5.0, 0, 0], [0, 5.0, 0], [0, 0.1, 0], [0, 5.0, 0]],  # head 2
    ])  # [M=2, B=4, C=3]
    labels, conf, agree = pseudo_labels(aux, threshold=0.8)
    assert agree.tolist() == [True, False, True, True]
    assert labels.tolist() == [0, -1, -1, 1]  # image 2: the heads agree but are not confident
    assert 0.3 < float(conf[2]) < 0.4


def test_amst_loss_is_asymmetric():
    torch.manual_seed(0)
    net = AMSTNet(torch.nn.Flatten(), 6, 3, heads=4)
    for h in net.aux:  # make the auxiliary heads agree and confident on the synthetic images
        h.weight.data.zero_(); h.bias.data = torch.tensor([8.0, 0.0, 0.0])
    xr, yr, xs = torch.randn(4, 6), torch.tensor([0, 1, 2, 0]), torch.randn(5, 6)
    main_s, aux_s = net(xs, all_heads=True)
    main_r, aux_r = net(xr, all_heads=True)
    loss, labels = amst_loss(main_r.detach(), aux_r.detach(), yr, main_s, aux_s, threshold=0.8)
    assert labels.tolist() == [0] * 5
    loss.backward()
    assert net.main.weight.grad.abs().sum() > 0  # the main head learns from pseudo-labelled synthetic images
    assert all(h.weight.grad is None or h.weight.grad.abs().sum() == 0 for h in net.aux)  # the aux heads do not
    net.zero_grad()
    main_r, aux_r = net(xr, all_heads=True)
    loss, none = amst_loss(main_r, aux_r, yr)
    loss.backward()
    assert none is None and all(h.weight.grad.abs().sum() > 0 for h in net.aux)  # real images train every head
    with pytest.raises(ValueError, match="head"):
        AMSTConfig(heads=0)


def test_train_amst_on_a_dreamda_expansion(smoke, prior, tmp_path):
    ds, names = smoke
    clf = create_method("sd", names, device="cpu").guide
    exp = tmp_path / "dd"
    expand(DreamDA.from_models(prior, clf, names), ds, exp, ratio=1, limit=8, progress=False)
    cfg = make_config("smoke", data="smoke", expanded=[str(exp)], out=str(tmp_path / "amst"), epochs=2,
                      progress=False)
    res = train_amst(cfg, AMSTConfig(heads=1, threshold=0.0, warmup_epochs=1))
    assert res["amst"]["heads"] == 1 and res["amst"]["n_synthetic"] == 8 and res["amst"]["warmup_epochs_used"] == 1
    h = res["history"]
    assert h[0]["synthetic_seen"] == 0 and h[1]["synthetic_seen"] > 0  # warm-up epoch: real images only
    assert h[1]["pseudo_labelled"] == 1.0  # one head always agrees with itself, and threshold 0
    assert 0 <= res["final"]["accuracy_micro"] <= 100
    assert res["total_steps"] == 2 * ((16 + 8) // 16)  # as many steps as `gifkit train` on original + expansion
    trained = load_run(tmp_path / "amst")
    assert isinstance(trained.model, AMSTNet) and len(trained.model.aux) == 1 and trained.classes == names
    table = label_synthetic(tmp_path / "amst", exp)
    assert len(table) == 8 and set(table.columns) >= {"pseudo_label", "aux_agree", "label", "main_pred"}
    assert json.loads((tmp_path / "amst" / "result.json").read_text())["amst"]["threshold"] == 0.0
    with pytest.raises(ValueError, match="expan"):
        train_amst(make_config("smoke", data="smoke", progress=False))


def test_cli_expand_dreamda_and_train_amst(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["expand", "--data", "smoke", "--method", "dreamda", "--out", str(out), "--ratio", "1",
                 "--limit", "4", "--steps", "3", "--noise-scale", "2", "--no-progress"]) == 0
    meta = pd.read_csv(out / "metadata.csv")
    assert len(meta) == 4 and set(meta["noise_scale"]) == {2.0} and set(meta["method"]) == {"dreamda"}
    assert main(["train", "--data", "smoke", "--profile", "smoke", "--out", str(tmp_path / "t"), "--epochs", "1",
                 "--expanded", str(out), "--amst", "--amst-threshold", "0.5", "--no-progress"]) == 0
    res = json.loads((tmp_path / "t" / "seed_0" / "result.json").read_text())
    assert res["amst"]["threshold"] == 0.5 and res["amst"]["heads"] == 4
    assert "seed 0: final micro" in capsys.readouterr().out
