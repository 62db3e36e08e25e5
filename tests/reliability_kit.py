"""Helpers of the reliability tests (tests/test_reliability*.py): folders of noise images, snapshots of a folder,
the CLI with its one error line, faulty writers and kills."""
import builtins
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

import gifkit.io.files as gfiles
from gifkit.cli import main
from gifkit.train.config import make_config

CUTOUT = ["--method", "cutout", "--ratio", "2", "--batch-size", "2", "--no-progress"]


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


def smoke_train(tmp_path, name="run", **kw):
    kw = {"epochs": 3, "batch_size": 8, "progress": False, "out": str(tmp_path / name), **kw}
    return make_config("smoke", data="smoke", data_kwargs={"n_per_class": 4}, **kw)


def same_model(a: Path, b: Path) -> bool:
    x, y = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


class Kill:
    """Raise KeyboardInterrupt at the ``nth`` call of ``fn``."""

    def __init__(self, fn, nth):
        self.fn, self.nth, self.calls = fn, nth, 0

    def __call__(self, *a, **k):
        self.calls += 1
        if self.calls == self.nth:
            raise KeyboardInterrupt
        return self.fn(*a, **k)


class Evil:
    """Unpickling this creates the file ``marker``: what a crafted pickle could do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.open, (self.marker, "w"))

