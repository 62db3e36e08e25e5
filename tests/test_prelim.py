"""gifkit.experiments.prelim: selective augmentation expansion (Fig. 2a), sample-wise vs sample-agnostic selection (App. B.1),
the long-tailed smoke data and the CIFAR-100-C stand-in."""
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from gifkit.experiments import prelim
from gifkit.data.longtail import longtail_subset
from gifkit.data import load_dataset
from gifkit.data.cifar import read_cifar100c
from gifkit.core.guidance import zero_shot_probs
from gifkit.io.datasets import ExpandedDataset
from gifkit.io.store import ExpansionStore, read_metadata

CLASSES = ["red", "green", "blue"]


class ColourCLIP(torch.nn.Module):
    """A zero-shot classifier whose feature is the mean colour: red, green and blue are the three classes."""

    def __init__(self):
        super().__init__()
        self.register_buffer("text_features", torch.eye(3))

    def image_features(self, images01):
        return F.normalize(images01.mean((2, 3)), dim=-1)

    def probs_from_features(self, features):
        return zero_shot_probs(features, self.text_features, logit_scale=10.0)


def solid(rgb, size=8):
    return Image.new("RGB", (size, size), tuple(int(255 * c) for c in rgb))


class Seeds(torch.utils.data.Dataset):
    def __init__(self, colours, labels):
        self.colours, self.targets, self.classes = colours, labels, CLASSES

    def __len__(self):
        return len(self.colours)

    def __getitem__(self, i):
        return solid(self.colours[i]), self.targets[i]


@pytest.fixture
def pool(tmp_path):
    """Two red seeds with 4 candidates each, written as an expansion folder."""
    seeds = Seeds([(1, 0, 0), (1, 0.05, 0.05)], [0, 0])
    cands = {0: [(1, 0, 0), (0.8, 0.4, 0.4), (0.45, 0.55, 0.5), (0.9, 0.2, 0.2)],  # seed 0: low-entropy copies
             1: [(0.7, 0.5, 0.5), (0.75, 0.5, 0.45), (0.7, 0.45, 0.5), (0.72, 0.5, 0.5)]}  # seed 1: all informative
    store = ExpansionStore(tmp_path / "cand", CLASSES)
    rows = []
    for s, cols in cands.items():
        for v, c in enumerate(cols):
            rel = store.relpath(0, s, v)
            store.save_image(rel, solid(c))
            rows.append({"file_name": rel, "label": 0, "seed_index": s, "variant": v, "method": "test"})
    store.write_part("000000", rows)
    store.finalize()
    return seeds, tmp_path / "cand", prelim.score_candidates(tmp_path / "cand", seeds, ColourCLIP())


def test_scores_are_the_zero_shot_figures_against_the_seed(pool):
    _, _, scores = pool
    t = scores.table
    assert len(t) == 8 and scores.features.shape == (8, 3)
    assert (t["clip_y_hat"] == 0).all()
    assert t.loc[2, "pred"] == 1 and t.loc[2, "consistent"] == 0  # greenish-grey candidate: another class
    assert t.loc[0, "more_entropy"] == 0 and t.loc[1, "more_entropy"] == 1  # the plain copy is not informative
    inf = t["p_yhat"] + t["entropy"] - t["entropy_seed"]  # Eq. 5 with one variant
    assert np.allclose(t["informativeness"], inf, atol=1e-5)


def test_criteria_pick_what_they_promise(pool):
    _, _, scores = pool
    by = {c: prelim.select_candidates(scores, 1, c) for c in ("class-maintained", "entropy", "informativeness")}
    s0 = {c: int(df.query("seed_index == 0")["variant"].iloc[0]) for c, df in by.items()}
    assert s0["entropy"] == 2  # the most uncertain candidate, though CLIP calls it another class
    assert s0["class-maintained"] == 1  # the most informative one that keeps the class and raises the entropy
    for df in by.values():
        assert df["seed_index"].tolist() == [0, 1] and (df["selection_mode"] == "sample-wise").all()
    r1 = prelim.select_candidates(scores, 2, "random", seed=3)
    assert r1.equals(prelim.select_candidates(scores, 2, "random", seed=3))
    assert prelim.expansion_counts(r1, 2).tolist() == [2, 2]
    draws = {tuple(prelim.select_candidates(scores, 2, "random", seed=s)["variant"]) for s in range(8)}
    assert len(draws) > 1
    with pytest.raises(ValueError, match="criterion"):
        prelim.select_candidates(scores, 1, "nope")


def test_diversity_avoids_duplicates():
    f = np.array([[1.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0], [0.9, 0.1, 0]], dtype=np.float32)
    table = pd.DataFrame({"seed_index": 0, "variant": range(4), "file_name": [f"x/{i}" for i in range(4)]})
    sel = prelim.select_candidates(prelim.CandidateScores(table, f), 2, "diversity")
    assert 2 in sel["variant"].tolist() and sorted(sel["variant"]) != [0, 1]
    with pytest.raises(ValueError, match="sample-wise"):
        prelim.select_candidates(prelim.CandidateScores(table, f), 2, "diversity", mode="sample-agnostic")


