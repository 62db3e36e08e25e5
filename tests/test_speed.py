"""The speed levers (gifkit.methods.speed, the driver's overlap_io) on the CPU: each lever on gives the images of
the levers off within a stated tolerance, the batched VAE encode the per-image latents, the writer thread the same
bytes and the same resume (its errors raised in the caller), run.json records the levers and a resume under other
levers is refused; the guidance autoencoder (TAESD, beyond the paper) loads from its real layout like every
checkpoint and its sign agreement with SD's VAE is measured."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from gifkit import testing
from gifkit.core.prior import Job
from gifkit.core.rng import generator
from gifkit.errors import Refused
from gifkit.methods import create_method, expand
from gifkit.methods.speed import sign_agreement
from gifkit.models import hub

pytestmark = pytest.mark.usefixtures("one_thread")

# Levers that keep the algorithm may reorder floating-point sums: the created images (in [0, 1]) of a lever on
# stay within this of the lever off (measured on the smoke models: <= 1e-5; 1/255 is one PNG grey level)
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def jobs(smoke):
    dataset, names = smoke
    return [Job(i, v, dataset[i][0], dataset[i][1], names[dataset[i][1]], key=(0, i, v))
            for i in range(2) for v in range(2)]


@pytest.fixture(scope="module")
def reference(smoke, jobs):
    """GIF-SD on the smoke profile, every lever off: (method, its images of ``jobs``)."""
    method = create_method("gif-sd", smoke[1], profile="smoke", device="cpu")
    return method, method(jobs).images


@pytest.mark.parametrize("lever", [{"channels_last": True}, {"fuse_qkv": True}, {"batched_encode": True},
                                   {"torch_compile": "eager"}])
def test_each_lever_gives_the_images_of_the_levers_off(smoke, jobs, reference, lever):
    method = create_method("gif-sd", smoke[1], profile="smoke", device="cpu", **lever)
    assert method.prior.levers == lever  # what run.json's environment records
    images = method(jobs).images
    assert images.shape == reference[1].shape
    torch.testing.assert_close(images, reference[1], atol=TOLERANCE, rtol=0)
    assert method.environment()["speed"] == lever
    assert "speed" not in reference[0].environment()  # levers off: run.json as before


def test_batched_encode_gives_each_job_its_own_sample(smoke, jobs, reference):
    """One VAE batch, each row's sample from its own generator: the per-image latents diffusers draws, and the
    same latents whatever the batch (a job alone, or second in a batch)."""
    prior = reference[0].prior
    images = [prior._transform(j) for j in jobs]
    batched = prior.encode(images, [generator(*j.key, "img2img") for j in jobs])
    vae = prior.pipe.vae
    for j, job in enumerate(jobs):
        x = prior.pipe.image_processor.preprocess([images[j]])
        alone = vae.config.scaling_factor * vae.encode(x).latent_dist.sample(generator(*job.key, "img2img"))
        torch.testing.assert_close(batched[j:j + 1], alone, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(batched[0], batched[1], atol=0.1)  # two variants of one seed: two draws
    again = prior.encode(images[1:2], [generator(*jobs[1].key, "img2img")])
    torch.testing.assert_close(again, batched[1:2], atol=1e-5, rtol=1e-5)
    prior.batched_encode = True
    try:
        f_on = prior.prepare(jobs).f
    finally:
        prior.batched_encode = False
    f_off = prior.prepare(jobs).f  # the latents f of img2img (values up to ~4): the sampler carries the last bits
    torch.testing.assert_close(f_on, f_off, atol=1e-3, rtol=0)  # measured: 1.7e-4


def test_levers_are_recorded_and_a_resume_under_other_levers_is_refused(smoke, tmp_path):
    dataset, names = smoke
    out = tmp_path / "run"
    fused = create_method("gif-sd", names, profile="smoke", device="cpu", fuse_qkv=True, steps=2)
    expand(fused, dataset, out, ratio=2, limit=1, batch_size=1, progress=False)
    assert json.loads((out / "run.json").read_text())["environment"]["speed"] == {"fuse_qkv": True}
    plain = create_method("gif-sd", names, profile="smoke", device="cpu", steps=2)
    with pytest.raises(Refused, match="speed.fuse_qkv"):
        expand(plain, dataset, out, ratio=2, limit=2, batch_size=1, progress=False)
    r = expand(fused, dataset, out, ratio=2, limit=2, batch_size=1, progress=False)  # the same levers resume
    assert (r.written, r.existing) == (2, 2)


# ----------------------------------------------------------------------------- the writer thread


def _pngs(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


def test_overlap_io_writes_the_same_bytes_and_resumes_after_its_error(smoke, tmp_path, monkeypatch):
    from gifkit.io.store import ExpansionStore

    dataset, names = smoke
    method = create_method("gif-sd", names, profile="smoke", device="cpu", steps=2)
    kw = dict(ratio=2, limit=3, batch_size=1, progress=False)
    plain = expand(method, dataset, tmp_path / "plain", **kw)
    overlapped = expand(method, dataset, tmp_path / "thread", overlap_io=True, **kw)
    assert _pngs(tmp_path / "plain") == _pngs(tmp_path / "thread") and len(_pngs(tmp_path / "plain")) == 6
    assert (tmp_path / "plain" / "metadata.csv").read_bytes() == (tmp_path / "thread" / "metadata.csv").read_bytes()
    assert (overlapped.written, overlapped.flagged) == (plain.written, plain.flagged) == (6, 0)
    assert overlapped.timings["io_thread"] > 0 and "io_thread" not in plain.timings

    real, calls = ExpansionStore.save_image, []

    def failing(self, rel, image):  # the disk fills up at the third image: the second batch is not committed
        calls.append(rel)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real(self, rel, image)

    monkeypatch.setattr(ExpansionStore, "save_image", failing)
    with pytest.raises(OSError, match="No space left"):  # raised in the caller's thread
        expand(method, dataset, tmp_path / "broken", overlap_io=True, **kw)
    assert len(calls) == 3  # the batches after the failed one were not written
    monkeypatch.setattr(ExpansionStore, "save_image", real)
    resumed = expand(method, dataset, tmp_path / "broken", overlap_io=True, **kw)
    assert (resumed.written, resumed.existing) == (4, 2)  # batch 0 was committed; batches 1, 2 made again
    assert _pngs(tmp_path / "broken") == _pngs(tmp_path / "plain")
    assert (tmp_path / "broken" / "metadata.csv").read_bytes() == (tmp_path / "plain" / "metadata.csv").read_bytes()


def test_writer_keeps_order_bounds_its_queue_and_raises_once():
    import threading

    from gifkit.methods.driver import _Writer

    done, gate, queued = [], threading.Event(), []

    def save(i):
        gate.wait(10)
        done.append(i)
        if i == 4:
            raise ValueError("bad batch 4")

    w = _Writer(save, depth=2)
    t = threading.Thread(target=lambda: [queued.append(w.submit(i)) for i in range(4)])
    t.start()
    t.join(2)
    assert len(queued) == 3 and t.is_alive()  # one item being written, two queued: the fourth submit waits
    gate.set()
    t.join(10)
    w.submit(4)
    with pytest.raises(ValueError, match="bad batch 4"):  # by the next submit, or else by close
        w.submit(5)
        w.close()
    w.close()  # raised once
    assert done == [0, 1, 2, 3, 4]  # in order; nothing after the error


# ----------------------------------------------------------------------------- the guidance autoencoder (TAESD)


def test_guidance_vae_changes_only_the_guidance_pass(smoke, jobs, reference):
    method = create_method("gif-sd", smoke[1], profile="smoke", device="cpu", guidance_vae="madebyollin/taesd")
    assert type(method.prior.guidance_vae).__name__ == "AutoencoderTiny"
    made = method(jobs)
    assert made.rows[0]["guidance_vae"] == "madebyollin/taesd"  # a setting of the method: in every row
    assert method.record()["params"]["guidance_vae"] == "madebyollin/taesd"
    assert not torch.allclose(made.images, reference[1], atol=TOLERANCE)  # another gradient, another step
    unguided = method.replace(opt_steps=0)  # no step: the final decode alone, SD's VAE, the same images
    torch.testing.assert_close(unguided(jobs).images, reference[0].replace(opt_steps=0)(jobs).images)
    report = sign_agreement(method, jobs)
    assert report["entries"] == 4 * 2 * 4 and report["images"] == 4 and report["max_f_difference"] == 0.0
    assert 0 <= report["agree"] < report["entries"] and report["fraction"] == round(report["agree"] / 32, 4)
    assert method.prior.guidance_vae is not None  # switched back after the comparison
    method.prior.guidance_vae = method.prior.pipe.vae  # the full decoder as its own "tiny" one: every sign agrees
    assert sign_agreement(method, jobs)["fraction"] == 1.0
    with pytest.raises(ValueError, match="no guidance_vae"):
        sign_agreement(reference[0], jobs)
    with pytest.raises(ValueError, match="sd: guidance_vae decodes the guidance pass"):
        create_method("sd", smoke[1], profile="smoke", device="cpu", guidance_vae="madebyollin/taesd")


def test_taesd_real_layout_loads_by_folder_and_hub_id_and_a_missing_one_says_how_to_get_it(tmp_path, monkeypatch):
    from diffusers import AutoencoderTiny

    folder = testing.write_checkpoint("taesd", tmp_path / "taesd")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "diffusion_pytorch_model.safetensors"]
    assert hub.missing_files("taesd", folder) == [] and hub.check_checkpoint("taesd", str(folder)) == "loadable"
    vae = hub.load_tiny_vae(str(folder))
    assert isinstance(vae, AutoencoderTiny) and vae.config.scaling_factor == 1.0
    assert hub.source_of(vae)["path"] == str(folder.resolve())
    x = torch.rand(1, 4, 8, 8)
    assert tuple(vae.decode(x).sample.shape) == (1, 3, 64, 64)  # SD's factor 8
    cache = tmp_path / "cache"
    testing.plant_hub_cache("taesd", cache)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    by_id = hub.load_tiny_vae("madebyollin/taesd")
    assert hub.source_of(by_id)["revision"] == "0" * 40
    for (name, a), b in zip(vae.state_dict().items(), by_id.state_dict().values()):
        assert torch.equal(a, b), name
    with pytest.raises(hub.ModelUnavailable) as e:
        hub.load_tiny_vae(str(tmp_path / "no-taesd"))
    msg = str(e.value)
    assert str(tmp_path / "no-taesd") in msg and "madebyollin/taesd" in msg and "\n" not in msg.strip()
