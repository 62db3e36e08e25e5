"""Test configuration: never touch the network, keep CPU threads modest."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def tmp_out(tmp_path):
    """A fresh output folder."""
    out = tmp_path / "out"
    return out


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run much faster on one thread when the 2 cores are shared (no OpenMP spinning); a module
    opts in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def smoke():
    """``(dataset, class_names)`` of the built-in synthetic smoke set."""
    from gifkit.data import load_dataset

    return load_dataset("smoke")
