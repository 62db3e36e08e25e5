"""Reliability of training (issue 16): a kill during a checkpoint save resumes to the same model, a damaged
checkpoint or model file is one line with the way out, unreadable training images are skipped and counted, and
nothing untrusted is unpickled."""
import json
import os
import pickle
import re
from pathlib import Path

import pytest

import gifkit.io.files as gfiles
from gifkit.cli import main
from gifkit.data import load_dataset
from gifkit.errors import Damaged, Refused
from gifkit.methods import create_method, expand
from gifkit.train import checkpoint as ckpt_module
from gifkit.train import loop as tr_loop
from gifkit.train.loop import train

from reliability_kit import cli, error_line, smoke_train, same_model, Kill, Evil

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("reference")
    return root / "run", train(smoke_train(root))


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
