"""The paper's dataset loaders against tiny fake files in the real on-disk formats (no downloads)."""
import pickle
import time

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from gifkit.data import load_dataset
from gifkit.core.rng import derive_seed
from gifkit.data import cifar
from gifkit.data.longtail import longtail_counts
from gifkit.data.base import DatasetMissing


def jpg(path, value=0, size=(8, 6)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value % 256, 40, 200)).save(path)
    return path


# ----------------------------------------------------------------------------- CIFAR-100 family


def write_cifar100(root, per_class_train=6, per_class_test=2, n_classes=100):
    base = root / "cifar-100-python"
    base.mkdir(parents=True)
    for name, per in (("train", per_class_train), ("test", per_class_test)):
        labels = [c for _ in range(per) for c in range(n_classes)]  # interleaved, like the real file
        data = np.zeros((len(labels), 3072), np.uint8)
        data[:, 0] = np.arange(len(labels)) % 256  # the first red pixel identifies the row
        with open(base / name, "wb") as fh:
            pickle.dump({"data": data, "fine_labels": labels, "filenames": [f"{i}.png" for i in range(len(labels))]}, fh)
    names = [n.replace(" ", "_") for n in cifar.CIFAR100_CLASSES]
    with open(base / "meta", "wb") as fh:
        pickle.dump({"fine_label_names": names, "coarse_label_names": ["x"] * 20}, fh)
    return root


def test_cifar100_class_names_are_the_official_sorted_list():
    assert len(cifar.CIFAR100_CLASSES) == 100 == len(set(cifar.CIFAR100_CLASSES))
    assert cifar.CIFAR100_CLASSES == sorted(cifar.CIFAR100_CLASSES)


def test_cifar100_and_subset(tmp_path):
    recorded_before = cifar.INDEX_FILE.exists()
    root = write_cifar100(tmp_path)
    full, classes = load_dataset("cifar100", "train", root=root, trust_pickle=True)
    assert len(full) == 600 and classes[1] == "aquarium fish"
    image, label = full[101]
    assert image.size == (32, 32) and image.mode == "RGB" and label == 1
    assert np.asarray(image)[0, 0, 0] == 101
    sub, _ = load_dataset("cifar100s", "train", root=root, trust_pickle=True, per_class=3)
    assert len(sub) == 300 and np.bincount(sub.targets).tolist() == [3] * 100
    again, _ = load_dataset("cifar100s", "train", root=root, trust_pickle=True, per_class=3)
    assert again.indices == sub.indices  # reproducible
    assert all(full.targets[i] == y for i, y in zip(sub.indices, sub.targets))
    other, _ = load_dataset("cifar100s", "train", root=root, trust_pickle=True, per_class=3, subset_seed=1)
    assert other.indices != sub.indices
    test, _ = load_dataset("cifar100s", "test", root=root, trust_pickle=True)
    assert len(test) == 200
    with pytest.raises(ValueError, match="only 6 images"):
        load_dataset("cifar100s", "train", root=root, trust_pickle=True)  # 100 per class needs the real data
    # only the official train file (by MD5) is recorded as the repository's index list
    assert cifar.INDEX_FILE.exists() == recorded_before
    assert not (root / "cifar-100-python" / cifar.INDEX_FILE.name).exists()


def test_cifar100s_indices_definition():
    labels = [i % 3 for i in range(30)]
    idx = cifar.cifar100s_indices(labels, per_class=4, seed=0)
    assert idx == sorted(idx) and len(idx) == 12
    by_hash = {c: sorted((derive_seed(0, "cifar100s", str(i)), i) for i in range(30) if labels[i] == c)[:4]
               for c in range(3)}
    assert sorted(i for v in by_hash.values() for _, i in v) == idx


