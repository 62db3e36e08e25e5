"""Tiny builders (same classes as the real models) and offline failure of real loaders."""
import time

import pytest
import torch

from gifkit.models import hub, tiny


def test_clip_tokenizer_has_real_vocab_and_matches_open_clip():
    import open_clip

    tok = tiny.clip_tokenizer()
    assert len(tok) == tiny.CLIP_VOCAB_SIZE
    text = "an oil painting of a colorful fox"
    ids = tok(text).input_ids
    ref = open_clip.get_tokenizer("ViT-B-32")([text])[0]
    assert ids == ref[: len(ids)].tolist()
    assert ids[0] == 49406 and ids[-1] == 49407  # <|startoftext|> ... <|endoftext|>


def test_tiny_clip_shapes_and_determinism():
    b = tiny.tiny_clip(seed=0)
    img = torch.rand(2, 3, 32, 32)
    assert b.model.encode_image(img).shape == (2, 32)
    tokens = b.tokenizer(["a cat", "a dog", "a fox"])
    assert tokens.shape == (3, 77)
    assert b.model.encode_text(tokens).shape == (3, 32)
    b2 = tiny.tiny_clip(seed=0)
    assert torch.equal(b.model.encode_image(img), b2.model.encode_image(img))
    assert not torch.equal(b.model.encode_image(img), tiny.tiny_clip(seed=1).model.encode_image(img))


def test_tiny_sd_unet_step_and_vae_round_trip():
    from diffusers import AutoencoderKL, StableDiffusionImg2ImgPipeline, UNet2DConditionModel

    pipe = tiny.tiny_sd()
    assert isinstance(pipe, StableDiffusionImg2ImgPipeline)
    assert isinstance(pipe.unet, UNet2DConditionModel) and isinstance(pipe.vae, AutoencoderKL)
    assert len(pipe.tokenizer) == tiny.CLIP_VOCAB_SIZE
    ids = pipe.tokenizer(["a photo of a cat"], padding="max_length", max_length=77, return_tensors="pt").input_ids
    cond = pipe.text_encoder(ids)[0]  # [1, 77, 32]
    latent = torch.randn(1, 4, 16, 16)
    with torch.no_grad():
        eps = pipe.unet(latent, torch.tensor([10]), encoder_hidden_states=cond).sample
        x = torch.rand(1, 3, 32, 32) * 2 - 1
        z = pipe.vae.encode(x).latent_dist.mode()
        rec = pipe.vae.decode(z).sample
    assert eps.shape == latent.shape
    assert z.shape == (1, 4, 16, 16) and rec.shape == x.shape
    assert pipe.unet.config.sample_size * pipe.vae_scale_factor == 32


def test_tiny_mae_reconstruction_without_masking():
    from transformers import ViTMAEForPreTraining

    mae = tiny.tiny_mae()
    assert isinstance(mae, ViTMAEForPreTraining)
    out = mae(pixel_values=torch.rand(2, 3, 32, 32))
    assert out.logits.shape == (2, 16, 8 * 8 * 3)  # 16 patches of 8x8x3
    assert out.mask.sum() == 0  # masking ratio 0: every patch kept


def test_tiny_unclip_generates_64px():
    from diffusers import UnCLIPImageVariationPipeline
    from PIL import Image

    pipe = tiny.tiny_unclip()
    assert isinstance(pipe, UnCLIPImageVariationPipeline)
    out = pipe(image=[Image.new("RGB", (32, 32), (200, 30, 30))], decoder_num_inference_steps=2,
               super_res_num_inference_steps=2, output_type="pt",
               generator=torch.Generator().manual_seed(0))
    assert tuple(out.images.shape) == (1, 64, 64, 3)  # the deprecated pipeline returns NHWC even for "pt"


@pytest.mark.parametrize("loader, model_id", [
    (hub.load_sd, "CompVis/stable-diffusion-v1-4"),
    (hub.load_mae, "facebook/vit-mae-large"),
    (hub.load_unclip, "kakaobrain/karlo-v1-alpha-image-variations"),
])
def test_missing_checkpoint_fails_fast_offline(loader, model_id, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # an empty cache, whatever this machine has
    t = time.perf_counter()
    with pytest.raises(hub.ModelUnavailable) as e:
        loader(model_id)
    assert time.perf_counter() - t < 5
    msg = str(e.value)
    assert model_id in msg and "hf download" in msg and "local" in msg


def test_missing_clip_fails_fast_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t = time.perf_counter()
    with pytest.raises(hub.ModelUnavailable) as e:
        hub.load_clip("ViT-B-32", "openai")
    assert time.perf_counter() - t < 5
    assert "ViT-B-32" in str(e.value) and "hf download timm/vit_base_patch32_clip_224.openai" in str(e.value)


def test_missing_local_dir_names_the_path(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(hub.ModelUnavailable, match="does not exist"):
        hub.load_mae(str(missing))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(hub.ModelUnavailable, match="holds no weights"):
        hub.load_clip("ViT-B-32", str(empty))
    with pytest.raises(hub.ModelUnavailable, match=str(empty)):
        hub.load_sd(str(empty))  # a directory with no model_index.json


def test_checkpoint_status_reflects_a_planted_hub_cache(tmp_path, monkeypatch):
    """A cache laid out as huggingface_hub writes it (refs/main -> snapshots/<commit>/<file>) is found, offline."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    assert all(hub.checkpoint_status(k) == "not cached" for k in hub.KNOWN_CHECKPOINTS)
    ck = hub.KNOWN_CHECKPOINTS["mae"]
    repo = tmp_path / ("models--" + ck.repo_id.replace("/", "--"))
    snap = repo / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    (snap / ck.probe_file).write_text("{}")
    assert hub.checkpoint_status("mae") == f"cached at {snap}"
    assert hub.checkpoint_status("sd") == "not cached"
