"""`--deterministic`: torch's, cuDNN's and cuBLAS's deterministic settings inside the run, recorded in run.json
(and in a training run's settings), the previous state restored after it. The kernels themselves matter on CUDA
only; here the flag is checked to be set and recorded."""
import json
import os

import pytest
import torch

from gifkit.cli import main
from gifkit.core.rng import CUBLAS_WORKSPACE, deterministic_kernels
from gifkit.data import load_dataset
from gifkit.methods import create_method, expand
from gifkit.train.config import make_config, settings_of

pytestmark = pytest.mark.usefixtures("one_thread")


def _state():
    return (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark,
            torch.backends.cudnn.deterministic, os.environ.get("CUBLAS_WORKSPACE_CONFIG"))


def test_deterministic_kernels_set_and_restore(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before = _state()
    with deterministic_kernels():
        assert _state() == (True, False, True, CUBLAS_WORKSPACE)
        assert torch.is_deterministic_algorithms_warn_only_enabled()
    assert _state() == before
    with deterministic_kernels(False):
        assert _state() == before


def test_expand_records_the_deterministic_condition(tmp_path):
    ds, classes = load_dataset("smoke")
    out = tmp_path / "det"
    method = create_method("gif-sd", classes, profile="smoke")
    expand(method, ds, out, ratio=2, limit=2, batch_size=2, progress=False, deterministic=True)
    env = json.loads((out / "run.json").read_text())["environment"]
    assert env["deterministic_algorithms"] is True
    assert env["deterministic"] == {"warn_only": True, "cudnn_deterministic": True, "cudnn_benchmark": False,
                                    "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG",
                                                                              CUBLAS_WORKSPACE)}
    assert not torch.are_deterministic_algorithms_enabled()  # restored after the run
    plain = tmp_path / "plain"
    expand(method, ds, plain, ratio=2, limit=2, batch_size=2, progress=False)
    env = json.loads((plain / "run.json").read_text())["environment"]
    assert env["deterministic_algorithms"] is False and "deterministic" not in env
    # the CLI flag reaches the same record
    cli_out = tmp_path / "cli"
    assert main(["expand", "--data", "smoke", "--out", str(cli_out), "--method", "gif-sd", "--ratio", "2",
                 "--limit", "2", "--batch-size", "2", "--no-progress", "--deterministic"]) == 0
    assert json.loads((cli_out / "run.json").read_text())["environment"]["deterministic_algorithms"] is True


def test_training_flag_is_part_of_the_run_key_only_when_set():
    assert "deterministic" not in settings_of(make_config("smoke", data="smoke"))
    assert settings_of(make_config("smoke", data="smoke", deterministic=True))["deterministic"] is True
