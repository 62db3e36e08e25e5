"""Behaviour of the on-disk expansion store (gifkit.io.store)."""
import json
import os

import pytest
import torch
import torchvision
from PIL import Image
from torch.utils.data import Dataset

from gifkit.io import files
from gifkit.io import store as st
from gifkit.io.datasets import ExpandedDataset
from gifkit.io.store import ExpansionStore, safe_dirname

CLASSES = ["cat", "dog/wolf", "1"]
pytestmark = pytest.mark.filterwarnings("error::UserWarning")


def img(value: int) -> Image.Image:
    return Image.new("RGB", (8, 8), (value, 255 - value, (7 * value) % 256))


def files_under(root) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def fill_batch(s: ExpansionStore, batch_id: str, seeds: list[int], extra=None) -> list[str]:
    """Write images + part for seeds (label = seed % 3, 2 variants each)."""
    rows, rels = [], []
    for seed in seeds:
        for v in range(2):
            rel = s.relpath(seed % 3, seed, v)
            s.save_image(rel, img(seed * 10 + v))
            row = {"file_name": rel, "label": seed % 3, "seed_index": seed, "variant": v,
                   "seed_path": f"orig/{seed}.png", "method": "gif", "p_seed": 1 / (seed + 3),
                   "seed": 2**62 + seed}
            row.update(extra or {})
            rows.append(row)
            rels.append(rel)
    s.write_part(batch_id, rows)
    return rels


def test_safe_dirname():
    assert safe_dirname("a/b") == "a_b"
    assert safe_dirname("a\\b:c*?") == "a_b_c__"
    assert safe_dirname("..") == "_"
    assert safe_dirname("") == "_"
    assert safe_dirname(" x ") == "x"
    assert safe_dirname(".hidden.") == "hidden"
    assert safe_dirname("nul\x00byte") == "nul_byte"
    assert safe_dirname("CON") == "CON_"
    assert safe_dirname("golden retriever") == "golden retriever"
    assert len(safe_dirname("x" * 400).encode()) <= 200
    assert safe_dirname("x" * 400) != safe_dirname("x" * 399 + "y")


def test_colliding_folder_names_rejected(tmp_out):
    with pytest.raises(ValueError, match="same folder"):
        ExpansionStore(tmp_out, ["a/b", "a_b"])
    with pytest.raises(ValueError, match="same folder"):
        ExpansionStore(tmp_out, ["Cat", "cat"])


def test_atomic_write_leaves_no_temp_files(tmp_path):
    target = tmp_path / "f.bin"
    files.atomic_write_bytes(target, b"one")
    files.atomic_write_bytes(target, b"two", fsync=True)
    assert target.read_bytes() == b"two"
    with pytest.raises(TypeError):
        files.atomic_write_bytes(target, "not bytes")  # fails mid-write
    assert target.read_bytes() == b"two"
    assert files_under(tmp_path) == ["f.bin"]


def test_png_bytes_deterministic(tmp_path):
    files.atomic_save_image(tmp_path / "a.png", img(5))
    files.atomic_save_image(tmp_path / "b.png", img(5))
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert (tmp_path / "a.png").read_bytes() != files.png_bytes(img(6))
    assert Image.open(tmp_path / "a.png").tobytes() == img(5).tobytes()


def test_save_image_skips_existing(tmp_out):
    s = ExpansionStore(tmp_out, CLASSES)
    rel = s.relpath(1, 12, 3)
    assert rel == "dog_wolf/000012_003.png"
    assert not s.exists(rel)
    assert s.save_image(rel, img(1)) is True
    before = (tmp_out / rel).read_bytes()
    assert s.save_image(rel, img(200)) is False
    assert (tmp_out / rel).read_bytes() == before
    assert s.exists(rel)
    (tmp_out / rel).write_bytes(b"")  # an empty file does not count
    assert not s.exists(rel)
    with pytest.raises(ValueError):
        s.save_image("../escape.png", img(1))


