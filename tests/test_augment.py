"""Augmentation-expansion baselines: outputs in the store format, soft labels, determinism, CLI."""
import filecmp
import os

import numpy as np
import pytest
import torch
from PIL import Image

from gifkit.methods import create_method, expand, get_method
from gifkit.methods.augment import AUGMENT_METHODS, augment_one, cutmix, cutout, gridmask, mixup
from gifkit.cli import main
from gifkit.data import load_dataset
from gifkit.core.rng import np_random
from gifkit.io.datasets import ExpandedDataset
from gifkit.io.store import read_classes, read_metadata


RANDAUGMENT = {"num_ops": 2, "magnitude": 9}  # torchvision's defaults, the method's


@pytest.fixture(scope="module")
def smoke():
    return load_dataset("smoke", "train")  # 16 images, 4 classes


def files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


@pytest.mark.parametrize("method", AUGMENT_METHODS)
def test_each_baseline_writes_k_copies_in_store_format(tmp_path, smoke, method):
    ds, classes = smoke
    result = expand(create_method(method, classes), ds, tmp_path, ratio=2, batch_size=5, progress=False)
    assert result.written == 32 and not result.skipped
    meta = read_metadata(tmp_path)
    assert len(meta) == 32 and read_classes(tmp_path) == classes
    assert set(meta["method"]) == {method} and (meta["ratio"] == 2).all()
    assert meta["label"].tolist() == [ds.targets[i] for i in meta["seed_index"]]
    for row in meta.itertuples():
        im = Image.open(tmp_path / row.file_name)
        assert im.mode == "RGB" and im.size == (32, 32)
    for key in get_method(method).Config.field_names():
        assert key in meta.columns
    expanded = ExpandedDataset(ds, tmp_path)
    assert len(expanded) == 16 + 32
    if method in ("mixup", "cutmix"):
        assert meta["lam"].between(0, 1).all() and meta["label_b"].between(0, 3).all()
        assert (meta["partner_index"] != meta["seed_index"]).all()
        assert expanded.soft
        _, target = expanded[16 + 3]
        row = meta.iloc[3]
        expect = torch.zeros(4)
        expect[int(row.label)] += row.lam
        expect[int(row.label_b)] += 1 - row.lam
        assert torch.allclose(target, expect, atol=1e-5) and abs(float(target.sum()) - 1) < 1e-5
        partner_label = ds.targets[int(row.partner_index)]
        assert int(row.label_b) == partner_label
    else:
        assert "label_b" not in meta.columns and not expanded.soft
        seed, _ = ds[0]
        assert any(np.asarray(Image.open(tmp_path / f)).tobytes() != np.asarray(seed).tobytes()
                   for f in meta["file_name"][:2])


def test_bytes_do_not_depend_on_batching_sharding_or_resume(tmp_path, smoke):
    ds, classes = smoke
    a, b = tmp_path / "a", tmp_path / "b"
    expand(create_method("randaugment", classes), ds, a, ratio=3, batch_size=16, progress=False)
    expand(create_method("randaugment", classes), ds, b, ratio=3, batch_size=3, shard=(1, 2), progress=False)
    expand(create_method("randaugment", classes), ds, b, ratio=3, batch_size=3, shard=(0, 2), progress=False)
    assert files(a) == files(b)
    same = [f for f in files(a) if f != "run.json"]  # run.json records the batch size
    assert all(filecmp.cmp(a / f, b / f, shallow=False) for f in same)
    victim = next(f for f in files(a) if f.endswith(".png"))
    (a / victim).unlink()
    again = expand(create_method("randaugment", classes), ds, a, ratio=3, batch_size=16, progress=False)
    assert again.written == 1 and filecmp.cmp(a / victim, b / victim, shallow=False)
    with pytest.raises(ValueError, match="other settings"):
        expand(create_method("randaugment", classes), ds, a, ratio=4, batch_size=16, progress=False)


def test_randaugment_is_seeded_per_job_and_leaves_global_rng_alone():
    im = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    state = torch.random.get_rng_state()
    x1, _ = augment_one("randaugment", im, (0, 1, 2), RANDAUGMENT)
    x2, _ = augment_one("randaugment", im, (0, 1, 2), RANDAUGMENT)
    assert torch.equal(state, torch.random.get_rng_state())
    assert x1.tobytes() == x2.tobytes()
    others = {augment_one("randaugment", im, (0, 1, v), RANDAUGMENT)[0].tobytes() for v in range(6)}
    assert len(others) > 1


def test_cutout_geometry():
    im = Image.new("RGB", (40, 40), (200, 100, 50))
    out = np.asarray(cutout(im, np_random(3), size=0.25))
    zero = (out == 0).all(-1)
    ys, xs = np.nonzero(zero)
    assert zero.sum() > 0 and np.ptp(ys) + 1 <= 10 and np.ptp(xs) + 1 <= 10
    assert zero.sum() == (np.ptp(ys) + 1) * (np.ptp(xs) + 1)  # one axis-aligned (clipped) square
    assert (out[~zero] == (200, 100, 50)).all()


def test_gridmask_drops_a_periodic_grid_of_squares():
    im = Image.new("RGB", (64, 64), (255, 255, 255))
    out = np.asarray(gridmask(im, np_random(0), d_min=0.5, d_max=0.5, band_ratio=0.6))
    dropped = (out == 0).all(-1)
    # period d = 32 px, kept bands ceil(0.6 * 32) = 20 px -> dropped squares of 12 px: (12/32)^2 of the area
    assert abs(dropped.mean() - (12 / 32) ** 2) < 0.05
    rows = dropped.any(1)
    assert 0 < rows.mean() < 1


def test_mixup_and_cutmix_math():
    a = Image.new("RGB", (20, 10), (200, 0, 0))
    b = Image.new("RGB", (5, 5), (0, 100, 0))
    m = np.asarray(mixup(a, b, 0.25))
    assert m.shape == (10, 20, 3) and tuple(m[0, 0]) == (50, 75, 0)
    c, lam = cutmix(a, b, 0.5, np_random(1))
    c = np.asarray(c)
    pasted = (c[..., 1] == 100).mean()
    assert abs((1 - lam) - pasted) < 1e-9 and 0 < pasted < 1


def test_unknown_method_or_parameter(tmp_path, smoke):
    ds, classes = smoke
    with pytest.raises(ValueError, match="unknown method 'autoaugment'"):
        create_method("autoaugment", classes)
    with pytest.raises(ValueError, match="unknown option.*length.*size"):
        create_method("cutout", classes, length=3)
    assert create_method("randaugment", classes).params == RANDAUGMENT


def test_cli_expand_dispatches_augmentation_methods(tmp_path, capsys):
    out = tmp_path / "cut"
    assert main(["expand", "--data", "smoke", "--method", "cutout", "--ratio", "2", "--out", str(out),
                 "--no-progress", "--output-size", "48"]) == 0
    assert "32 written" in capsys.readouterr().out
    meta = read_metadata(out)
    assert len(meta) == 32 and Image.open(out / meta["file_name"][0]).size == (48, 48)
