"""Reliability (issue 16): gifkit never loses or corrupts a user's data, and every bad case ends in one clear line.

Each case of the issue on the smoke profile: kills are simulated by raising inside the writer at chosen points
(``gifkit.io.files``' ``open``, the checkpoint writer, the folder swap), a full disk by a write that fails with
ENOSPC / EFBIG, symlinks and ``--out == --data`` on temp folders. Every case also checks that the input data
and everything outside ``--out`` stay as they were.
"""
import builtins
import errno
import hashlib
import json
import os
import pickle
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import gifkit.io.files as gfiles
from gifkit.cli import main
from gifkit.config import Check, check_expand_args
from gifkit.core.guidance import GuidanceConfig
from gifkit.data import ImageFolderDataset, load_dataset
from gifkit.data import folder as folder_module
from gifkit.errors import Damaged, DiskFull, Refused
from gifkit.experiments.study import MethodCache
from gifkit.io.datasets import ExpandedDataset, seed_fingerprint
from gifkit.io.store import clear_store, read_metadata
from gifkit.methods import create_method, expand
from gifkit.train import checkpoint as ckpt_module
from gifkit.train import loop as tr_loop
from gifkit.train.config import make_config
from gifkit.train.loop import train

pytestmark = pytest.mark.usefixtures("one_thread")

CUTOUT = ["--method", "cutout", "--ratio", "2", "--batch-size", "2", "--no-progress"]


# ----------------------------------------------------------------------------- helpers


def make_folder(root: Path, n: int = 3, classes=("cat", "dog"), seed: int = 0, prefix: str = "", size: int = 16):
    """``root/<class>/<prefix><i>.png``: noise images (distinct bytes and sizes)."""
    rng = np.random.default_rng(seed)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / c / f"{prefix}{i}.png")
    return root


def snapshot(root: Path, skip: Path | None = None) -> dict:
    """Every entry under ``root`` (symlinks not followed): file digests, link targets, folders."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            if skip is not None and (p == skip or skip in p.parents):
                continue
            rel = str(p.relative_to(root))
            found[rel] = ("link:" + os.readlink(p) if p.is_symlink() else
                          hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir")
    return found


def files(root: Path) -> dict:
    """``{relative path: bytes}`` of every file under ``root``."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out
    return code, out, err


def error_line(err: str, command: str = "expand") -> str:
    """The one error line (after argparse's usage text, if any)."""
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert lines and lines[-1].startswith(f"gifkit {command}: error: "), err
    if not lines[0].startswith("usage:"):
        assert len(lines) == 1, err
    return lines[-1]


class FaultyOpen:
    """``open`` for ``gifkit.io.files``: the ``nth`` temp file whose target name matches ``pattern`` raises
    ``exc`` right after it is created (a kill, a full disk inside the writer)."""

    def __init__(self, pattern: str, exc: BaseException, nth: int = 1):
        self.pattern, self.exc, self.nth, self.seen = re.compile(pattern), exc, nth, 0

    def __call__(self, file, mode="r", *args, **kwargs):
        fh = builtins.open(file, mode, *args, **kwargs)
        m = gfiles.TEMP_NAME.fullmatch(os.path.basename(str(file)))
        if "x" in mode and m and self.pattern.fullmatch(os.path.basename(str(file))[1:].rsplit(".", 3)[0]):
            self.seen += 1
            if self.seen == self.nth:
                fh.close()
                raise self.exc
        return fh


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


# ----------------------------------------------------------------------------- the input dataset is read-only


def test_out_equal_inside_or_containing_data_is_refused(tmp_path, capsys):
    data = make_folder(tmp_path / "data")
    (tmp_path / "link").symlink_to(data)
    before = snapshot(tmp_path)
    for out in (data, data / "expanded", tmp_path, tmp_path / "link", tmp_path / "link" / "sub"):
        code, _, err = cli(capsys, "expand", "--data", data, "--out", out, *CUTOUT)
        assert code == 2 and "never writes into a dataset" in error_line(err)
    assert snapshot(tmp_path) == before  # nothing made, inside the data or elsewhere
    ds, classes = load_dataset(str(data))
    with pytest.raises(Refused, match="lies inside the input data"):  # the Python API too
        expand(create_method("cutout", classes), ds, data / "cat" / "x", ratio=1, progress=False)
    assert snapshot(tmp_path) == before


