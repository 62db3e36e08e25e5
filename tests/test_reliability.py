"""Nothing lost, nothing mixed, round three (issue 24): concurrent runs, records that are damaged or missing, files
gifkit did not make, and inputs of the wrong kind.

One test (or a few) per case of the issue, on the smoke profile: 1 one process owns an output folder (two real
processes), 2 ``--force-new`` deletes only what gifkit proves it made, 3 images without a trustworthy record are
refused, 4 ``state.json`` has a digest, 5 a symlink or FIFO among the part files is refused, 6 a FIFO in the
dataset is skipped unopened, 7 ``label_b`` is checked, 8 evaluate compares class names, 9 a class named
``train``, 10 notebook parameters of the wrong type, 11 ALIA on a folder without a test split, 12 a failed
download, 13 a missing CLIP before any model is built, 14 EXIF orientation. The earlier rounds are
tests/test_reliability_expand.py and tests/test_reliability_train.py.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import gifkit.io.files as gfiles
from gifkit.data import ImageFolderDataset, load_dataset
from gifkit.data.base import DatasetMissing, FileListDataset
from gifkit.errors import Damaged, Refused
from gifkit.experiments import notebooks as nb_runner
from gifkit.experiments.nbkit import check_parameters, parameter_types
from gifkit.io.datasets import ExpandedDataset, seed_fingerprint
from gifkit.io.files import pid_alive
from gifkit.io.images import BadImage, open_rgb
from gifkit.io.store import clear_store, read_metadata
from gifkit.methods import create_method, expand
from gifkit.train import loop as tr_loop
from gifkit.train.loop import train

from reliability_kit import CUTOUT, FaultyOpen, Kill, cli, error_line, files, make_folder, smoke_train, snapshot

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
       "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}


def cutout(data: Path, out: Path, **kw):
    """The expansion of ``CUTOUT`` through the Python API (``shard`` etc. in ``kw``)."""
    ds, classes = load_dataset(str(data))
    return expand(create_method("cutout", classes), ds, out, ratio=2, batch_size=2, progress=False, **kw)


# ----------------------------------------------------------------------------- 1. one process owns a folder

WAITING_RUN = """
import os, sys, time
import gifkit.methods.augment as augment
from gifkit.data import load_dataset
data, out, index, count, go, started = sys.argv[1:7]
real, calls = augment.augment_one, []
def waiting(*a, **k):
    calls.append(1)
    if len(calls) == 5:  # batch 0 (seeds 0 and 1, four images) is written and committed, batch 1 is on its way
        open(started, "w").close()
        while not os.path.exists(go):
            time.sleep(0.05)
    return real(*a, **k)
augment.augment_one = waiting
ds, classes = load_dataset(data)
from gifkit.methods import create_method, expand
r = expand(create_method("cutout", classes), ds, out, ratio=2, batch_size=2, shard=(int(index), int(count)),
           progress=False)
