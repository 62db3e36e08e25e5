"""ALIA (arXiv 2305.16289) on the smoke profile: tiny BLIP / LM / InstructPix2Pix, captions and descriptions,
the editing prior, the semantic and confidence filters (with controlled models), the filter post-pass,
the method end to end with resume, and `gifkit expand --method alia`."""
import json

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms import v2

from gifkit.config import MODEL_IDS
from gifkit.models import hub, tiny
from gifkit.data import load_dataset
from gifkit.methods import alia_text as alia
from gifkit.methods import create_method, expand
from gifkit.methods.alia_filters import (confidence_decisions, confident_thresholds, filter_expansion,
                                         semantic_filter)
from gifkit.methods.alia_text import clean_captions, load_descriptions, parse_descriptions, sample_captions
from gifkit.priors.alia import ALIAPrior, check_descriptions, descriptions_digest
from gifkit.train.runs import TrainedRun
from gifkit.cli import main
from gifkit.core.prior import Job
from gifkit.io.datasets import ExpandedDataset
from gifkit.io.store import ExpansionStore, read_metadata


pytestmark = pytest.mark.usefixtures("one_thread")


def _jobs(ds, names, seeds, k, seed=0):
    return [Job(i, v, ds[i][0], ds[i][1], names[ds[i][1]], key=(seed, i, v)) for i in seeds for v in range(k)]


# ----------------------------------------------------------------------------- models


def test_tiny_models_are_the_real_classes_and_loaders_fail_clearly_offline():
    from diffusers import StableDiffusionInstructPix2PixPipeline
    from transformers import BertTokenizer, BlipForConditionalGeneration, BlipProcessor, GPT2LMHeadModel

    cap = tiny.tiny_blip()
    assert isinstance(cap.model, BlipForConditionalGeneration) and isinstance(cap.processor, BlipProcessor)
    tok = cap.processor.tokenizer
    assert isinstance(tok, BertTokenizer) and tok.bos_token == "[DEC]"
    assert len(tok) == cap.model.config.text_config.vocab_size == len(tok.get_vocab())
    assert tok.tokenize("a dog in the snow") == ["a", "dog", "in", "the", "snow"]
    lm = tiny.tiny_text_generator()
    assert isinstance(lm.model, GPT2LMHeadModel) and len(lm.tokenizer) == tiny.CLIP_VOCAB_SIZE
    ip2p = tiny.tiny_instruct_pix2pix()
    assert isinstance(ip2p, StableDiffusionInstructPix2PixPipeline) and ip2p.unet.config.in_channels == 8
    for load, ident in ((hub.load_blip, MODEL_IDS["blip"]), (hub.load_text_generator, MODEL_IDS["llm"]),
                        (hub.load_instruct_pix2pix, MODEL_IDS["ip2p"])):
        with pytest.raises(hub.ModelUnavailable, match=ident.split("/")[1]):
            load(ident + "-not-cached")


# ----------------------------------------------------------------------------- (a), (b)


def test_captions_are_deterministic_and_cleaned(smoke):
    ds, _ = smoke
    cap = tiny.tiny_blip()
    c1 = alia.caption_images(ds, cap, indices=[0, 1, 2], batch_size=2, max_new_tokens=6)
    assert len(c1) == 3 and all(isinstance(c, str) and c for c in c1)
    assert c1 == alia.caption_images(ds, cap, indices=[0, 1, 2], batch_size=3, max_new_tokens=6)
    assert clean_captions(["a dog", "a dog", "", "x x x x x x", "a cat"]) == ["a dog", "a cat"]
    assert clean_captions(["x x x x x x"]) == ["x x x x x x"]  # never everything removed
    caps = [f"caption {i}" for i in range(50)]
    assert sample_captions(caps, 20, seed=1) == sample_captions(caps, 20, seed=1) != sample_captions(caps, 20, seed=2)
    assert len(sample_captions(caps, 20)) == 20 and sample_captions(caps[:3], 20) == caps[:3]