def test_longtail_counts_and_ldam_selection(tmp_path):
    counts = longtail_counts(500, 100, 100)
    assert counts[0] == 500 and counts[-1] == 5 and sum(counts) == 10847
    assert all(a >= b for a, b in zip(counts, counts[1:]))
    root = write_cifar100(tmp_path, per_class_train=10)
    train, _ = load_dataset("cifar100lt", "train", root=root, trust_pickle=True, imbalance_ratio=10)
    expect = longtail_counts(10, 100, 10)
    assert np.bincount(train.targets, minlength=100).tolist() == expect == train.class_counts
    # exactly LDAM-DRW's IMBALANCECIFAR100.gen_imbalanced_data
    labels = np.asarray(load_dataset("cifar100", "train", root=root, trust_pickle=True)[0].targets)
    np.random.seed(0)
    ldam = []
    for c, n in zip(np.unique(labels), expect):
        idx = np.where(labels == c)[0]
        np.random.shuffle(idx)
        ldam += idx[:n].tolist()
    assert train.indices == ldam
    test, _ = load_dataset("cifar100lt", "test", root=root, trust_pickle=True, imbalance_ratio=10)
    assert len(test) == 200 and test.class_counts == expect


def test_cifar100c(tmp_path):
    base = tmp_path / "CIFAR-100-C"
    base.mkdir()
    n = 4
    images = np.zeros((5 * n, 32, 32, 3), np.uint8)
    for s in range(5):
        images[s * n:(s + 1) * n] = s + 1  # pixel value = severity
    np.save(base / "fog.npy", images)
    np.save(base / "labels.npy", np.tile(np.arange(n), 5).astype(np.int64))
    ds, classes = load_dataset("cifar100c", "fog-3", root=tmp_path)
    assert len(ds) == n and len(classes) == 100
    image, label = ds[2]
    assert np.asarray(image).max() == 3 and label == 2
    ds5, _ = load_dataset("cifar100c", root=tmp_path, corruption="fog", severity=5)
    assert np.asarray(ds5[0][0]).max() == 5
    with pytest.raises(ValueError, match="corruption"):
        load_dataset("cifar100c", "speckle-3", root=tmp_path)
    with pytest.raises(DatasetMissing, match="snow.npy"):
        load_dataset("cifar100c", "snow-1", root=tmp_path)
    assert len(cifar.CORRUPTIONS) == 15


# ----------------------------------------------------------------------------- folder datasets


def test_caltech101_paper_split(tmp_path):
    cats = tmp_path / "caltech101" / "101_ObjectCategories"
    for k, folder in enumerate(["BACKGROUND_Google", "Faces_easy", "car_side"]):
        for i in range(1, 6):
            jpg(cats / folder / f"image_{i:04d}.jpg", k * 10 + i)
    train, classes = load_dataset("caltech101", "train", root=tmp_path, per_class=2)
    test, _ = load_dataset("caltech101", "test", root=tmp_path, per_class=2)
    assert classes == ["background", "face easy", "car side"]
    assert len(train) == 6 and len(test) == 9 and np.bincount(train.targets).tolist() == [2, 2, 2]
    assert not {p for p, _ in train.samples} & {p for p, _ in test.samples}
    assert train[0][0].mode == "RGB"
    assert load_dataset("caltech101", "train", root=tmp_path, per_class=2)[0].samples == train.samples


def _mat_struct(**columns):
    n = len(next(iter(columns.values())))
    arr = np.zeros((n,), dtype=[(k, "O") for k in columns])
    for k, values in columns.items():
        for i, v in enumerate(values):
            arr[i][k] = v
    return arr


def test_stanford_cars(tmp_path):
    base = tmp_path / "stanford_cars"
    (base / "devkit").mkdir(parents=True)
    savemat(base / "devkit" / "cars_meta.mat", {"class_names": np.array(["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Audi R8"], dtype=object)})
    for split, folder, ann in (("train", "cars_train", base / "devkit" / "cars_train_annos.mat"),
                               ("test", "cars_test", base / "cars_test_annos_withlabels.mat")):
        names = [f"{i:05d}.jpg" for i in range(1, 5)]
        for i, name in enumerate(names):
            jpg(base / folder / name, i)
        savemat(ann, {"annotations": _mat_struct(fname=names, **{"class": [1, 2, 3, 1]})})
    train, classes = load_dataset("cars", "train", root=tmp_path)
    assert classes[2] == "Audi R8" and train.targets == [0, 1, 2, 0] and len(train) == 4
    assert train[1][0].mode == "RGB"
    test, _ = load_dataset("stanford_cars", "test", root=tmp_path)
    assert len(test) == 4


