"""A guide the user chooses (the GIF methods' ``guide`` option, ``gifkit expand --guide``): a classifier's own
probabilities and its normalised penultimate features against hand-computed values, the one-line errors, a
``gifkit train`` run and a timm checkpoint as the guide on the smoke profile, and the random-perturbation control's
independence of the guide."""
import hashlib
import json

import numpy as np
import pytest
import torch
from torch import nn

from gifkit.cli import main
from gifkit.core.guidance import diversity
from gifkit.data import load_dataset
from gifkit.methods import create_method, expand
from gifkit.models.guides import LinearHeadClassifier, resolve_guide, train_run_guide

pytestmark = pytest.mark.usefixtures("one_thread")


class TwoLayer(nn.Module):
    """x -> h = A x + a (the penultimate features) -> logits = W h + b (the head, ``fc``)."""

    def __init__(self, n_in: int = 12, d: int = 4, c: int = 3):
        super().__init__()
        self.body, self.fc = nn.Linear(n_in, d), nn.Linear(d, c)
        g = torch.Generator().manual_seed(0)
        for p in self.parameters():
            p.data = torch.randn(p.shape, generator=g)

    def forward(self, x):
        return self.fc(self.body(x.flatten(1)))


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_linear_head_probs_and_sdiv_against_hand_computed_values():
    net = TwoLayer()
    guide = LinearHeadClassifier(net, ["a", "b", "c"], image_size=2, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    x = torch.rand(3, 3, 2, 2, generator=torch.Generator().manual_seed(1))
    A, a = net.body.weight.detach().double().numpy(), net.body.bias.detach().double().numpy()
    W, b = net.fc.weight.detach().double().numpy(), net.fc.bias.detach().double().numpy()
    h = ((x.double().numpy() - 0.5) / 0.25).reshape(3, -1) @ A.T + a  # [K, D]
    p = _softmax(h @ W.T + b)  # the classifier's own probabilities
    np.testing.assert_allclose(guide.probs(x).double().numpy(), p, rtol=1e-5, atol=1e-6)
    rep = guide.representation(x)
    np.testing.assert_allclose(rep.double().numpy(), h, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(guide.probs_from_features(rep).double().numpy(), p, rtol=1e-5, atol=1e-6)
    # S_div (Eq. 6) on the normalised penultimate features: v_k = h_k / |h_k|
    v = h / np.linalg.norm(h, axis=1, keepdims=True)
    q_bar, q = _softmax(v.mean(0)), _softmax(v)
    s_div = np.mean([(q_bar * (np.log(q_bar) - np.log(q[k]))).sum() for k in range(3)])
    assert s_div > 1e-4  # not trivially zero
    assert diversity(guide.unit_features(rep)).item() == pytest.approx(s_div, rel=1e-4)
    assert diversity(rep).item() != pytest.approx(s_div, rel=1e-2)  # unnormalised features give another S_div
    assert guide.image_features(x).norm(dim=1).tolist() == pytest.approx([1.0] * 3)
    # differentiable w.r.t. the images, the network frozen
    xg = x.clone().requires_grad_(True)
    guide.probs(xg)[:, 0].sum().backward()
    assert xg.grad is not None and xg.grad.abs().sum() > 0 and net.fc.weight.grad is None


def test_wrong_class_count_is_a_clear_one_line_error(tmp_path, capsys):
    with pytest.raises(ValueError) as err:
        LinearHeadClassifier(TwoLayer(), ["a", "b", "c", "d"], image_size=2, mean=(0,) * 3, std=(1,) * 3)
    assert "3 outputs but the dataset has 4 classes" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ValueError, match="no linear head"):
        LinearHeadClassifier(nn.Sequential(nn.Flatten(), nn.ReLU()), ["a"], image_size=2, mean=(0,) * 3, std=(1,) * 3)
    run = _smoke_run(tmp_path)
    with pytest.raises(ValueError, match="has 4 classes but the dataset has 3"):
        train_run_guide(run, ["a", "b", "c"])
    with pytest.raises(ValueError, match="was trained on the classes"):
        train_run_guide(run, ["a", "b", "c", "d"])
    for spec, msg in [("no-such-guide", "unknown guide"), (str(run / "model.safetensors"), "name its architecture"),
                      ("prototypes:other", "unknown prototype guide"), ("timm:", "give a timm model name"),
                      (str(tmp_path), "is not a gifkit train run")]:
        with pytest.raises((ValueError, FileNotFoundError), match=msg):
            resolve_guide(spec, ["a", "b", "c", "d"], profile="smoke")
    with pytest.raises(ValueError, match="small labelled set"):
        resolve_guide("prototypes", ["a"], profile="mini")
    # the command line: exit status 2 and one line naming the mismatch (MNIST-like 10 classes vs the run's 4)
    code = main(["expand", "--data", str(_folder_dataset(tmp_path, 3)), "--out", str(tmp_path / "o"), "--method",
                 "gif-sd", "--guide", str(run), "--limit", "1", "--ratio", "2", "--steps", "2", "--device", "cpu",
                 "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "has 4 classes but the dataset has 3" in err


def _folder_dataset(tmp_path, n_classes: int):
    from PIL import Image

    root = tmp_path / f"folder{n_classes}"
    for c in range(n_classes):
        (root / "train" / f"class{c}").mkdir(parents=True)
        Image.new("RGB", (16, 16), (40 * c, 0, 0)).save(root / "train" / f"class{c}" / "0.png")
    return root / "train"


def _smoke_run(tmp_path):
    from gifkit.train.config import make_config
    from gifkit.train.loop import train

    run = tmp_path / "guide-run"
    if not (run / "result.json").is_file():
        train(make_config("smoke", data="smoke", epochs=1, out=str(run), progress=False))
    return run


def test_a_trained_run_and_a_timm_checkpoint_guide_on_the_smoke_profile(tmp_path):
    run = _smoke_run(tmp_path)
    sha = hashlib.sha256((run / "model.safetensors").read_bytes()).hexdigest()
    ds, names = load_dataset("smoke", "train", profile="smoke")
    guide = train_run_guide(run, names)
    result = json.loads((run / "result.json").read_text())
    assert guide.image_size == result["model"]["image_size"] == 32 and guide.mean == tuple(result["model"]["mean"])
    # the guide's probabilities are the trained classifier's own: the same as its forward pass on the same input
    from gifkit.models.classifiers import create_model
    from safetensors.torch import load_file

    net = create_model("test_resnet", 4)
    net.load_state_dict(load_file(str(run / "model.safetensors")))
    x = torch.rand(2, 3, 32, 32)
    mean, std = torch.tensor(guide.mean).view(1, 3, 1, 1), torch.tensor(guide.std).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(guide.probs(x), torch.softmax(net.eval()((x - mean) / std), 1), rtol=1e-5,
                                   atol=1e-6)
    out = tmp_path / "gif-sd"
    args = ["expand", "--data", "smoke", "--out", str(out), "--method", "gif-sd", "--guide", str(run), "--ratio", "2",
            "--limit", "2", "--steps", "2", "--device", "cpu", "--no-progress"]
    assert main(args) == 0
    prov = json.loads((out / "run.json").read_text())["provenance"]["models"]["guide"]
    assert prov["guide"] == str(run) and prov["sha256"] == sha and prov["arch"] == "test_resnet"
    assert main(args) == 0  # resumes: the same guide, the same record
    timm_out = tmp_path / "gif-vae"
    spec = f"timm:test_resnet:{run / 'model.safetensors'}"
    method = create_method("gif-vae", names, profile="smoke", device="cpu", guide=spec)
    assert isinstance(method.guide, LinearHeadClassifier) and method.guide.provenance["sha256"] == sha
    expand(method, ds, timm_out, ratio=2, limit=2, progress=False)
    assert json.loads((timm_out / "run.json").read_text())["provenance"]["models"]["guide"]["guide"] == spec
    assert len(list(timm_out.rglob("*.png"))) == 4
    with pytest.raises(ValueError, match="takes no guide"):
        create_method("gif-dalle", names, profile="smoke", device="cpu", guide=str(run))


def test_the_random_perturbation_control_does_not_depend_on_the_guide(tmp_path):
    """vae-random (no step) draws the same z, b whatever the guide: one control serves every guide."""
    run = _smoke_run(tmp_path)
    ds, names = load_dataset("smoke", "train", profile="smoke")

    def images(folder, **options):
        expand(create_method("gif-vae", names, profile="smoke", device="cpu", **options), ds, folder, ratio=2,
               limit=3, seed=4, progress=False)
        return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*.png"))}

    control_clip = images(tmp_path / "c1", opt_steps=0)
    control_run = images(tmp_path / "c2", opt_steps=0, guide=str(run))
    assert len(control_clip) == 6 and control_clip == control_run
    guided_clip = images(tmp_path / "g1")
    guided_run = images(tmp_path / "g2", guide=str(run))
    assert guided_clip != guided_run  # with a step, the guide decides where the images go
    assert guided_clip != control_clip


def test_guide_findings_say_what_the_numbers_say():
    """The plain-word answers of the guide study follow the intervals: an effect only when the interval excludes 0,
    the strongest guide by its own accuracy, the order of the gains, and the smallest effect the seeds find (80 %
    power)."""
    import pandas as pd

    from gifkit.experiments.guide_study import GUIDE_NAMES, guide_findings

    summary = pd.DataFrame({"arm": ["gif-vae-guide-random", "gif-vae", "gif-vae-guide-oracle",
                                    "gif-vae-guide-oracle-adam5"],
                            "guide_accuracy": [30.0, 70.0, 90.0, 90.0], "vs_original": [0.5, 0.2, 1.0, 3.0]})
    paired = pd.DataFrame({"method": ["gif-vae-guide-random", "gif-vae", "gif-vae-guide-oracle",
                                      "gif-vae-guide-oracle-adam5", "gif-vae"],
                           "control": ["vae-random"] * 4 + ["original"], "n": [5, 5, 5, 10, 5],
                           "mean_diff": [-0.1, 0.3, 1.2, 0.2, 9.0], "ci_low": [-1.0, -0.5, 0.4, -0.3, 8.0],
                           "ci_high": [0.8, 1.1, 2.0, 0.7, 10.0], "detectable": [0.65, 0.58, 0.57, 0.4, 0.1]})
    said = guide_findings(summary, paired)
    assert len(said) == 7
    assert f"'{GUIDE_NAMES['gif-vae-guide-oracle-adam5']}'" in said[3] and "over 10 seeds" in said[3]
    said = said[:3] + said[4:]  # the step arm takes no part in the strongest guide or the order
    assert "-0.10 points [-1.00, +0.80]" in said[0] and "no detectable effect" in said[0] and "0.65 points" in said[0]
    assert "+1.20 points [+0.40, +2.00]" in said[2] and "excludes 0" in said[2]
    assert f"strongest guide ({GUIDE_NAMES['gif-vae-guide-oracle']}, 90.0 %) guidance beats" in said[3]
    assert said[4].endswith("+0.50, +0.20, +1.00: not in that order, unlike Table 8.")
    assert "0.40 to 0.65 points" in said[5] and said[5].startswith("With 5 or 10 seeds") and "80 %" in said[5]
    summary.loc[1, "vs_original"] = 0.7
    paired.loc[2, "ci_low"] = -0.1
    again = guide_findings(summary, paired)
    assert again[5].endswith(": the same order, as in Table 8.") and "does not beat" in again[4]
    paired.loc[len(paired)] = {"method": "vae-random", "control": "original", "n": 5, "mean_diff": 2.0, "ci_low": 1.0,
                               "ci_high": 3.0, "detectable": 1.0}
    gain = [f for f in guide_findings(summary, paired) if f.startswith("Against the original data")]
    assert gain == ["Against the original data, the same random perturbation gives +2.00 points [+1.00, +3.00] over 5 "
                    "seeds and GIF-VAE with the default guide +9.00 points [+8.00, +10.00]: the expansion's gain is "
                    "there without the guided step."]