print(f"{r.written} written, {r.existing} already there")
"""


class WaitingRun:
    """A real second process expanding ``data`` into ``out`` (cutout, K=2, batches of 2) that stops in its first
    batch until :meth:`go`; ``shard=(i, n)``."""

    def __init__(self, tmp_path: Path, data: Path, out: Path, shard=(0, 1)):
        self.go_file, started = tmp_path / f"go{shard[0]}", tmp_path / f"started{shard[0]}"
        self.proc = subprocess.Popen([sys.executable, "-c", WAITING_RUN, str(data), str(out), *map(str, shard),
                                      str(self.go_file), str(started)], env=ENV, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 300
        while not started.exists():
            assert self.proc.poll() is None, self.proc.communicate()[1][-2000:]
            assert time.monotonic() < deadline, "the first run never started"
            time.sleep(0.1)

    def go(self) -> str:
        self.go_file.touch()
        out, err = self.proc.communicate(timeout=300)
        assert self.proc.returncode == 0, err[-2000:]
        return out

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.communicate(timeout=60)


def test_a_second_run_into_a_folder_in_use_is_refused_and_nothing_mixes(tmp_path, capsys):
    data = make_folder(tmp_path / "data")
    cutout(data, tmp_path / "reference")
    out = tmp_path / "out"
    first = WaitingRun(tmp_path, data, out)
    try:
        claim = json.loads((out / ".gifkit-shard-0.json").read_text())
        assert claim["pid"] == first.proc.pid and claim["shard"] == [0, 1]  # "started and running"
        code, _, err = cli(capsys, "expand", "--data", data, "--out", out, "--method", "gridmask", "--ratio", "2",
                           "--batch-size", "8", "--no-progress")  # other settings: would mix
        line = error_line(err)
        assert code == 2 and "is being written by another gifkit run" in line and f"process {first.proc.pid}" in line
        with pytest.raises(Refused, match=f"shard 0 of this run is already being written .*process {first.proc.pid}"):
            cutout(data, out)  # the same settings: duplicate work, refused as well
        assert not (out / "gridmask").exists() and not (out / "metadata.csv").exists()
    finally:
        printed = first.go()
    assert printed.strip() == "12 written, 0 already there"
    assert files(out) == files(tmp_path / "reference")  # the first run's images only, recorded as its own
    assert not (out / ".gifkit-shard-0.json").exists() and not (out / ".gifkit-shard-0.lock").exists()
    code, _, err = cli(capsys, "expand", "--data", data, "--out", out, "--method", "gridmask", "--ratio", "2",
                       "--no-progress")  # now the folder is free: its record decides
    assert code == 2 and "holds an expansion made with other settings" in error_line(err)


def test_a_run_that_died_is_recognised_and_resumed(tmp_path):
    data = make_folder(tmp_path / "data")
    cutout(data, tmp_path / "reference")
    out = tmp_path / "out"
    dead = WaitingRun(tmp_path, data, out)
    dead.kill()  # SIGKILL: no clean-up ran; the operating system freed its lock
    claim = json.loads((out / ".gifkit-shard-0.json").read_text())
    assert claim["pid"] == dead.proc.pid and not pid_alive(claim["pid"])  # "started and died"
    r = cutout(data, out)
    assert (r.written, r.existing) == (8, 4)  # batch 0's images were written and committed before the kill
    assert files(out) == files(tmp_path / "reference") and not (out / ".gifkit-shard-0.json").exists()


def test_the_shards_of_one_run_share_the_folder(tmp_path):
    data = make_folder(tmp_path / "data")
    cutout(data, tmp_path / "reference")
    out = tmp_path / "out"
    shard0 = WaitingRun(tmp_path, data, out, shard=(0, 2))  # holds shard 0 while shard 1 runs beside it
    try:
        with pytest.raises(Refused, match="is being written by another gifkit run"):
            cutout(data, out)  # one process for the whole folder is another run (other shard count)
        r = cutout(data, out, shard=(1, 2))
        assert (r.written, r.existing) == (4, 0)  # batch 1 of 3
    finally:
        printed = shard0.go()
    assert printed.strip() == "8 written, 0 already there"  # batches 0 and 2; shard 0 merged every part
    assert files(out) == files(tmp_path / "reference")


def test_an_exception_in_the_driver_frees_the_folder_for_the_next_run(tmp_path, monkeypatch):
    import gifkit.methods.augment as augment

    data = make_folder(tmp_path / "data")
    out = tmp_path / "out"

    def boom(*a, **k):
        raise RuntimeError("a bug")

    monkeypatch.setattr(augment, "augment_one", boom)
    with pytest.raises(RuntimeError):
        cutout(data, out)  # the traceback keeps the run object alive: its claim is still held here
    monkeypatch.undo()
    assert cutout(data, out).written == 12  # a later run of the same process takes the claim over
    child = subprocess.run([sys.executable, "-c", "import sys; from gifkit.cli import main; sys.exit(main(sys.argv[1:]))",
                            "expand", "--data", str(data), "--out", str(out), *CUTOUT], env=ENV, capture_output=True,
                           text=True, timeout=300)
    assert child.returncode == 0 and "0 written, 12 already there" in child.stdout  # and another process may resume


# ----------------------------------------------------------------------------- 2. --force-new deletes only gifkit's


def test_force_new_keeps_every_file_gifkit_cannot_prove_it_made(tmp_path, capsys):
    data = make_folder(tmp_path / "data")
    out = tmp_path / "out"
    (out / "mydocs").mkdir(parents=True)
    (out / "metadata.csv").write_text("file_name,label\nmydocs/000000_000.png,0\n")
    (out / "classes.json").write_text('["cat", "dog"]\n')
    (out / "mydocs" / "000000_000.png").write_bytes(b"my scan")
    before = snapshot(out)
    code, text, err = cli(capsys, "expand", "--data", data, "--out", out, *CUTOUT, "--force-new")
    line = next(ln for ln in text.splitlines() if ln.startswith("--force-new:"))  # one line says what stays
    assert "removed 0 files" in line and "kept 3 file(s) gifkit cannot prove it made: classes.json, metadata" in line
    assert code == 2 and "gifkit expand: error: " in err.strip().splitlines()[-1]
    assert "holds an expansion's images or metadata, but it has no run.json" in err  # never adopted either
    assert snapshot(out) == {**before, ".gifkit.lock": snapshot(out)[".gifkit.lock"]}  # the gate is all it adds


def test_clear_store_removes_the_folders_it_made_and_keeps_the_users(tmp_path):
    data = make_folder(tmp_path / "data")
    out = tmp_path / "out"
    (out / "dog").mkdir(parents=True)  # the user's folder, empty: gifkit writes into it, never removes it
    cutout(data, out)
    (out / "cat" / "notes.txt").write_text("mine")
    meta = (out / "metadata.csv").read_bytes()
    (out / "metadata.csv").write_bytes(meta + b"\n")  # changed since gifkit wrote it: no longer provably gifkit's
    with pytest.warns(UserWarning, match=r"kept 14 file\(s\)"):  # it, the 12 images only it lists, the notes
        assert clear_store(out) == 2  # run.json and classes.json
    assert (out / "metadata.csv").read_bytes() == meta + b"\n" and len(list(out.glob("*/*.png"))) == 12
    (out / "metadata.csv").write_bytes(meta)  # put back as gifkit wrote it: its images are proven again
    with pytest.warns(UserWarning, match=r"kept 1 file\(s\) gifkit cannot prove it made: cat/notes.txt"):
        assert clear_store(out) == 1 + 12
    assert sorted(p.name for p in out.iterdir()) == [".gifkit-made.json", ".gifkit.lock", "cat", "dog"]
    assert [p.name for p in (out / "cat").iterdir()] == ["notes.txt"] and list((out / "dog").iterdir()) == []
    assert json.loads((out / ".gifkit-made.json").read_text()) == {"files": {}, "folders": ["cat"]}


# ----------------------------------------------------------------------------- 3. no adoption without a record


@pytest.mark.parametrize("damage, why", [("deleted", "it has no run.json"), ("no seeds", "lacks seeds"),
                                         ("null", "holds null instead of a record"),
                                         ("forged", "was changed after gifkit wrote it")])
def test_images_without_a_trustworthy_record_are_refused_not_adopted(tmp_path, capsys, damage, why):
    one, other = make_folder(tmp_path / "one", seed=1), make_folder(tmp_path / "other", seed=2)
    out = tmp_path / "out"
    assert cli(capsys, "expand", "--data", one, "--out", out, *CUTOUT)[0] == 0
    record = json.loads((out / "run.json").read_text())
    if damage == "deleted":
        (out / "run.json").unlink()
    elif damage == "no seeds":
        (out / "run.json").write_text(json.dumps({k: v for k, v in record.items() if k != "seeds"}))
    elif damage == "null":
        (out / "run.json").write_text("null")
    else:  # the other dataset's fingerprint written in: a complete record, but not the one gifkit wrote
        record["seeds"] = {**seed_fingerprint(load_dataset(str(other))[0]), "skipped": []}
        (out / "run.json").write_text(json.dumps(record))
    kept = snapshot(out)
    for data in (other, one):
        code, _, err = cli(capsys, "expand", "--data", data, "--out", out, *CUTOUT)
        line = error_line(err)
        assert code == 2 and why in line and "neither adds to them nor deletes them" in line
        assert "delete it" not in line and "--force-new" not in line  # no advice that would lead to adoption
        assert snapshot(out) == kept


def test_a_start_killed_before_its_record_binds_no_one(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    monkeypatch.setattr(gfiles, "open", FaultyOpen(r"run\.json", KeyboardInterrupt()), raising=False)
    assert cli(capsys, "expand", "--data", make_folder(tmp_path / "one"), "--out", out, *CUTOUT)[0] == 130
    monkeypatch.undo()
    assert json.loads((out / "classes.json").read_text()) == ["cat", "dog"] and not (out / "run.json").exists()
    other = make_folder(tmp_path / "other", classes=("car", "plane"))  # gifkit's own classes.json, no image yet
    assert cli(capsys, "expand", "--data", other, "--out", out, *CUTOUT)[0] == 0
    assert json.loads((out / "classes.json").read_text()) == ["car", "plane"]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "classes.json").write_text('["a", "b"]')  # a user's file of the same name: neither replaced nor used
    code, _, err = cli(capsys, "expand", "--data", other, "--out", mine, *CUTOUT)
    assert code == 2 and "lists other classes" in error_line(err) and (mine / "classes.json").read_text() == '["a", "b"]'


def test_a_folder_of_an_older_gifkit_resumes_and_gets_a_manifest(tmp_path):
    data = make_folder(tmp_path / "data")
    out = tmp_path / "out"
    cutout(data, out)
    (out / ".gifkit-made.json").unlink()  # as an expansion made before the manifest
    (out / "dog" / "000005_001.png").unlink()
    assert cutout(data, out).written == 1
    made = json.loads((out / ".gifkit-made.json").read_text())
    assert set(made["files"]) == {"run.json", "classes.json", "metadata.csv"}


# ----------------------------------------------------------------------------- 4. state.json has a digest


def test_a_changed_digit_in_state_json_is_caught(tmp_path, capsys, monkeypatch):
    cfg = smoke_train(tmp_path, "cli/seed_0", epochs=2)
    monkeypatch.setattr(tr_loop, "_evaluate", Kill(tr_loop._evaluate, 2))  # killed in epoch 2
    with pytest.raises(KeyboardInterrupt):
        train(cfg)
    monkeypatch.undo()
    path = tmp_path / "cli" / "seed_0" / "checkpoint" / "state.json"
    state = json.loads(path.read_text())
    assert state["epoch"] == 1 and len(state["state_digest"]) == 32
    path.write_text(path.read_text().replace('"epoch": 1,', '"epoch": 0,', 1))  # one flipped digit
    with pytest.raises(Damaged, match="state.json differs from what was written .*--no-resume"):
        train(cfg)
    code, _, err = cli(capsys, "train", "--data", "smoke", "--profile", "smoke", "--data-arg", "n_per_class=4",
                       "--epochs", "2", "--batch-size", "8", "--out", tmp_path / "cli", "--no-progress")
    assert code == 2 and "state.json differs from what was written" in error_line(err, "train")


# ----------------------------------------------------------------------------- 5. files read back are regular


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_a_part_file_that_is_not_a_regular_file_is_refused(tmp_path, capsys, monkeypatch, kind):
    data = make_folder(tmp_path / "data")
    out = tmp_path / "out"
    monkeypatch.setattr(gfiles, "open", FaultyOpen(r"metadata\.csv", KeyboardInterrupt()), raising=False)
    assert cli(capsys, "expand", "--data", data, "--out", out, *CUTOUT)[0] == 130  # killed before the merge
    monkeypatch.undo()
    outside = tmp_path / "elsewhere.csv"
    outside.write_text("file_name,label,seed_index,variant\n../../elsewhere.png,0,0,0\n")
    if kind == "symlink":  # a batch's part, its rows now elsewhere
        part = sorted((out / ".parts").glob("*.csv"))[0]
        part.unlink()
        part.symlink_to(outside)
    else:  # a part no batch rewrites: reading it would block forever
        part = out / ".parts" / "999999.csv"
        os.mkfifo(part)
    code, _, err = cli(capsys, "expand", "--data", data, "--out", out, *CUTOUT)
    line = error_line(err)
    assert code == 2 and str(part) in line and ("is a symlink" if kind == "symlink" else "is a FIFO") in line
    assert not (out / "metadata.csv").exists() and outside.read_text().startswith("file_name")


# ----------------------------------------------------------------------------- 6. FIFOs in the dataset


def test_a_fifo_in_the_dataset_is_skipped_without_being_opened(tmp_path):
    data = make_folder(tmp_path / "data")
    os.mkfifo(data / "dog" / "zz.png")
    run = subprocess.run([sys.executable, "-m", "gifkit", "expand", "--data", str(data), "--out", str(tmp_path / "out"),
                          *CUTOUT], env=ENV, capture_output=True, text=True, timeout=300)  # hung forever before
    assert run.returncode == 0 and "12 written" in run.stdout
    assert "zz.png (a FIFO, not a regular file)" in run.stderr
    signal.alarm(60)  # the Python API on the same FIFO: a hang would end the test instead of the suite
    try:
        with pytest.raises(BadImage, match="it is a FIFO, not a regular file"):
            open_rgb(data / "dog" / "zz.png")
        listed = FileListDataset([(data / "cat" / "0.png", 0), (data / "dog" / "zz.png", 1)], ["cat", "dog"])
        assert seed_fingerprint(listed)["n"] == 2  # the fingerprint does not open it either
    finally:
        signal.alarm(0)


# ----------------------------------------------------------------------------- 7. label_b out of range


def test_label_b_out_of_range_is_one_line(tmp_path, capsys, smoke):
    ds, classes = smoke
    exp = tmp_path / "exp"
    expand(create_method("cutmix", classes), ds, exp, ratio=1, progress=False)
    meta = read_metadata(exp)
    meta.loc[3, "label_b"] = 99
    meta.to_csv(exp / "metadata.csv", index=False)
    with pytest.raises(ValueError, match=r"label_b an integer in \[0, 4\).*label_b 99"):
        ExpandedDataset(ds, exp)
    code, _, err = cli(capsys, "train", "--data", "smoke", "--profile", "smoke", "--out", tmp_path / "run",
                       "--expanded", exp, "--epochs", "1", "--no-progress")
    assert code == 2 and meta.loc[3, "file_name"] in error_line(err, "train")
    meta.loc[3, "label_b"], meta.loc[5, "lam"] = 1, 1.5
    meta.to_csv(exp / "metadata.csv", index=False)
    with pytest.raises(ValueError, match=f"{meta.loc[5, 'file_name']} has label_b .*, lam 1.5"):
        ExpandedDataset(ds, exp)


# ----------------------------------------------------------------------------- 8. evaluate compares class names


def test_evaluate_refuses_data_of_other_classes_by_name(tmp_path, capsys, smoke):
    train(smoke_train(tmp_path, epochs=1))
    run = tmp_path / "run"
    _, classes = smoke
    other = make_folder(tmp_path / "other", n=1, classes=("cat", "dog", "car", "plane"))
    code, _, err = cli(capsys, "evaluate", "--run", run, "--data", other, "--device", "cpu", "--no-progress")
    line = error_line(err, "evaluate")
    assert code == 2 and "other classes than the model" in line and "'cat'" in line and repr(classes[0]) in line
    shuffled = make_folder(tmp_path / "shuffled", n=1, classes=tuple(classes))  # sorted folder names: other labels
    code, _, err = cli(capsys, "evaluate", "--run", run, "--data", shuffled, "--device", "cpu", "--no-progress")
    line = error_line(err, "evaluate")
    assert code == 2 and "in another order (label 0 is 'blue triangle' there, 'red circle' in the model)" in line


# ----------------------------------------------------------------------------- 9. a class folder named train


def test_a_class_folder_named_train_is_a_class(tmp_path, capsys):
    data = make_folder(tmp_path / "data", classes=("cat", "train"))
    ds, classes = load_dataset(str(data))
    assert classes == ["cat", "train"] and len(ds) == 6
    assert cli(capsys, "expand", "--data", data, "--out", tmp_path / "out", *CUTOUT)[0] == 0
    split = make_folder(tmp_path / "split" / "train", classes=("cat", "dog"))  # the split layout still reads as one
    assert load_dataset(str(split.parent))[1] == ["cat", "dog"]


# ----------------------------------------------------------------------------- 10. notebook parameters


def test_notebook_parameters_of_the_wrong_type_are_named_before_any_cell_runs(tmp_path, monkeypatch):
    import papermill

    def never(*a, **k):
        raise AssertionError("the notebook was executed")

    monkeypatch.setattr(papermill, "execute_notebook", never)
    failed = nb_runner.run("smoke", out=tmp_path / "nb", only=["01"], params={"criteria": 3}, results=tmp_path)
    assert failed == [("01_preliminary_studies.ipynb", "ValueError: 01_preliminary_studies.ipynb: parameter "
                                                       "criteria must be a list of str or None (its default is "
                                                       "['random', 'class-maintained', 'informativeness', 'entropy', "
                                                       "'diversity']), got 3 (int)")]
    source = "n_seeds = 8     # seeds expanded\nseeds: list[int] | None = None\nout_dir = 'results/{profile}'\n"
    assert parameter_types(source)["seeds"] == (list[int] | None, None)
    for values, message in [({"n_seeds": "abc"}, "n_seeds must be an int or None (its default is 8), got 'abc'"),
                            ({"seeds": 0}, "seeds must be a list of int or None (its default is None), got 0 (int)"),
                            ({"sedes": [0]}, "has no parameter 'sedes'")]:
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
            check_parameters(values, source, "x.ipynb")
    check_parameters({"n_seeds": None, "seeds": [0, 1], "out_dir": "o"}, source)


# ----------------------------------------------------------------------------- 11. ALIA without a test split


def test_alia_works_on_a_plain_folder_without_a_test_split(tmp_path, capsys):
    data = make_folder(tmp_path / "data", n=3)
    code, text, _ = cli(capsys, "expand", "--data", data, "--out", tmp_path / "out", "--method", "alia", "--ratio",
                        "2", "--steps", "2", "--descriptions", "in the snow", "--device", "cpu", "--no-progress")
    assert code == 0 and "12 written" in text and (tmp_path / "out" / "metadata.csv").is_file()
    result = json.loads(next((tmp_path / "out.alia").rglob("result.json")).read_text())
    assert result["config"]["test_split"] is None and result["final"]["n_test"] == 0  # no test pass
    code, text, _ = cli(capsys, "train", "--data", data, "--profile", "smoke", "--epochs", "1", "--batch-size", "4",
                        "--test-split", "none", "--out", tmp_path / "run", "--no-progress")  # any folder, too
    assert code == 0 and "trained without a test pass" in text


# ----------------------------------------------------------------------------- 12. a failed download


def test_the_colab_data_stage_offline_is_the_missing_dataset_line(tmp_path, monkeypatch):
    import urllib.error

    import torchvision.datasets

    from gifkit.data.cifar import CIFAR100_URL
    from gifkit.experiments.colab import run_colab

    def offline(*a, **k):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets, "CIFAR100", offline)
    monkeypatch.setenv("GIFKIT_DATA", str(tmp_path / "data"))
    with pytest.raises(DatasetMissing) as e:
        run_colab(tmp_path / "colab", device="cpu", progress=False)
    message = str(e.value)
    assert "\n" not in message and message.startswith("dataset 'cifar100': ")
    assert "The download failed (URLError: [Errno -3] Temporary failure in name resolution)" in message
    assert f"fetch {CIFAR100_URL} and extract it into {tmp_path / 'data'}" in message


# ----------------------------------------------------------------------------- 13. a missing CLIP, reported first

MISSING_CLIP = """
import sys, time
t = time.perf_counter()
from gifkit.models.hub import ModelUnavailable, load_clip
try:
    load_clip()