def test_flowers_paper_and_official(tmp_path):
    for split, n in (("train", 3), ("valid", 1)):
        for folder in ("1", "21", "102"):
            for i in range(n):
                jpg(tmp_path / "flower_data" / split / folder / f"image_{folder}_{i}.jpg", i)
    train, classes = load_dataset("flowers102", "train", root=tmp_path)
    assert len(classes) == 102 and classes[20] == "fire lily"
    assert len(train) == 9 and sorted(set(train.targets)) == [0, 20, 101]
    assert len(load_dataset("flowers", "test", root=tmp_path)[0]) == 3

    base = tmp_path / "flowers-102"
    for i in range(1, 7):
        jpg(base / "jpg" / f"image_{i:05d}.jpg", i)
    savemat(base / "imagelabels.mat", {"labels": np.array([[1, 1, 2, 2, 102, 102]])})
    savemat(base / "setid.mat", {"trnid": np.array([[1, 3]]), "valid": np.array([[5]]), "tstid": np.array([[2, 4, 6]])})
    tr, _ = load_dataset("flowers102-official", "train", root=tmp_path)
    assert tr.targets == [0, 1] and tr.samples[1][0].endswith("image_00003.jpg")
    assert load_dataset("flowers102-official", "trainval", root=tmp_path)[0].targets == [0, 1, 101]
    assert len(load_dataset("flowers102-official", "test", root=tmp_path)[0]) == 3


def test_dtd_partition1(tmp_path):
    base = tmp_path / "dtd" / "dtd"
    lines = {"train": [], "val": [], "test": []}
    for cls in ("banded", "zigzagged"):
        for i in range(6):
            jpg(base / "images" / cls / f"{cls}_{i:04d}.jpg", i)
            lines[["train", "val", "test"][i % 3]].append(f"{cls}/{cls}_{i:04d}.jpg")
    (base / "labels").mkdir()
    for split, rows in lines.items():
        (base / "labels" / f"{split}1.txt").write_text("\n".join(rows) + "\n")
    train, classes = load_dataset("dtd", "train", root=tmp_path)
    test, _ = load_dataset("dtd", "test", root=tmp_path)
    assert classes == ["banded", "zigzagged"] and len(train) == 8 and len(test) == 4
    assert np.bincount(train.targets).tolist() == [4, 4]


def test_pets_paper_and_official(tmp_path):
    base = tmp_path / "oxford-iiit-pet"
    rows = []
    for breed, n, label in (("Abyssinian", 5, 1), ("american_bulldog", 4, 2)):
        for i in range(1, n + 1):
            jpg(base / "images" / f"{breed}_{i}.jpg", i)
            rows.append(f"{breed}_{i} {label} {1 if breed[0].isupper() else 2} 1")
    (base / "annotations").mkdir()
    (base / "annotations" / "trainval.txt").write_text("\n".join(rows[::2]) + "\n")
    (base / "annotations" / "test.txt").write_text("\n".join(rows[1::2]) + "\n")
    train, classes = load_dataset("pets", "train", root=tmp_path)
    test, _ = load_dataset("pets", "test", root=tmp_path)
    assert classes == ["Abyssinian", "american bulldog"]
    assert np.bincount(train.targets).tolist() == [2, 2] and len(test) == 5  # int(5*.52)=2, int(4*.52)=2
    assert [p.rsplit("/", 1)[1] for p, _ in train.samples[:2]] == ["Abyssinian_1.jpg", "Abyssinian_2.jpg"]
    official, oc = load_dataset("pets-official", "trainval", root=tmp_path)
    assert len(official) == 5 and oc == ["Abyssinian", "American Bulldog"]


# ----------------------------------------------------------------------------- MedMNIST, manifest, folders


def write_medmnist(root, flag, channels, n=(5, 3, 4), n_classes=2):
    arrays = {}
    for split, k in zip(("train", "val", "test"), n):
        shape = (k, 28, 28, 3) if channels == 3 else (k, 28, 28)
        arrays[f"{split}_images"] = np.full(shape, 7, np.uint8)
        arrays[f"{split}_labels"] = (np.arange(k) % n_classes).reshape(k, 1)
    np.savez(root / f"{flag}.npz", **arrays)