def test_classes_json_mismatch(tmp_out):
    ExpansionStore(tmp_out, CLASSES)
    assert json.loads((tmp_out / "classes.json").read_text()) == CLASSES
    ExpansionStore(tmp_out, list(CLASSES))  # resuming with the same classes is fine
    with pytest.raises(ValueError, match="another dataset"):
        ExpansionStore(tmp_out, ["cat", "dog"])
    with pytest.raises(ValueError, match="label 0"):
        ExpansionStore(tmp_out, ["dog/wolf", "cat", "1"])


def test_batch_done(tmp_out):
    s = ExpansionStore(tmp_out, CLASSES)
    rels = [s.relpath(0, 0, v) for v in range(2)]
    assert not s.batch_done("b0", rels)
    s.save_image(rels[0], img(0))
    s.save_image(rels[1], img(1))
    assert not s.batch_done("b0", rels)  # part missing
    s.write_part("b0", [{"file_name": r, "label": 0, "seed_index": 0, "variant": v} for v, r in enumerate(rels)])
    assert s.batch_done("b0", rels)
    os.remove(tmp_out / rels[1])
    assert not s.batch_done("b0", rels)  # image missing
    s.save_image(rels[1], img(1))
    s.finalize()
    assert not (tmp_out / ".parts").exists()
    assert s.batch_done("b0", rels)  # recorded in metadata.csv now
    assert ExpansionStore(tmp_out, CLASSES).batch_done("b0", rels)
    os.remove(tmp_out / rels[0])
    assert not s.batch_done("b0", rels)
    with pytest.raises(ValueError):
        s.write_part("../x", [])
    with pytest.raises(ValueError, match="lacks"):
        s.write_part("b1", [{"file_name": rels[0], "label": 0}])


def test_finalize_independent_of_order_and_sharding(tmp_path):
    # batch ids sort differently from seeds: the output order must come from the rows
    batches = [("a", [4, 5], {"prompt": "a sketch of a cat, 2"}), ("z0", [0, 1], None),
               ("m", [2, 3], {"label_b": 1, "lam": 0.3})]
    roots = [tmp_path / n for n in ("forward", "reverse", "sharded")]
    for root, order in zip(roots[:2], (batches, batches[::-1])):
        s = ExpansionStore(root, CLASSES)
        for bid, seeds, extra in order:
            fill_batch(s, bid, seeds, extra)
        s.finalize()
    sharded = [ExpansionStore(roots[2], CLASSES) for _ in range(2)]
    fill_batch(sharded[0], *batches[1])
    sharded[0].finalize()  # an early shard finalizes before the others finish
    fill_batch(sharded[1], *batches[0])
    fill_batch(sharded[0], *batches[2])
    with pytest.warns(UserWarning, match="images without a row"):
        fill_batch(sharded[1], "b3", [6])
        os.remove(roots[2] / ".parts" / "b3.csv")  # crash after images, before the part
        frame = sharded[1].finalize()
    data = (roots[0] / "metadata.csv").read_bytes()
    assert (roots[1] / "metadata.csv").read_bytes() == data
    assert (roots[2] / "metadata.csv").read_bytes() == data
    text = data.decode()
    assert "\r" not in text
    header = text.splitlines()[0].split(",")
    assert header == list(st.FIXED_COLUMNS) + ["label_b", "lam", "p_seed", "prompt", "seed"]
    assert list(frame.columns) == header
    assert list(zip(frame.seed_index, frame.variant)) == [(i, v) for i in range(6) for v in range(2)]
    assert frame.file_name[2] == "dog_wolf/000001_000.png"
    assert frame.class_name.tolist()[:3] == ["cat", "cat", "dog/wolf"]
    assert frame.class_name[4] == "1"  # kept as text
    assert frame.seed.tolist()[0] == 2**62  # big ints survive
    assert "0.333333" in text and "0.3," in text
    assert frame.prompt[9] == "a sketch of a cat, 2" and frame.prompt.isna().sum() == 8
    assert frame.lam.notna().sum() == 4
    assert st.read_metadata(roots[0]).equals(frame)