def test_another_dataset_into_the_same_folder_is_refused_unless_force_new(tmp_path, capsys):
    one = make_folder(tmp_path / "one", seed=1)
    renamed = make_folder(tmp_path / "renamed", seed=1, prefix="b")  # same classes and pixels, other files
    repainted = make_folder(tmp_path / "repainted", seed=2)  # same classes and file names, other pixels
    out = tmp_path / "out"
    assert cli(capsys, "expand", "--data", one, "--out", out, *CUTOUT)[0] == 0
    kept = snapshot(out)
    for other in (renamed, repainted):
        code, _, err = cli(capsys, "expand", "--data", other, "--out", out, *CUTOUT)
        assert code == 2 and "other seed images" in error_line(err) and "--force-new" in err
        assert snapshot(out) == kept  # not mixed
    before = snapshot(tmp_path, skip=out)
    code, text, _ = cli(capsys, "expand", "--data", repainted, "--out", out, *CUTOUT, "--force-new")
    assert code == 0 and "12 written, 0 already there" in text
    meta = read_metadata(out)
    assert len(meta) == 12 and all(p.startswith(str(repainted)) for p in meta["seed_path"])
    assert len(list(out.glob("*/*.png"))) == 12
    assert snapshot(tmp_path, skip=out) == before
    assert seed_fingerprint(load_dataset(str(one))[0]) != seed_fingerprint(load_dataset(str(repainted))[0])


# ----------------------------------------------------------------------------- kills, stale temp files, SIGINT


@pytest.mark.parametrize("pattern, nth", [(r"\d{6}_\d{3}\.png", 3), (r"\d{6}\.csv", 2), (r"metadata\.csv", 1),
                                          (r"run\.json", 1)])
def test_a_kill_inside_the_writer_resumes_to_the_same_bytes(tmp_path, capsys, monkeypatch, pattern, nth):
    data = make_folder(tmp_path / "data")
    data_before = snapshot(data)
    reference = tmp_path / "reference"
    assert cli(capsys, "expand", "--data", data, "--out", reference, *CUTOUT)[0] == 0
    out = tmp_path / "out"
    monkeypatch.setattr(gfiles, "open", FaultyOpen(pattern, KeyboardInterrupt(), nth), raising=False)
    code, _, err = cli(capsys, "expand", "--data", data, "--out", out, *CUTOUT)
    assert code == 130 and err.strip() == "gifkit expand: interrupted; re-run the same command to resume"
    assert not [p for p in out.rglob("*") if gfiles.is_temp_name(p.name)]  # the writer cleaned up
    monkeypatch.undo()
    assert cli(capsys, "expand", "--data", data, "--out", out, *CUTOUT)[0] == 0
    assert files(out) == files(reference)
    assert snapshot(data) == data_before


SIGINT_MIDWAY = """
import os, signal, sys
import gifkit.methods.augment as augment
from gifkit.cli import main
real, calls = augment.augment_one, []
def interrupted(*a, **k):
    calls.append(1)
    if len(calls) == 5:
        os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, in the middle of the run
    return real(*a, **k)
augment.augment_one = interrupted
# as in a terminal: a child inherits an ignored SIGINT (some test runners ignore it), and Python then never
# raises KeyboardInterrupt
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.exit(main(sys.argv[1:]))
"""