def test_descriptions_are_parsed_checked_and_loaded(tmp_path):
    answer = ("Sure! Here they are:\n- standing on a branch.\n2) A photo of a [object] in the snow\n"
              "* \"at night\"\n- standing on a branch\n" + "".join(f"- setting {i}\n" for i in range(20)))
    d = parse_descriptions(answer)
    assert d[:3] == ["standing on a branch", "in the snow", "at night"] and len(d) == 10
    assert parse_descriptions("in a forest at dawn\n\nwith fog") == ["in a forest at dawn", "with fog"]
    assert parse_descriptions("") == []
    assert check_descriptions([" in the  snow ", "in the snow", "", "at night"]) == ["in the snow", "at night"]
    with pytest.raises(ValueError, match="description"):
        check_descriptions(["  "])
    with pytest.raises(ValueError, match="list"):
        check_descriptions("in the snow")
    (tmp_path / "d.txt").write_text("# domains\nin the snow\n\nat night\n")
    (tmp_path / "d.json").write_text(json.dumps({"descriptions": ["on a beach"]}))
    assert load_descriptions(tmp_path / "d.txt") == ["in the snow", "at night"]
    assert load_descriptions(tmp_path / "d.json") == ["on a beach"]
    with pytest.raises(FileNotFoundError):
        load_descriptions(tmp_path / "missing.txt")


def test_summarize_with_the_tiny_text_generator_is_deterministic():
    lm = tiny.tiny_text_generator()
    caps = ["a red circle on a dark background", "a green square", "a blue triangle in the dark"]
    a = alia.summarize_captions(caps, lm, max_new_tokens=30)
    b = alia.summarize_captions(caps, lm, max_new_tokens=30)
    assert a == b and 1 <= len(a["descriptions"]) <= alia.MAX_DESCRIPTIONS
    assert all(len(x.split()) <= 12 for x in a["descriptions"]) and "a green square" in a["prompt"]


# ----------------------------------------------------------------------------- (c)


def test_prior_prompts_cycle_descriptions_and_are_deterministic(smoke):
    ds, names = smoke
    descs = ["in the snow", "at night", "on a beach"]
    prior = ALIAPrior(tiny.tiny_sd(), descs, steps=4, strength=0.6, guidance_scale=7.5)
    jobs = _jobs(ds, names, [0, 1, 2], 3)
    for s in range(3):  # K <= D: every seed gets each description once
        assert {prior.description(j) for j in jobs[3 * s:3 * s + 3]} == set(descs)
    assert all(prior.prompt(j) == f"a photo of a {j.class_name} {prior.description(j)}" for j in jobs)
    f = prior.prepare(jobs[:2]).f
    assert f.shape == (2, 4, 16, 16)
    assert torch.allclose(prior.prepare(jobs[1:2]).f, f[1:], atol=1e-4)
    assert prior.params["strength"] == 0.6 and prior.params["guidance_scale"] == 7.5
    assert prior.params["descriptions_sha"] == descriptions_digest(descs)
    ip = ALIAPrior(tiny.tiny_instruct_pix2pix(), descs, editor="instruct", steps=3, guidance_scale=5.0,
                   image_guidance_scale=1.2)
    lat = ip.prepare(jobs[:2])
    assert lat.f.shape == (2, 4, 16, 16) and lat.prompts[0].startswith(f"put the {names[0]} ")
    assert ip.params["image_guidance_scale"] == 1.2 and "strength" not in ip.params
    with pytest.raises(ValueError, match="does not match"):
        ALIAPrior(tiny.tiny_sd(), descs, editor="instruct", steps=2, guidance_scale=5.0)
    with pytest.raises(ValueError, match="template"):
        ALIAPrior(tiny.tiny_sd(), descs, template="a photo of a {class}", steps=2, guidance_scale=7.5)


# ----------------------------------------------------------------------------- (d), (e) with controlled models

COLOURS = {"red": (255, 0, 0), "weak red": (153, 0, 102), "black": (0, 0, 0), "blue": (0, 0, 255),
           "weak blue": (102, 0, 153)}


