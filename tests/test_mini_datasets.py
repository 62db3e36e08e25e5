"""The mini profile's stand-ins for the long-tail and OOD studies: fashion-mnist-lt and fashion-mnist-c, on fake
idx files with the official names (hand-computed counts, determinism, corruption strength)."""
import gzip

import numpy as np
import pytest

from gifkit.data import load_dataset
from gifkit.data.corruptions import CORRUPTIONS
from gifkit.train.metrics import shot_groups


def write_idx(path, arr):
    arr = np.asarray(arr, dtype=np.uint8)
    head = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    path.write_bytes(gzip.compress(head + arr.tobytes()))


@pytest.fixture
def fake_fashion(tmp_path):
    """30 training images per class (labels in blocks) and 6 test images per class, with a bright bar per class."""
    root = tmp_path / "fashion"
    root.mkdir()
    rng = np.random.default_rng(0)
    for prefix, labels in (("train", np.repeat(np.arange(10), 30)), ("t10k", np.tile(np.arange(10), 6))):
        x = rng.integers(0, 40, size=(len(labels), 28, 28)).astype(np.uint8)
        for i, y in enumerate(labels):
            x[i, 2 + 2 * int(y): 5 + 2 * int(y), 4:24] = 220
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", x)
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return root


def test_fashion_mnist_lt_is_an_exponential_long_tail_with_cifar_shot_groups(fake_fashion):
    ds, classes = load_dataset("fashion-mnist-lt", "train", root=fake_fashion, n_max=20, imbalance_ratio=10)
    # int(20 * 0.1 ** (c / 9)) for c = 0..9, by hand
    expected = [20, 15, 11, 9, 7, 5, 4, 3, 2, 2]
    assert ds.class_counts == expected and np.bincount(ds.targets, minlength=10).tolist() == expected
    assert len(ds) == sum(expected) == 78 and len(classes) == 10
    again, _ = load_dataset("fashion-mnist-lt", "train", root=fake_fashion, n_max=20, imbalance_ratio=10)
    assert [np.asarray(again[i][0]).tobytes() for i in (0, 40, 77)] == [np.asarray(ds[i][0]).tobytes()
                                                                       for i in (0, 40, 77)]
    test, _ = load_dataset("fashion-mnist-lt", "test", root=fake_fashion, n_max=20, imbalance_ratio=10)
    assert len(test) == 60 and test.class_counts == expected  # balanced test set, training counts attached
    # the defaults (200 per class, ratio 20) give CIFAR100-LT's three groups: 3 many, 4 medium, 3 few
    from gifkit.data.longtail import longtail_counts

    counts = longtail_counts(200, 10, 20)
    assert counts == [200, 143, 102, 73, 52, 37, 27, 19, 13, 10]
    assert {k: len(v) for k, v in shot_groups(counts).items()} == {"many": 3, "medium": 4, "few": 3}


def test_fashion_mnist_c_corrupts_the_test_set_deterministically_and_more_with_severity(fake_fashion):
    clean, classes = load_dataset("fashion-mnist-c", "test", root=fake_fashion)
    assert len(clean) == 60 and len(classes) == 10
    ref = np.stack([np.asarray(clean[i][0], dtype=float) for i in range(len(clean))])
    for c in CORRUPTIONS:
        dist = []
        for s in (1, 5):
            ds, _ = load_dataset("fashion-mnist-c", f"{c}-{s}", root=fake_fashion)
            assert ds.targets == clean.targets
            ims = np.stack([np.asarray(ds[i][0], dtype=float) for i in range(len(ds))])
            assert (ims[..., 0] == ims[..., 1]).all() and (ims[..., 1] == ims[..., 2]).all(), "grey, as the originals"
            dist.append(np.abs(ims - ref).mean())
        assert 0 < dist[0] < dist[1], c
    a, _ = load_dataset("fashion-mnist-c", "gaussian_noise-3", root=fake_fashion)
    b, _ = load_dataset("fashion-mnist-c", "gaussian_noise-3", root=fake_fashion)
    assert np.asarray(a[7][0]).tobytes() == np.asarray(b[7][0]).tobytes()
    # a subsample holds the same corrupted images (draws keyed by the official index)
    sub, _ = load_dataset("fashion-mnist-c", "gaussian_noise-3", root=fake_fashion, test_per_class=2)
    j = int(sub.indices[0])
    assert np.asarray(sub[0][0]).tobytes() == np.asarray(a[j][0]).tobytes()
    train, _ = load_dataset("fashion-mnist-c", "train", root=fake_fashion, n_per_class=3)
    assert len(train) == 30
    for bad in ("frost-3", "contrast-6", "contrast"):
        with pytest.raises(ValueError, match="fashion-mnist-c"):
            load_dataset("fashion-mnist-c", bad, root=fake_fashion)