def test_sample_agnostic_selection_favours_easily_augmented_seeds(pool):
    _, _, scores = pool
    wise = prelim.select_candidates(scores, 2, "class-maintained", "sample-wise")
    agn = prelim.select_candidates(scores, 2, "class-maintained", "sample-agnostic")
    assert len(wise) == len(agn) == 4
    assert prelim.expansion_counts(wise, 2).tolist() == [2, 2]
    counts = prelim.expansion_counts(agn, 2)
    assert counts.sum() == 4 and counts[1] > counts[0]  # seed 1's candidates are all informative


def test_write_selection_is_a_store_and_replaces_an_older_one(pool, tmp_path):
    seeds, cand, scores = pool
    out = tmp_path / "sel"
    a = prelim.select_candidates(scores, 1, "entropy")
    prelim.write_selection(cand, a, out)
    meta = read_metadata(out)
    assert sorted(meta["file_name"]) == sorted(a["file_name"]) and "informativeness" in meta.columns
    assert (out / a["file_name"].iloc[0]).read_bytes() == (cand / a["file_name"].iloc[0]).read_bytes()
    b = prelim.select_candidates(scores, 1, "class-maintained")
    prelim.write_selection(cand, b, out)
    assert sorted(read_metadata(out)["file_name"]) == sorted(b["file_name"])
    assert sorted(str(p.relative_to(out)) for p in out.glob("*/*.png")) == sorted(b["file_name"])
    assert len(ExpandedDataset(seeds, out)) == 2 + 2
    with pytest.raises(ValueError, match="differ"):
        prelim.write_selection(cand, b, cand)


def test_selective_augmentation_end_to_end(tmp_path):
    seeds = Seeds([(1, 0, 0), (0, 1, 0), (0, 0, 1)], [0, 1, 2])
    r = prelim.selective_augmentation(seeds, CLASSES, tmp_path / "sel", ColourCLIP(), augment="cutout", ratio=2,
                                      pool=2, criteria=("random", "class-maintained", "diversity"),
                                      modes=prelim.MODES)
    assert set(r.selections) == {"random/sample-wise", "random/sample-agnostic", "class-maintained/sample-wise",
                                 "class-maintained/sample-agnostic", "diversity/sample-wise"}
    assert len(read_metadata(r.candidates)) == 3 * 4 and r.n_seeds == 3
    for name in r.selections:
        assert len(r.selected(name)) == 3 * 2
    again = prelim.selective_augmentation(seeds, CLASSES, tmp_path / "sel", ColourCLIP(), augment="cutout",
                                          ratio=2, pool=2, criteria=("random",))
    pd.testing.assert_frame_equal(again.scores.table, r.scores.table, check_dtype=False)  # cached with the candidates


def test_smoke_lt_is_long_tailed_with_cifar100lt_groups():
    ds, classes = load_dataset("smoke-lt", "train")
    counts = np.bincount(ds.targets, minlength=len(classes)).tolist()
    assert counts == ds.class_counts == [120, 38, 12, 4]
    assert [ds[i][1] for i in range(3)] == ds.targets[:3]
    test, _ = load_dataset("smoke-lt", "test")
    assert test.class_counts == counts and len(test) == 16 * 4
    from gifkit.train.metrics import shot_groups
    assert {k: len(v) for k, v in shot_groups(counts).items()} == {"many": 1, "medium": 1, "few": 2}
    with pytest.raises(ValueError, match="balanced"):
        longtail_subset(ds)


def test_fake_cifar100c_has_the_official_layout_and_grows_with_severity(tmp_path):
    test, _ = load_dataset("smoke", "test", n_per_class=2)
    written = prelim.write_fake_cifar100c(tmp_path, test, ["gaussian_noise", "contrast", "jpeg_compression"])
    assert written == ["gaussian_noise", "contrast", "jpeg_compression"]
    arr = np.load(tmp_path / "CIFAR-100-C" / "gaussian_noise.npy")
    assert arr.shape == (5 * 8, 32, 32, 3) and arr.dtype == np.uint8
    assert np.load(tmp_path / "CIFAR-100-C" / "labels.npy").tolist() == test.targets * 5
    clean = np.stack([np.asarray(test[i][0], dtype=float) for i in range(len(test))])
    for c in written:
        dist = [np.abs(np.asarray([np.asarray(read_cifar100c(tmp_path, c, s)[i][0]) for i in range(len(test))],
                                  dtype=float) - clean).mean() for s in range(1, 6)]
        assert dist[0] > 0 and dist[4] > dist[0], c
    assert read_cifar100c(tmp_path, "contrast", 3).targets == test.targets
    with pytest.raises(ValueError, match="stand-in"):
        prelim.corrupt(test[0][0], "frost", 1, np.random.default_rng(0))
