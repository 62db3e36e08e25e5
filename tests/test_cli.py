"""The command line: help, doctor, expand end to end, and 2-process sharding with accelerate."""
import filecmp
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gifkit.cli import main

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def test_help_and_module_entry_point():
    out = subprocess.run([sys.executable, "-m", "gifkit", "--help"], capture_output=True, text=True, env=ENV)
    assert out.returncode == 0 and "expand" in out.stdout and "doctor" in out.stdout


def test_doctor_lists_versions_device_and_checkpoints(capsys):
    assert main(["doctor"]) == 0
    text = capsys.readouterr().out
    assert "torch" in text and "device: " in text and "offline mode (HF_HUB_OFFLINE): on" in text
    assert "CompVis/stable-diffusion-v1-4" in text and "facebook/vit-mae-large" in text
    assert "mini profile:" in text and "Fashion-MNIST idx files" in text and "VAE prior" in text


def test_doctor_says_how_to_get_missing_mini_data(capsys, monkeypatch, tmp_path):
    import gifkit.data.fashion as fashion

    def missing(name, split, root=None):
        raise fashion.DataUnavailable(fashion.how_to_get(name))

    monkeypatch.setattr(fashion, "find_files", missing)
    monkeypatch.setattr("platformdirs.user_cache_dir", lambda *a, **k: str(tmp_path))
    assert main(["doctor"]) == 0
    text = capsys.readouterr().out
    assert "apt-get install -y dataset-fashion-mnist" in text
    prior = next(line for line in text.splitlines() if "VAE prior" in line)
    assert "found (" in prior and "assets/mini-vae/fashion-mnist" in prior  # an empty user cache: the shipped one