def test_medmnist_splits(tmp_path):
    write_medmnist(tmp_path, "pathmnist", 3, n_classes=9)
    write_medmnist(tmp_path, "breastmnist", 1)
    write_medmnist(tmp_path, "organsmnist", 1, n_classes=11)
    path, classes = load_dataset("pathmnist", "train", root=tmp_path)
    assert len(path) == 3 and len(classes) == 9 and classes[0] == "adipose"  # the paper's set = medmnist val
    image, label = path[1]
    assert image.size == (28, 28) and image.mode == "RGB" and label == 1
    breast, bc = load_dataset("breastmnist", "train", root=tmp_path)
    assert len(breast) == 3 and bc == ["malignant", "normal, benign"] and breast[0][0].mode == "RGB"
    assert len(load_dataset("organsmnist", "train", root=tmp_path)[0]) == 5
    assert len(load_dataset("organsmnist", "test", root=tmp_path)[0]) == 4
    assert len(load_dataset("pathmnist", "medmnist-train", root=tmp_path)[0]) == 5
    with pytest.raises(DatasetMissing, match=r"pathmnist_64.npz.*zenodo"):
        load_dataset("pathmnist", "train", root=tmp_path, size=64)


def test_manifest(tmp_path):
    for i in range(4):
        jpg(tmp_path / "imgs" / f"{i}.png", i)
    csv = tmp_path / "list.csv"
    csv.write_text("path,label,split\nimgs/0.png,cat,train\nimgs/1.png,dog,train\n"
                   f"{tmp_path / 'imgs' / '2.png'},cat,test\nimgs/3.png,dog,test\n")
    train, classes = load_dataset("manifest", "train", root=csv)
    assert classes == ["cat", "dog"] and train.targets == [0, 1] and train[1][0].mode == "RGB"
    assert len(load_dataset("manifest", "test", root=csv)[0]) == 2
    ints = tmp_path / "ints.csv"
    ints.write_text("path,label\nimgs/0.png,2\nimgs/1.png,0\n")
    ds, names = load_dataset("manifest", "train", root=ints)
    assert names == ["0", "1", "2"] and ds.targets == [2, 0]
    bad = tmp_path / "bad.csv"
    bad.write_text("file,label\nimgs/0.png,1\n")
    with pytest.raises(ValueError, match="missing column"):
        load_dataset("manifest", root=bad)
    folder, fc = load_dataset("imagefolder", "train", root=tmp_path)
    assert fc == ["imgs"] and len(folder) == 4


# ----------------------------------------------------------------------------- missing data


@pytest.mark.parametrize("name, expect", [
    ("caltech101", r"caltech101.*101_ObjectCategories.*Caltech101\(root, download=True\)"),
    ("cars", r"stanford_cars.*cannot be downloaded automatically"),
    ("flowers102", r"flower_data.*download=True.*flower_data.zip"),
    ("flowers102-official", r"imagelabels.mat.*Flowers102\(root, download=True\)"),
    ("dtd", r"labels.*1.txt.*DTD\(root, download=True\)"),
    ("pets", r"oxford-iiit-pet.*OxfordIIITPet\(root, download=True\)"),
    ("pets-official", r"oxford-iiit-pet.*download=True"),
    ("cifar100s", r"'cifar100s'.*cifar-100-python.*CIFAR100\(root, download=True\)"),
    ("cifar100lt", r"'cifar100lt'.*cifar-100-python"),
    ("cifar100c", r"CIFAR-100-C.*zenodo"),
    ("pathmnist", r"pathmnist.npz.*medmnist.PathMNIST\(split='val'.*download=True"),
    ("breastmnist", r"breastmnist.npz.*zenodo"),
    ("organsmnist", r"organsmnist.npz.*MD5"),
])
def test_missing_data_errors_are_clear_and_fast(tmp_path, name, expect):
    t = time.perf_counter()
    with pytest.raises(DatasetMissing, match=expect) as err:
        load_dataset(name, "train" if name != "cifar100c" else "fog-3", root=tmp_path / "empty")
    assert time.perf_counter() - t < 5
    assert name.split("-")[0] in str(err.value)
    assert isinstance(err.value, FileNotFoundError)  # the CLI reports it as an error, no traceback
