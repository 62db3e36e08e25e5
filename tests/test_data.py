"""Data registry, the synthetic smoke set, and tolerant image reading."""
import numpy as np
import pytest
from PIL import Image

from gifkit.data import ImageFolderDataset, available_datasets, load_dataset
from gifkit.io.images import BadImage, open_rgb, to_rgb


def test_smoke_dataset_is_deterministic_and_labelled():
    ds, names = load_dataset("smoke", "train")
    assert names == ["red circle", "green square", "blue triangle", "yellow cross"]
    assert len(ds) == 16 and ds.targets == [i % 4 for i in range(16)]
    a, la = ds[5]
    b, lb = load_dataset("smoke", "train")[0][5]
    assert la == lb == 1 and a.mode == "RGB" and a.size == (32, 32)
    assert np.array_equal(np.asarray(a), np.asarray(b))
    test, _ = load_dataset("smoke", "test")
    assert len(test) == 64
    assert not np.array_equal(np.asarray(test[0][0]), np.asarray(ds[0][0]))


def test_smoke_classes_are_distinguishable_by_colour():
    ds, _ = load_dataset("smoke", "test")
    means = {}
    for img, y in (ds[i] for i in range(len(ds))):
        a = np.asarray(img, dtype=float)
        bright = a.sum(-1) > 200  # the shape, not the dark background
        means.setdefault(y, []).append(a[bright].mean(0))
    dominant = {y: int(np.argmax(np.mean(v, 0))) for y, v in means.items()}
    assert dominant[0] == 0 and dominant[1] == 1 and dominant[2] == 2  # red, green, blue


def test_unknown_dataset_and_profile():
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("no-such-set")
    with pytest.raises(ValueError, match="profile"):
        load_dataset("smoke", profile="huge")
    assert "smoke" in available_datasets()


def test_to_rgb_modes():
    grey16 = Image.fromarray(np.array([[0, 1000], [2000, 4000]], dtype=np.uint16))
    assert grey16.mode.startswith("I")
    rgb = to_rgb(grey16)
    assert rgb.mode == "RGB" and np.asarray(rgb)[1, 1, 0] == 255 and np.asarray(rgb)[0, 0, 0] == 0
    rgba = Image.new("RGBA", (2, 2), (255, 0, 0, 0))  # fully transparent red -> black
    assert np.asarray(to_rgb(rgba)).max() == 0
    assert to_rgb(Image.new("L", (2, 2), 7)).getpixel((0, 0)) == (7, 7, 7)
    assert to_rgb(Image.new("P", (2, 2))).mode == "RGB"


def _folder(tmp_path):
    root = tmp_path / "imgs"
    (root / "cat").mkdir(parents=True)
    (root / "dog").mkdir()
    (root / "empty").mkdir()
    Image.new("RGB", (8, 8), (255, 0, 0)).save(root / "cat" / "a.png")
    Image.new("L", (8, 8), 100).save(root / "cat" / "b.jpg")
    Image.new("RGBA", (8, 8), (0, 0, 255, 128)).save(root / "dog" / "c.png")
    Image.fromarray(np.full((8, 8), 40000, dtype=np.uint16)).save(root / "dog" / "d.png")
    (root / "dog" / "broken.png").write_bytes(b"not an image")
    (root / "dog" / "notes.txt").write_text("ignored")
    return root


def test_image_folder_tolerates_modes_and_reports_bad(tmp_path):
    root = _folder(tmp_path)
    ds, names = load_dataset(str(root))
    assert names == ["cat", "dog", "empty"] and isinstance(ds, ImageFolderDataset)
    assert ds.empty_classes == ["empty"]
    assert len(ds) == 5 and ds.targets == [0, 0, 1, 1, 1]
    good = [ds[i] for i in range(len(ds)) if not ds.samples[i][0].endswith("broken.png")]
    assert all(img.mode == "RGB" and img.size == (8, 8) for img, _ in good)
    bad = [i for i, (p, _) in enumerate(ds.samples) if p.endswith("broken.png")][0]
    with pytest.raises(BadImage, match="broken.png"):
        ds[bad]
    with pytest.raises(BadImage):
        open_rgb(root / "dog" / "broken.png")


def test_image_folder_split_subfolder_and_errors(tmp_path):
    root = tmp_path / "d"
    (root / "train" / "a").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(root / "train" / "a" / "x.png")
    ds, names = load_dataset(str(root), "train")
    assert names == ["a"] and len(ds) == 1
    with pytest.raises(ValueError, match="no image files"):
        (root / "e" / "z").mkdir(parents=True)
        ImageFolderDataset(root / "e")
    with pytest.raises(ValueError, match="not among the given class names"):
        ImageFolderDataset(root / "train", classes=["b"])