class FakeClip(torch.nn.Module):
    """open_clip-like: text i -> one-hot(i) over [red, blue, 'a photo', 'an image']; image -> [R, B, .1, (1-mean)/2]."""

    def __init__(self):
        super().__init__()
        self.ids = {"a photo of a red": 0, "a photo of a blue": 1, "a photo": 2, "an image": 3}
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.visual = torch.nn.Module()
        self.visual.image_size = 8
        self.visual.preprocess_cfg = {"size": (8, 8), "mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}

    def tokenize(self, texts):
        return torch.tensor([[self.ids[t]] for t in texts])

    def encode_text(self, tokens):
        return F.one_hot(tokens[:, 0], 4).float()

    def encode_image(self, x):
        r, b = x[:, 0].mean((1, 2)), x[:, 2].mean((1, 2))
        return torch.stack([r, b, torch.full_like(r, 0.1), (1 - x.mean((1, 2, 3))) / 2], 1)


class RedBlue(torch.nn.Module):
    """logits = 2 * [mean R, mean B]."""

    def forward(self, x):
        return 2 * torch.stack([x[:, 0].mean((1, 2)), x[:, 2].mean((1, 2))], 1)


class ListDataset(torch.utils.data.Dataset):
    def __init__(self, items):
        self.items, self.targets, self.classes = items, [y for _, y in items], ["red", "blue"]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def _candidates(root):
    store = ExpansionStore(root, ["red", "blue"])
    spec = [("red", 0), ("weak red", 0), ("black", 0), ("blue", 0), ("weak blue", 1)]
    rows = []
    for i, (colour, label) in enumerate(spec):
        rel = store.relpath(label, i, 0)
        store.save_image(rel, Image.new("RGB", (16, 16), COLOURS[colour]))
        rows.append({"file_name": rel, "label": label, "seed_index": i, "variant": 0, "method": "alia",
                     "prompt": f"a photo of a {['red', 'blue'][label]} {colour}"})
    store.write_part("000000", rows)
    store.finalize()
    return spec


def test_semantic_filter_drops_when_a_negative_prompt_wins():
    clip = FakeClip()
    x = torch.stack([v2.functional.to_dtype(v2.functional.to_image(Image.new("RGB", (8, 8), COLOURS[c])),
                                            torch.float32, scale=True) for c in ("red", "black", "blue", "blue")])
    d = semantic_filter(x, [0, 0, 0, 1], ["red", "blue"], clip, clip.tokenize, negatives=["a photo", "an image"])
    assert d["semantic_keep"].tolist() == [1, 0, 0, 1]  # blue labelled red: only its own class prompt competes
    assert d["semantic_winner"].tolist() == ["a photo of a red", "an image", "an image", "a photo of a blue"]
    assert d["semantic_p_class"].iloc[0] > 0.5 > d["semantic_p_class"].iloc[1]
    one = semantic_filter(x, [0, 0, 0, 1], ["red", "blue"], clip, clip.tokenize, template="a photo of a red",
                          negatives=["a photo", "an image"])  # one dataset-level prompt (the official code's)
    assert one["semantic_keep"].tolist() == [1, 0, 0, 0]


def test_confidence_thresholds_and_decisions():
    probs = np.array([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8], [0.4, 0.6]])
    t = confident_thresholds(probs, [0, 0, 1, 1])
    assert np.allclose(t, [0.8, 0.7])
    assert np.isnan(confident_thresholds(probs, [0, 0, 0, 0], 2)[1])
    probs, labels = np.array([[0.85, 0.15], [0.6, 0.4], [0.25, 0.75], [0.1, 0.9]]), [0, 0, 0, 1]
    d = confidence_decisions(probs, labels, t)  # the official filter: the threshold of the edit's label
    assert d["conf_decision"].tolist() == ["too_easy", "keep", "keep", "too_easy"]  # row 2: 0.75 < t_0 = 0.8
    assert d["conf_pred"].tolist() == [0, 0, 1, 1] and np.allclose(d["conf_threshold"], [0.8, 0.8, 0.8, 0.7])
    d = confidence_decisions(probs, labels, t, threshold_by="prediction")
    assert d["conf_decision"].tolist() == ["too_easy", "keep", "mislabeled", "too_easy"]  # row 2: 0.75 > t_1
    assert np.allclose(d["conf_threshold"], [0.8, 0.8, 0.7, 0.7])
    nan = confidence_decisions(np.array([[0.1, 0.9]]), [0], np.array([0.5, np.nan]), threshold_by="prediction")
    assert nan["conf_decision"].tolist() == ["keep"]  # a class without training images is never "confident"
    with pytest.raises(ValueError, match="threshold_by"):
        confidence_decisions(probs, labels, t, threshold_by="mean")