except ModelUnavailable as e:
    print(e)
print("open_clip imported" if "open_clip" in sys.modules else "open_clip not imported")
"""


def test_a_missing_clip_is_reported_before_any_model_is_built(tmp_path, capsys, monkeypatch):
    env = {**ENV, "HF_HUB_CACHE": str(tmp_path / "cache")}
    run = subprocess.run([sys.executable, "-c", MISSING_CLIP], env=env, capture_output=True, text=True, timeout=300)
    printed = run.stdout.strip().splitlines()
    assert "tried the Hub cache of timm/vit_base_patch32_clip_224.openai offline" in printed[0]
    assert "hf download timm/vit_base_patch32_clip_224.openai" in printed[0]
    assert printed[-1] == "open_clip not imported"  # so no 88M-parameter model was built first
    from huggingface_hub import constants

    from gifkit.models import hub

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "planted"))
    snap = tmp_path / "planted" / "models--timm--vit_base_patch32_clip_224.openai" / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    (snap.parent.parent / "refs").mkdir()
    (snap.parent.parent / "refs" / "main").write_text("0" * 40)
    (snap / "open_clip_config.json").write_text("{}")  # a download cut short: the config without the weights
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(hub.ModelUnavailable, match=r"which lacks open_clip_model.safetensors \(or "):
        hub.load_clip()


# ----------------------------------------------------------------------------- 14. EXIF orientation


def test_exif_orientation_is_applied_to_seeds_and_training_images_alike(tmp_path, capsys):
    data = make_folder(tmp_path / "data", n=2)
    rng = np.random.default_rng(3)
    raw = Image.fromarray(rng.integers(0, 256, (16, 24, 3), dtype=np.uint8))  # 24 wide, 16 high as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    raw.save(data / "cat" / "2.png", exif=exif.tobytes())
    upright = raw.transpose(Image.Transpose.ROTATE_270)
    ds = ImageFolderDataset(data)
    i = next(k for k, (p, _) in enumerate(ds.samples) if p.endswith("2.png"))
    assert np.array_equal(np.asarray(ds[i][0]), np.asarray(upright))  # the seed as a viewer shows it
    out = tmp_path / "out"
    assert cli(capsys, "expand", "--data", data, "--out", out, *CUTOUT)[0] == 0
    variant = Image.open(out / "cat" / f"{i:06d}_000.png")
    assert variant.size == upright.size == (16, 24)
    assert (np.asarray(variant) == np.asarray(upright)).all(axis=2).mean() > 0.5  # cutout blanks one square only
    everything = ExpandedDataset(ds, out)
    row = read_metadata(out).query("seed_index == @i and variant == 0").index[0]
    assert everything[i][0].size == everything[len(ds) + int(row)][0].size == (16, 24)  # training agrees