def _messy_folder(root: Path) -> Path:
    for c in ("cat", "dog", "empty bird"):
        (root / c).mkdir(parents=True)
    Image.new("RGB", (40, 30), (200, 50, 50)).save(root / "cat" / "rgb.jpg")
    Image.new("L", (16, 16), 90).save(root / "cat" / "grey.png")
    Image.new("RGBA", (16, 16), (0, 0, 255, 100)).save(root / "dog" / "rgba.png")
    Image.fromarray(np.arange(256, dtype=np.uint16).reshape(16, 16) * 200).save(root / "dog" / "deep16.png")
    (root / "dog" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (root / "dog" / "truncated.jpg").write_bytes(b"\xff\xd8\xff\xe0")
    return root


def test_expand_end_to_end_on_a_messy_folder(tmp_path, capsys):
    root = _messy_folder(tmp_path / "data")
    out = tmp_path / "out"
    code = main(["expand", "--data", str(root), "--out", str(out), "--method", "gif-sd", "--ratio", "2",
                 "--steps", "3", "--batch-size", "2", "--device", "cpu", "--no-progress"])
    text = capsys.readouterr().out
    assert code == 0
    assert "8 written" in text and "2 seeds skipped" in text and "corrupt.png" in text and "truncated.jpg" in text
    meta = (out / "metadata.csv").read_text().splitlines()
    assert len(meta) == 9
    assert json.loads((out / "classes.json").read_text()) == ["cat", "dog", "empty bird"]
    assert sorted(p.name for p in (out / "dog").iterdir()) == ["000003_000.png", "000003_001.png",
                                                                "000004_000.png", "000004_001.png"]
    assert Image.open(out / "cat" / "000000_000.png").size == (32, 32)


def test_expand_rejects_bad_arguments_before_work(tmp_path, capsys):
    assert main(["expand", "--data", "smoke", "--out", str(tmp_path / "o"), "--ratio", "0"]) == 2
    assert "ratio" in capsys.readouterr().err
    assert main(["expand", "--data", "nowhere", "--out", str(tmp_path / "o")]) == 2
    assert "unknown dataset" in capsys.readouterr().err
    assert main(["expand", "--data", "smoke", "--out", str(tmp_path / "o"), "--method", "magic"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'magic'" in err and "gif-sd" in err
    assert not (tmp_path / "o" / "metadata.csv").exists()


def test_output_size_option(tmp_path):
    out = tmp_path / "o"
    assert main(["expand", "--data", "smoke", "--out", str(out), "--ratio", "1", "--limit", "2", "--steps", "2",
                 "--output-size", "20", "--device", "cpu", "--no-progress"]) == 0
    assert Image.open(next(out.glob("*/*.png"))).size == (20, 20)


def test_two_process_accelerate_equals_single_process(tmp_path):
    common = ["expand", "--data", "smoke", "--ratio", "2", "--limit", "8", "--batch-size", "2", "--steps", "3",
              "--device", "cpu", "--no-progress"]
    single = subprocess.run([sys.executable, "-m", "gifkit", *common, "--out", str(tmp_path / "one")],
                            capture_output=True, text=True, env=ENV)
    assert single.returncode == 0, single.stderr[-2000:]
    # `--cpu` alone runs one process; the torchrun launcher (--multi_gpu) with `--device cpu` runs two on gloo
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29517",
              "-m", "gifkit", *common, "--out", str(tmp_path / "two")]
    sharded = subprocess.run(launch, capture_output=True, text=True, env=ENV)
    assert sharded.returncode == 0, sharded.stderr[-3000:]
    assert sharded.stdout.count(": 8 written") == 2  # each process made half of the 16 images
    files = sorted(str(p.relative_to(tmp_path / "one")) for p in (tmp_path / "one").rglob("*") if p.is_file())
    assert len([f for f in files if f.endswith(".png")]) == 16
    assert files == sorted(str(p.relative_to(tmp_path / "two")) for p in (tmp_path / "two").rglob("*") if p.is_file())
    _, mismatch, errors = filecmp.cmpfiles(tmp_path / "one", tmp_path / "two", files, shallow=False)
    assert not mismatch and not errors


def cli_reference():
    """scripts/cli_reference.py as a module (scripts/ is not a package)."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "scripts" / "cli_reference.py"
    spec = importlib.util.spec_from_file_location("cli_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_cli_reference_is_the_parsers_help(monkeypatch):
    """docs/cli.md is generated from the parser; after a flag changes it is stale until `make cli-reference`."""
    reference = cli_reference()

    committed = reference.DEFAULT_PATH.read_text(encoding="utf-8")
    made_with = committed.split("(Python ", 1)[1].split("'", 1)[0]
    if made_with != reference.python_version():
        pytest.skip(f"docs/cli.md was made with Python {made_with}'s argparse, whose layout differs from this one's")
    assert committed == reference.render(), "docs/cli.md is stale: run `make cli-reference` and commit it"
    text = reference.render()
    for command in ("gifkit", "gifkit expand", "gifkit mini-prior", "gifkit finetune", "gifkit demo"):
        assert f"\n## {command}\n\n```text\nusage: {command} [-h]" in text
    assert "--batch-size BATCH_SIZE" in text and "--div-temperature" in text
    for columns in ("40", "250"):  # the terminal's width does not change it
        monkeypatch.setenv("COLUMNS", columns)
        assert reference.render() == text


def test_cli_reference_check_says_what_to_run_when_stale(tmp_path, capsys):
    reference = cli_reference()

    stale = tmp_path / "cli.md"
    stale.write_text(reference.render().replace("--batch-size", "--batch"), encoding="utf-8")
    assert reference.main(["--check", "--path", str(stale)]) == 1
    assert "make cli-reference" in capsys.readouterr().err
    assert reference.main(["--path", str(stale)]) == 0 and reference.main(["--check", "--path", str(stale)]) == 0
    assert stale.read_text(encoding="utf-8") == reference.render()
    assert reference.main(["--check", "--path", str(tmp_path / "missing.md")]) == 1
    assert "missing" in capsys.readouterr().err