def test_finalize_empty_and_duplicates(tmp_out):
    s = ExpansionStore(tmp_out, CLASSES)
    assert len(s.finalize()) == 0
    assert (tmp_out / "metadata.csv").read_text() == ",".join(st.FIXED_COLUMNS) + "\n"
    fill_batch(s, "b0", [0])
    s.finalize()
    fill_batch(s, "b0", [0], {"method": "gif2"})  # a re-run replaces its rows
    frame = s.finalize()
    assert len(frame) == 2 and set(frame.method) == {"gif2"}


def test_imagefolder_loadable(tmp_out):
    s = ExpansionStore(tmp_out, CLASSES)
    fill_batch(s, "b0", [0, 1, 2])
    s.finalize()
    folder = torchvision.datasets.ImageFolder(str(tmp_out))
    assert folder.classes == sorted(["cat", "dog_wolf", "1"])
    assert len(folder) == 6
    image, label = folder[0]
    assert image.size == (8, 8) and folder.classes[label] == "1"


class Original(Dataset):
    def __init__(self, n: int):
        self.targets = [i % 3 for i in range(n)]
        self.classes = CLASSES

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        return img(i), self.targets[i]


def make_expansion(root, extra_rows=True) -> None:
    s = ExpansionStore(root, CLASSES)
    fill_batch(s, "b0", [0, 1])
    if extra_rows:
        rel = s.relpath(2, 9, 0)
        s.save_image(rel, img(9))
        s.write_part("mix", [{"file_name": rel, "label": 2, "label_b": 0, "lam": 0.25, "seed_index": 9,
                              "variant": 0, "method": "mixup"}])
    s.finalize()


def test_expanded_dataset_soft_labels(tmp_path):
    make_expansion(tmp_path / "a")
    make_expansion(tmp_path / "b", extra_rows=False)
    ds = ExpandedDataset(Original(3), [tmp_path / "a", tmp_path / "b"], transform=lambda im: im.size)
    assert len(ds) == 3 + 5 + 4
    assert ds.num_classes == 3 and ds.class_names == CLASSES and ds.soft
    assert ds.targets == [0, 1, 2] + [0, 0, 1, 1, 2] + [0, 0, 1, 1]
    x, t = ds[1]
    assert x == (8, 8) and torch.equal(t, torch.tensor([0.0, 1.0, 0.0]))
    x, t = ds[7]  # the mixup row
    assert t.dtype == torch.float32 and t.sum().item() == pytest.approx(1.0)
    assert t.tolist() == pytest.approx([0.75, 0.0, 0.25])
    assert ds[-1][1].tolist() == [0.0, 1.0, 0.0]
    with pytest.raises(IndexError):
        ds[len(ds)]
    hard = ExpandedDataset(Original(3), tmp_path / "a", soft_labels=False)
    image, label = hard[7]
    assert isinstance(image, Image.Image) and image.mode == "RGB" and label == 2
    plain = ExpandedDataset(Original(3), [tmp_path / "b"])
    assert not plain.soft and plain[5][1] == 1


def test_expanded_dataset_errors(tmp_path):
    ExpansionStore(tmp_path / "unfinished", CLASSES)
    with pytest.raises(FileNotFoundError, match="finalize"):
        ExpandedDataset(Original(1), [tmp_path / "unfinished"])
    make_expansion(tmp_path / "a", extra_rows=False)
    other = ExpansionStore(tmp_path / "other", ["x", "y", "z"])
    other.finalize()
    with pytest.raises(ValueError, match="different datasets"):
        ExpandedDataset(Original(1), [tmp_path / "a", tmp_path / "other"])
