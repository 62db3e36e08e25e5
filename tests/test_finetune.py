"""Prior tuning (gifkit.train.finetune): DreamBooth-style fine-tuning of the tiny SD, its folder, its CLI."""
import argparse
import json

import pytest
import torch

from gifkit.models import hub, tiny
from gifkit.data import load_dataset
from gifkit.cli.finetune import add_parser
from gifkit.methods import create_method, expand
from gifkit.train.finetune import (FinetuneConfig, denoising_loss, finetune_sd, instance_prompts,
                                   make_finetune_config)


@pytest.fixture(scope="module")
def smoke():
    torch.set_num_threads(1)
    return load_dataset("smoke", "train", n_per_class=2)


def _cfg(**kw):
    return make_finetune_config("smoke", device="cpu", progress=False, **kw)


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def tuned(smoke, tmp_path_factory):
    ds, classes = smoke
    out = tmp_path_factory.mktemp("ft") / "tuned"
    return finetune_sd(ds, classes, out, _cfg(steps=12))


def test_loss_decreases_and_only_the_unet_changes(smoke, tuned):
    ds, classes = smoke
    fresh = tiny.tiny_sd()
    before = denoising_loss(fresh, ds, classes, n_timesteps=4)
    after = denoising_loss(tuned.pipe, ds, classes, n_timesteps=4)
    assert after < 0.8 * before
    assert sum(tuned.losses[-3:]) < sum(tuned.losses[:3])
    assert _same(tuned.pipe.vae, fresh.vae) and _same(tuned.pipe.text_encoder, fresh.text_encoder)
    assert not _same(tuned.pipe.unet, fresh.unet)


def test_seeded_runs_are_identical(smoke, tmp_path):
    ds, classes = smoke
    a = finetune_sd(ds, classes, tmp_path / "a", _cfg(steps=3, seed=7))
    b = finetune_sd(ds, classes, tmp_path / "b", _cfg(steps=3, seed=7))
    c = finetune_sd(ds, classes, tmp_path / "c", _cfg(steps=3, seed=8))
    assert a.losses == b.losses and _same(a.pipe.unet, b.pipe.unet)
    assert a.losses != c.losses


def test_saved_folder_loads_back_and_is_reused(smoke, tuned):
    ds, classes = smoke
    loaded = hub.load_sd(str(tuned.out))
    assert _same(loaded.unet, tuned.pipe.unet)
    info = json.loads((tuned.out / "finetune.json").read_text())
    assert info["trained"] == ["unet"] and len(info["losses"]) == 12
    again = finetune_sd(ds, classes, tuned.out, _cfg(steps=12))
    assert again.reused and again.losses == tuned.losses
    with pytest.raises(ValueError, match="other settings"):
        finetune_sd(ds, classes, tuned.out, _cfg(steps=13))


def test_tuned_models_expand_with_the_tuned_unet(smoke, tuned, tmp_path):
    ds, classes = smoke
    method = create_method("gif-sd-tuned", classes, preset="pathmnist", device="cpu", steps=2,
                           model_id=str(tuned.out))
    assert _same(method.prior.pipe.unet, tuned.pipe.unet)
    assert method.prior.domain == "Colon pathological image of" and method.guidance.eps == 0.1  # the preset's
    assert method.default_ratio == 5
    r = expand(method, ds, tmp_path / "x", ratio=1, limit=1, progress=False)
    assert r.written == 1 and json.loads((tmp_path / "x" / "run.json").read_text())["method"] == "gif-sd-tuned"
    with pytest.raises(ValueError, match="model_id"):
        create_method("gif-sd-tuned", classes, device="cpu")


def test_text_encoder_and_prior_preservation(smoke, tmp_path):
    ds, classes = smoke
    r = finetune_sd(ds, classes, tmp_path / "pp", _cfg(steps=2, batch_size=2, train_text_encoder=True,
                                                       prior_preservation=True, num_class_images=2, class_steps=2))
    fresh = tiny.tiny_sd()
    assert not _same(r.pipe.text_encoder, fresh.text_encoder) and _same(r.pipe.vae, fresh.vae)
    assert len(list((tmp_path / "pp.work" / "class_images").glob("*.png"))) == 2


def test_prompts_and_presets():
    from gifkit.methods.gif_sd import PRESETS

    cfg = make_finetune_config("paper", domain=PRESETS["breastmnist"]["domain"])  # as `gifkit finetune` does
    assert (cfg.steps, cfg.lr, cfg.train_text_encoder, cfg.vae_id) == (400, 2e-6, True, "stabilityai/sd-vae-ft-mse")
    assert instance_prompts([1, 0], ["benign", "malignant"], cfg.prompt, cfg.domain) == [
        "Ultrasound image of malignant", "Ultrasound image of benign"]
    with pytest.raises(ValueError):
        FinetuneConfig(steps=0)
    with pytest.raises(ValueError, match="unknown"):
        make_finetune_config("smoke", nope=1)


def test_cli(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["finetune", "--data", "smoke", "--profile", "smoke", "--steps", "2", "--device",
                              "cpu", "--out", str(tmp_path / "t"), "--no-progress"])
    assert args.func(args) == 0
    assert (tmp_path / "t" / "model_index.json").is_file()
    assert "--model-id" in capsys.readouterr().out