def test_ctrl_c_ends_with_one_line_and_the_rerun_resumes(tmp_path, capsys):
    data = make_folder(tmp_path / "data")
    args = ["expand", "--data", str(data), *CUTOUT]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1])}
    run = subprocess.run([sys.executable, "-c", SIGINT_MIDWAY, *args, "--out", str(tmp_path / "out")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 130, run.stderr[-2000:]
    assert run.stderr.strip().splitlines()[-1] == "gifkit expand: interrupted; re-run the same command to resume"
    assert "Traceback" not in run.stderr and "KeyboardInterrupt" not in run.stderr
    assert 0 < len(list((tmp_path / "out").glob("*/*.png"))) < 12
    assert cli(capsys, *args, "--out", tmp_path / "out")[0] == 0
    assert cli(capsys, *args, "--out", tmp_path / "reference")[0] == 0
    assert files(tmp_path / "out") == files(tmp_path / "reference")


def test_stale_temp_files_of_a_killed_writer_are_removed_on_resume(tmp_path, capsys):
    data = make_folder(tmp_path / "data")
    out = tmp_path / "out"
    assert cli(capsys, "expand", "--data", data, "--out", out, *CUTOUT, "--limit", "2")[0] == 0
    gone, alive = dead_pid(), 1  # pid 1 (init) is running: its temp files are another process's
    stale = [out / "cat" / f".000004_000.png.{gone}.0123abcd.tmp", out / f".metadata.csv.{gone}.89abcdef.tmp"]
    (out / ".parts").mkdir()
    stale.append(out / ".parts" / f".000004.csv.{gone}.00000000.tmp")
    other = out / "cat" / f".000005_000.png.{alive}.0123abcd.tmp"
    for p in stale + [other]:
        p.write_bytes(b"half a png")
    code, text, _ = cli(capsys, "expand", "--data", data, "--out", out, *CUTOUT)
    assert code == 0 and "8 written, 4 already there" in text
    assert not any(p.exists() for p in stale) and other.exists() and not (out / ".parts").exists()


# ----------------------------------------------------------------------------- symlinks and metadata paths


def test_symlinks_inside_out_are_refused_and_nothing_outside_changes(tmp_path, capsys):
    data = make_folder(tmp_path / "data")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "000000.csv").write_text("a user's unrelated table\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "cat").symlink_to(elsewhere, target_is_directory=True)
    before = snapshot(tmp_path)
    code, _, err = cli(capsys, "expand", "--data", data, "--out", out, *CUTOUT)
    assert code == 2 and "is a symlink" in error_line(err) and str(out / "cat") in err
    (out / "cat").unlink()
    (out / ".parts").symlink_to(elsewhere, target_is_directory=True)
    code, _, err = cli(capsys, "expand", "--data", data, "--out", out, *CUTOUT)
    assert code == 2 and "is a symlink" in error_line(err) and ".parts" in err
    after = snapshot(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith("out")} == \
        {k: v for k, v in before.items() if not k.startswith("out")}
    assert (elsewhere / "000000.csv").read_text() == "a user's unrelated table\n"


@pytest.mark.parametrize("bad", ["../../secret.png", "/etc/hostname", "a symlinked image"])
def test_metadata_paths_that_leave_the_folder_are_refused(tmp_path, capsys, smoke, bad):
    ds, classes = smoke
    out = tmp_path / "out"
    expand(create_method("cutout", classes), ds, out, ratio=1, progress=False)
    (tmp_path / "secret.png").write_bytes(b"not yours")
    if bad == "a symlinked image":  # the row stays, its image now leads outside
        first = out / classes[0] / "000000_000.png"
        first.unlink()
        first.symlink_to(tmp_path / "secret.png")
    else:
        meta = (out / "metadata.csv").read_text().splitlines()
        meta[1] = f"{bad},{meta[1].split(',', 1)[1]}"
        (out / "metadata.csv").write_text("\n".join(meta) + "\n")
    with pytest.raises(Refused, match="leads outside|leaves the expansion folder"):
        ExpandedDataset(ds, out)
    code, _, err = cli(capsys, "train", "--data", "smoke", "--profile", "smoke", "--out", tmp_path / "run",
                       "--expanded", out, "--epochs", "1", "--no-progress")
    line = error_line(err, "train")
    assert code == 2 and ("leaves the expansion folder" in line or "leads outside" in line)
    assert (tmp_path / "secret.png").read_bytes() == b"not yours"


# ----------------------------------------------------------------------------- the run record


def test_a_failed_start_does_not_lock_the_folder(tmp_path, capsys, smoke, monkeypatch):
    import gifkit.methods.augment as augment

    ds, classes = smoke
    out = tmp_path / "out"
    def boom(*a, **k):
        raise RuntimeError("a bug, or a device that went away")

    monkeypatch.setattr(augment, "augment_one", boom)
    with pytest.raises(RuntimeError):
        expand(create_method("cutout", classes), ds, out, ratio=2, progress=False)
    assert (out / "run.json").is_file()  # written, but no image: it does not bind
    monkeypatch.undo()
    r = expand(create_method("cutout", classes), ds, out, ratio=3, progress=False)
    assert r.written == 48 and json.loads((out / "run.json").read_text())["ratio"] == 3
    code, _, err = cli(capsys, "expand", "--data", "smoke", "--out", tmp_path / "o2", "--output-size", "0")
    assert code == 2 and "output_size must be an integer" in error_line(err)
    assert not (tmp_path / "o2").exists()


@pytest.fixture(scope="module")
def gif_cache():
    return MethodCache()


def test_run_json_records_the_condition_and_a_resume_under_another_is_refused(tmp_path, gif_cache):
    def run(out, limit, threads):
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            ds, classes = load_dataset("smoke")
            method = gif_cache.get("gif-sd", classes, profile="smoke", device="cpu", options={"steps": 2})
            return expand(method, ds, out, ratio=2, limit=limit, batch_size=2)
        finally:
            torch.set_num_threads(before)

    run(tmp_path / "whole", 4, 1)
    record = json.loads((tmp_path / "whole" / "run.json").read_text())
    env = record["environment"]
    assert env["threads"] == 1 and env["dtypes"] == ["float32"] and env["device"]["type"] == "cpu"
    assert env["versions"]["torch"].startswith(torch.__version__.split("+")[0])
    assert record["seeds"]["n"] == 16 and record["seeds"]["kind"] == "items"
    out = tmp_path / "grown"
    run(out, 2, 1)
    kept = snapshot(out)
    with pytest.raises(Refused, match=r"threads 1 there, 2 here.*OMP_NUM_THREADS=1"):
        run(out, 4, 2)  # the images would mix two numerics
    assert snapshot(out) == kept
    assert run(out, 4, 1).written == 4  # the recorded condition resumes (and the run grows)
    assert files(out) == files(tmp_path / "whole")


def test_a_skipped_seed_is_recorded_and_retried_by_the_next_run(tmp_path, capsys, monkeypatch):
    data = make_folder(tmp_path / "data")
    victim, broken = str(data / "cat" / "1.png"), data / "dog" / "0.png"
    good = broken.read_bytes()
    broken.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    real = folder_module.open_rgb

    def transient(path):
        if str(path) == victim:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(folder_module, "open_rgb", transient)
    code, text, _ = cli(capsys, "expand", "--data", data, "--out", tmp_path / "out", *CUTOUT)
    assert code == 0 and "2 seeds skipped" in text and "Permission denied" in text
    skipped = dict(json.loads((tmp_path / "out" / "skipped.json").read_text()))
    assert set(skipped) == {1, 3} and "Permission denied" in skipped[1]
    monkeypatch.undo()
    broken.write_bytes(good)  # the user repairs the file: the run is not refused, it retries
    code, text, _ = cli(capsys, "expand", "--data", data, "--out", tmp_path / "out", *CUTOUT)
    assert code == 0 and "4 written, 8 already there, 0 seeds skipped" in text
    assert not (tmp_path / "out" / "skipped.json").exists()
    assert cli(capsys, "expand", "--data", data, "--out", tmp_path / "clean", *CUTOUT)[0] == 0
    assert files(tmp_path / "out") == files(tmp_path / "clean")  # as if nothing had been skipped


def test_a_run_whose_every_input_is_unreadable_exits_non_zero(tmp_path, capsys):
    data = tmp_path / "data"
    for c in ("cat", "dog"):
        (data / c).mkdir(parents=True)
        (data / c / "x.png").write_bytes(b"not an image")
    code, text, err = cli(capsys, "expand", "--data", data, "--out", tmp_path / "out", *CUTOUT)
    assert code == 2 and "2 seeds skipped" in text
    assert "nothing was written: every one of the 2 seed images was unreadable" in error_line(err)


# ----------------------------------------------------------------------------- inputs: reported, not dropped


def test_ignored_inputs_and_unreadable_folders_are_reported(tmp_path, monkeypatch):
    data = make_folder(tmp_path / "data", classes=("cat", "dog", "locked"))
    make_folder(data / "cat" / "nested", n=1, classes=("x",))
    make_folder(data, n=1, classes=(".hidden", "..x"))
    (data / "notes.txt").write_text("hi")
    real = folder_module._entries

    def entries(path):
        if Path(path).name == "locked":
            raise PermissionError(errno.EACCES, "Permission denied")
        return real(path)

    monkeypatch.setattr(folder_module, "_entries", entries)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = ImageFolderDataset(data)
    text = " ".join(str(w.message) for w in caught)
    for what in ("nested", ".hidden", "..x", "notes.txt", "locked", "Permission denied"):
        assert what in text
    assert ds.classes == ["cat", "dog", "locked"] and ds.empty_classes == ["locked"] and len(ds) == 6
    assert len(ds.ignored) == 5


def bomb_png(path: Path, width: int = 20000, height: int = 20000) -> Path:
    """A PNG header claiming ``width x height`` pixels (what a decompression bomb looks like to a reader)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def test_a_decompression_bomb_is_skipped_and_reported(tmp_path, capsys):
    data = make_folder(tmp_path / "data")
    bomb_png(data / "dog" / "bomb.png")
    code, text, _ = cli(capsys, "expand", "--data", data, "--out", tmp_path / "out", *CUTOUT)
    assert code == 0 and "1 seeds skipped" in text and "bomb.png" in text and "decompression bomb" in text


# ----------------------------------------------------------------------------- full disks, bad --out


@pytest.mark.parametrize("pattern, code, nth", [(r"\d{6}_\d{3}\.png", errno.ENOSPC, 2),
                                                (r"metadata\.csv", errno.ENOSPC, 1), (r"\d{6}\.csv", errno.EFBIG, 2)])
def test_a_full_disk_names_the_folder_and_the_rerun_resumes(tmp_path, capsys, monkeypatch, pattern, code, nth):
    data = make_folder(tmp_path / "data")
    assert cli(capsys, "expand", "--data", data, "--out", tmp_path / "reference", *CUTOUT)[0] == 0
    out = tmp_path / "out"
    monkeypatch.setattr(gfiles, "open", FaultyOpen(pattern, OSError(code, os.strerror(code)), nth), raising=False)
    status, _, err = cli(capsys, "expand", "--data", data, "--out", out, *CUTOUT)
    line = error_line(err)
    assert status == 2 and "re-run the same command; the run resumes" in line and str(out) in line
    assert ("no space left" if code == errno.ENOSPC else "file-size limit") in line
    assert not [p for p in out.rglob("*") if gfiles.is_temp_name(p.name)]
    monkeypatch.undo()
    assert cli(capsys, "expand", "--data", data, "--out", out, *CUTOUT)[0] == 0
    assert files(out) == files(tmp_path / "reference")


def test_disk_full_is_a_user_error_in_the_api(tmp_path, monkeypatch):
    monkeypatch.setattr(gfiles, "open", FaultyOpen(r"x\.json", OSError(errno.ENOSPC, "full")), raising=False)
    with pytest.raises(DiskFull, match=f"while writing x.json in {tmp_path}"):
        gfiles.write_json(tmp_path / "x.json", {})
    assert list(tmp_path.iterdir()) == []


def test_an_out_that_is_a_file_or_unwritable_is_one_line(tmp_path, capsys, monkeypatch):
    (tmp_path / "file").write_text("mine")
    code, _, err = cli(capsys, "expand", "--data", "smoke", "--out", tmp_path / "file", *CUTOUT)
    assert code == 2 and "exists and is not a folder" in error_line(err)
    assert (tmp_path / "file").read_text() == "mine"
    monkeypatch.setattr(gfiles, "open", FaultyOpen(r".*", PermissionError(errno.EACCES, "Permission denied")),
                        raising=False)
    code, _, err = cli(capsys, "expand", "--data", "smoke", "--out", tmp_path / "ro", *CUTOUT)
    assert code == 2 and error_line(err).endswith(f"cannot write {tmp_path / 'ro' / 'classes.json'}: Permission denied")


# ----------------------------------------------------------------------------- numbers and damaged records


@pytest.mark.parametrize("flag, value, message", [
    ("--eps", "inf", "eps must be a finite number >= 0"), ("--guidance-scale", "nan", "guidance_scale must be"),
    ("--steps", "0", "steps must be an integer in [1, 10000]"), ("--batch-size", "0", "batch_size must be"),
    ("--limit", "-1", "limit must be an integer >= 1"), ("--ratio", "1000000", "ratio must be an integer in [1, 1000]"),
    ("--strength", "1.5", "strength must be"), ("--opt-steps", "2.5", "expected an integer")])
def test_nonsense_numbers_are_refused_before_any_work(tmp_path, capsys, flag, value, message):
    code, _, err = cli(capsys, "expand", "--data", "smoke", "--out", tmp_path / "out", flag, value)
    assert code == 2 and f"argument {flag}: {message}" in error_line(err)
    assert not (tmp_path / "out").exists()


def test_the_python_api_shares_the_numeric_checks(tmp_path, smoke):
    ds, classes = smoke
    with pytest.raises(ValueError, match="eps must be a finite number >= 0, got inf"):
        GuidanceConfig(eps=float("inf"))
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        make_config("smoke", data="smoke", lr=float("nan"))
    with pytest.raises(ValueError, match="steps must be an integer"):
        create_method("gif-sd", classes, steps=0, device="cpu")
    for kw in ({"batch_size": 0}, {"ratio": 10 ** 6}, {"limit": -1}, {"output_size": 0}):
        with pytest.raises(ValueError, match=f"{next(iter(kw))} must be"):
            expand(create_method("cutout", classes), ds, tmp_path / "o", **{"ratio": 2, **kw})
    assert not (tmp_path / "o").exists()
    assert check_expand_args(ratio=2.0, limit=None) == {"ratio": 2, "limit": None}
    assert Check(0, 1, lo_open=True).describe() == "a finite number in (0, 1]"
    with pytest.raises(ValueError, match="got True"):
        Check(integer=True)("x", True)


@pytest.mark.parametrize("name", ["run.json", "classes.json", "skipped.json", "metadata.csv"])
def test_damaged_records_name_the_file(tmp_path, capsys, name):
    data = make_folder(tmp_path / "data")
    (data / "dog" / "bad.png").write_bytes(b"nope")  # so that skipped.json exists
    out = tmp_path / "out"
    assert cli(capsys, "expand", "--data", data, "--out", out, *CUTOUT)[0] == 0
    (out / name).write_bytes(b"\xff\xfe{[" if name != "metadata.csv" else b"file_name\n\"a,b\n")
    (out / "dog" / "000004_000.png").unlink()  # something to do, so that metadata.csv is read
    code, _, err = cli(capsys, "expand", "--data", data, "--out", out, *CUTOUT)
    line = error_line(err)
    assert code == 2 and str(out / name) in line and "damaged" in line


# ----------------------------------------------------------------------------- training


def smoke_train(tmp_path, name="run", **kw):
    kw = {"epochs": 3, "batch_size": 8, "progress": False, "out": str(tmp_path / name), **kw}
    return make_config("smoke", data="smoke", data_kwargs={"n_per_class": 4}, **kw)


def same_model(a: Path, b: Path) -> bool:
    x, y = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("reference")
    return root / "run", train(smoke_train(root))


class Kill:
    """Raise KeyboardInterrupt at the ``nth`` call of ``fn``."""

    def __init__(self, fn, nth):
        self.fn, self.nth, self.calls = fn, nth, 0

    def __call__(self, *a, **k):
        self.calls += 1
        if self.calls == self.nth:
            raise KeyboardInterrupt
        return self.fn(*a, **k)


@pytest.mark.parametrize("where, nth", [("write", 7), ("write", 9), ("write", 12), ("swap", 2)])
def test_a_kill_during_a_checkpoint_save_resumes_to_the_same_model(tmp_path, monkeypatch, reference_run, where, nth):
    ref_dir, ref = reference_run
    cfg = smoke_train(tmp_path)
    if where == "write":  # 6 files per save: the 2nd save (epoch 2) is cut at its 1st, 3rd and last file
        monkeypatch.setattr(ckpt_module, "atomic_write_bytes", Kill(ckpt_module.atomic_write_bytes, nth))
    else:  # the 2nd save is cut between moving the old checkpoint aside and moving the new one in
        real = os.rename
        calls = []

        def rename(src, dst):
            if str(src).endswith(".checkpoint.tmp"):
                calls.append(src)
                if len(calls) == nth:
                    raise KeyboardInterrupt
            return real(src, dst)

        monkeypatch.setattr(gfiles.os, "rename", rename)
    with pytest.raises(KeyboardInterrupt):
        train(cfg)
    monkeypatch.undo()
    if where == "swap":
        assert not (tmp_path / "run" / "checkpoint").exists() and (tmp_path / "run" / ".checkpoint.old").is_dir()
    resumed = train(cfg)
    assert same_model(tmp_path / "run", ref_dir)
    timeless = lambda h: [{k: v for k, v in e.items() if not k.endswith("_per_s")} for e in h]  # noqa: E731
    assert resumed["final"] == ref["final"] and timeless(resumed["history"]) == timeless(ref["history"])
    names = {p.name for p in (tmp_path / "run" / "checkpoint").iterdir()}
    assert names == {"model.safetensors", "optimizer.safetensors", "optimizer.json", "rng_0.safetensors",
                     "rng_0.json", "state.json"}  # no pickles
    assert not (tmp_path / "run" / ".checkpoint.tmp").exists() and not (tmp_path / "run" / ".checkpoint.old").exists()


class Evil:
    """Unpickling this creates the file ``marker``: what a crafted pickle could do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.open, (self.marker, "w"))


@pytest.mark.parametrize("damage", ["garbage model", "truncated state", "missing rng", "accelerate pickle"])
def test_a_damaged_checkpoint_is_reported_with_the_way_out(tmp_path, capsys, monkeypatch, damage):
    cfg = smoke_train(tmp_path, "cli/seed_0", epochs=2)  # where `gifkit train --out cli` puts seed 0
    monkeypatch.setattr(tr_loop, "_evaluate", Kill(tr_loop._evaluate, 2))  # killed in epoch 2
    with pytest.raises(KeyboardInterrupt):
        train(cfg)
    monkeypatch.undo()
    ck = tmp_path / "cli" / "seed_0" / "checkpoint"
    marker = tmp_path / "pwned"
    if damage == "garbage model":
        (ck / "model.safetensors").write_bytes(b"\0garbage" * 10)
    elif damage == "truncated state":
        (ck / "state.json").write_text((ck / "state.json").read_text()[:40])
    elif damage == "missing rng":
        (ck / "rng_0.json").unlink()
    else:  # a checkpoint as accelerate writes it, with a crafted pickle
        state = json.loads((ck / "state.json").read_text())
        state.pop("files")
        (ck / "state.json").write_text(json.dumps(state))
        (ck / "random_states_0.pkl").write_bytes(pickle.dumps(Evil(marker)))
    with pytest.raises(Damaged, match=f"checkpoint at {re.escape(str(ck))} is damaged .*--no-resume"):
        train(cfg)
    assert not marker.exists()  # nothing was unpickled
    code, _, err = cli(capsys, "train", "--data", "smoke", "--profile", "smoke", "--data-arg", "n_per_class=4",
                       "--epochs", "2", "--batch-size", "8", "--out", tmp_path / "cli", "--no-progress")
    line = error_line(err, "train")
    assert code == 2 and f"checkpoint at {ck} is damaged" in line and "--no-resume" in line


def test_no_resume_starts_over_from_a_damaged_checkpoint(tmp_path):
    cfg = smoke_train(tmp_path, epochs=1)
    train(cfg)
    (tmp_path / "run" / "result.json").unlink()
    (tmp_path / "run" / "checkpoint" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(Damaged):
        train(cfg)
    r = train(smoke_train(tmp_path, epochs=1, resume=False))
    assert r["history"][0]["epoch"] == 1 and (tmp_path / "run" / "result.json").is_file()
    (tmp_path / "run" / "result.json").unlink()
    assert train(cfg)["final"] == r["final"]  # the new checkpoint is sound: resumed after its last epoch


def test_a_damaged_model_file_in_evaluate_is_one_line(tmp_path, capsys):
    train(smoke_train(tmp_path, epochs=1))
    (tmp_path / "run" / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    code, _, err = cli(capsys, "evaluate", "--run", tmp_path / "run", "--device", "cpu", "--no-progress")
    line = error_line(err, "evaluate")
    assert code == 2 and "model.safetensors is damaged" in line


def test_a_truncated_expansion_image_is_skipped_and_counted_in_training(tmp_path, smoke):
    ds, classes = smoke
    exp = tmp_path / "exp"
    expand(create_method("cutout", classes), ds, exp, ratio=1, progress=False)
    victim = sorted(exp.glob("*/*.png"))[3]
    victim.write_bytes(victim.read_bytes()[:60])
    with pytest.warns(UserWarning, match="skipping an unreadable training image"):
        r = train(smoke_train(tmp_path, epochs=1, expanded=[str(exp)]))
    assert r["dataset"]["unreadable_images_skipped"] == [str(victim)]
    assert r["dataset"]["n_train_total"] == 32 and r["history"][0]["steps"] == 4


def test_torch_load_is_always_weights_only_and_only_cifar_unpickles():
    import ast

    root = Path(gfiles.__file__).parents[1]
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load":
                owner = ast.unparse(node.func.value)
                if owner == "torch":
                    assert any(k.arg == "weights_only" and ast.unparse(k.value) == "True" for k in node.keywords), \
                        f"{path}:{node.lineno}"
                if owner == "pickle":  # the CIFAR loader, after checking the official MD5
                    assert path.name == "cifar.py", f"{path}:{node.lineno}"


# ----------------------------------------------------------------------------- untrusted files


def test_cifar_pickles_are_verified_before_unpickling(tmp_path):
    from torchvision.datasets import CIFAR100

    from gifkit.data import cifar

    assert cifar.CIFAR100_MD5 == {"train": CIFAR100.train_list[0][1], "test": CIFAR100.test_list[0][1],
                                  "meta": CIFAR100.meta["md5"]}
    base = tmp_path / "cifar-100-python"
    base.mkdir()
    marker = tmp_path / "pwned"
    for name in ("train", "test", "meta"):
        (base / name).write_bytes(pickle.dumps(Evil(marker)))
    with pytest.raises(Refused, match=r"not the official CIFAR-100 file \(MD5 [0-9a-f]{32}, expected 16019d7e"):
        load_dataset("cifar100", "train", root=tmp_path)
    assert not marker.exists()
    code = main(["train", "--data", "cifar100", "--data-root", str(tmp_path), "--out", str(tmp_path / "r"),
                 "--profile", "smoke"])
    assert code == 2 and not marker.exists()


# ----------------------------------------------------------------------------- ALIA


def test_alia_skips_a_corrupt_seed_like_the_other_methods(tmp_path, capsys):
    data = tmp_path / "data"
    make_folder(data / "train", n=3)
    make_folder(data / "test", n=2, seed=5)
    (data / "train" / "cat" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    before = snapshot(data)
    code, text, _ = cli(capsys, "expand", "--data", data, "--out", tmp_path / "out", "--method", "alia", "--ratio",
                        "2", "--steps", "2", "--descriptions", "in the snow", "--device", "cpu", "--no-progress")
    assert code == 0 and "12 written" in text and "1 seeds skipped" in text and "bad.png" in text
    assert (tmp_path / "out" / "metadata.csv").is_file() and snapshot(data) == before


def test_clear_store_removes_only_what_an_expansion_made(tmp_path, smoke):
    ds, classes = smoke
    out = tmp_path / "out"
    expand(create_method("cutout", classes), ds, out, ratio=1, progress=False)
    (out / "notes.txt").write_text("mine")
    (out / classes[0] / "photo.png").write_bytes(b"mine too")
    assert clear_store(out) == 16 + 3  # images, metadata.csv, classes.json, run.json
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == sorted(
        [classes[0], f"{classes[0]}/photo.png", "notes.txt"])