def test_filter_expansion_keeps_and_records_decisions(tmp_path):
    cand, out = tmp_path / "cand", tmp_path / "out"
    _candidates(cand)
    to01 = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])
    clf = TrainedRun(RedBlue(), {}, to01, ["red", "blue"])
    original = ListDataset([(Image.new("RGB", (16, 16), (204, 0, 51)), 0),
                            (Image.new("RGB", (16, 16), (51, 0, 204)), 1)])
    clip = FakeClip()
    kw = dict(original=original, clip_model=clip, clip_tokenizer=clip.tokenize, classifier=clf,
              negatives=["a photo", "an image"])
    table = filter_expansion(cand, out, **kw)
    assert table["semantic_keep"].tolist() == [1, 1, 0, 0, 1]
    assert table["conf_decision"].tolist() == ["too_easy", "keep", "keep", "mislabeled", "keep"]
    assert table["kept"].tolist() == [0, 1, 0, 0, 1]
    meta = read_metadata(out)
    assert meta["file_name"].tolist() == table.loc[table["kept"] == 1, "file_name"].tolist()
    assert set(meta["kept"]) == {1} and {"semantic_winner", "conf", "conf_threshold", "prompt"} <= set(meta.columns)
    assert sorted(p.name for p in out.rglob("*.png")) == ["000001_000.png", "000004_000.png"]
    assert (out / meta["file_name"][0]).read_bytes() == (cand / meta["file_name"][0]).read_bytes()
    assert len(pd.read_csv(out / "alia_filter.csv")) == 5
    info = json.loads((out / "alia.json").read_text())["filtering"]
    counts = (info["n_kept"], info["dropped_semantic"], info["dropped_too_easy"], info["dropped_mislabeled"])
    assert counts == (2, 2, 1, 1)
    assert info["confident_thresholds"]["red"] == pytest.approx(float(torch.softmax(torch.tensor([1.6, 0.4]), 0)[0]))
    assert len(ExpandedDataset(original, out)) == 2 + 2
    # another filter setting on the same output rewrites it: more kept, then stale images removed again
    assert filter_expansion(cand, out, filter="semantic", **kw)["kept"].sum() == 3
    assert filter_expansion(cand, out, filter="none")["kept"].sum() == 5 and len(read_metadata(out)) == 5
    filter_expansion(cand, out, **kw)
    assert len(list(out.rglob("*.png"))) == 2 and len(read_metadata(out)) == 2
    with pytest.raises(ValueError, match="classifier"):
        filter_expansion(cand, out, filter="confidence")
    with pytest.raises(ValueError, match="differ"):
        filter_expansion(cand, cand, filter="none")


# ----------------------------------------------------------------------------- end to end


def run_alia(out, **options):
    ds, names = load_dataset("smoke")
    method = create_method("alia", names, device="cpu", data="smoke", steps=3, **options)
    return expand(method, ds, out, ratio=2, limit=4, batch_size=2, progress=False)


def test_alia_end_to_end_and_resume(tmp_path):
    out = tmp_path / "alia"
    r = run_alia(out)
    work = tmp_path / "alia.alia"
    assert (work / "captions.csv").is_file() and len(pd.read_csv(work / "captions.csv")) == 16
    assert 1 <= len(r.descriptions) <= 10 and json.loads((work / "descriptions.json").read_text())["output"]
    cand = read_metadata(r.candidates)
    assert len(cand) == 8 and set(cand["method"]) == {"alia"} and set(cand["editor"]) == {"img2img"}
    table = pd.read_csv(out / "alia_filter.csv")
    assert len(table) == 8 and set(table["alia_filter"]) == {"both"}
    kept = table[table["kept"] == 1]
    assert r.n_kept == len(kept) and len(list(out.rglob("*.png"))) == len(kept)
    info = json.loads((out / "alia.json").read_text())
    assert info["descriptions"] == r.descriptions and info["descriptions_source"] == "llm:tiny"
    assert (work / "classifier" / "result.json").is_file() and "kept" in r.summary()
    before = {p: p.read_bytes() for p in sorted(r.candidates.rglob("*.png"))}
    again = run_alia(out)
    assert again.expand.written == 0 and again.expand.existing == 8 and again.descriptions == r.descriptions
    assert {p: p.read_bytes() for p in sorted(r.candidates.rglob("*.png"))} == before
    assert pd.read_csv(out / "alia_filter.csv").equals(table)
    with pytest.raises(ValueError, match="other settings"):  # other descriptions: the candidates store refuses
        run_alia(out, descriptions=["in the snow"])


def test_cli_expand_alia_with_user_descriptions(tmp_path, capsys):
    desc = tmp_path / "domains.txt"
    desc.write_text("in the snow\nat night\n")
    out = tmp_path / "cli"
    assert main(["expand", "--data", "smoke", "--method", "alia", "--out", str(out), "--ratio", "2", "--limit", "2",
                 "--steps", "2", "--descriptions-file", str(desc), "--editor", "instruct", "--alia-filter",
                 "semantic", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "ALIA: 2 domain descriptions" in text and "filter 'semantic'" in text
    cand = read_metadata(tmp_path / "cli.alia" / "candidates")
    assert len(cand) == 4 and set(cand["editor"]) == {"instruct"} and cand["prompt"].str.startswith("put the").all()
    assert not (tmp_path / "cli.alia" / "classifier").exists()  # no confidence filter, no classifier
    assert json.loads((out / "alia.json").read_text())["descriptions"] == ["in the snow", "at night"]
    assert main(["expand", "--data", "smoke", "--method", "alia", "--out", str(tmp_path / "x"), "--descriptions",
                 "in the snow", "--descriptions-file", str(desc)]) == 2
    assert "not both" in capsys.readouterr().err
