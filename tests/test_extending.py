"""docs/extending.md, run as written: a third criterion in GIF's score and a new method, each one file."""
import importlib
import re
import sys
from pathlib import Path

import pytest
import torch

from gifkit.data import load_dataset
from gifkit.io.store import read_metadata
from gifkit.methods import METHODS, create_method, expand

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"


def doc_files() -> dict[str, str]:
    """``{file name: code}`` of the doc's code blocks that start with ``# file: NAME``."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    return {m.group(1): b for b in blocks if (m := re.match(r"# file: (\S+)\n", b))}


@pytest.fixture
def extensions(tmp_path, monkeypatch):
    files = doc_files()
    assert set(files) == {"gif_sd_shift.py", "posterize.py"}
    for name, code in files.items():
        (tmp_path / name).write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    before = dict(METHODS)
    modules = {name[:-3]: importlib.import_module(name[:-3]) for name in files}
    yield modules
    METHODS.clear()
    METHODS.update(before)  # the registry as it was: other tests see the built-in methods only
    for name in modules:
        sys.modules.pop(name, None)


def test_a_third_criterion_joins_the_score_the_ascent_and_the_metadata(extensions, tmp_path):
    ds, classes = load_dataset("smoke")
    method = create_method("gif-sd-shift", classes, device="cpu", w_shift=2.0, steps=2)
    base = create_method("gif-sd", classes, device="cpu", steps=2)
    # the score: GIF-SD's terms plus w_shift * mean_k KL(p'_k || p_seed), against a hand computation
    g = torch.Generator().manual_seed(0)
    p_seed = torch.softmax(torch.randn(4, generator=g), -1)
    p_var = torch.softmax(torch.randn(3, 4, generator=g), -1)
    feats = torch.nn.functional.normalize(torch.randn(3, 8, generator=g), dim=-1)
    kl = sum(float((p_var[k] * (p_var[k] / p_seed).log()).sum()) for k in range(2)) / 2
    (grp, terms), _ = method.score(p_seed, p_var, feats, 0)
    (_, plain), _ = base.score(p_seed, p_var, feats, 0)
    assert grp == slice(0, 2) and terms.extra["s_shift"] == pytest.approx(kl, rel=1e-5)
    assert float(terms.score) == pytest.approx(float(plain.score) + 2.0 * kl, rel=1e-5)
    # end to end: a column of every variant, and other images than GIF-SD's
    r = expand(method, ds, tmp_path / "shift", ratio=3, limit=2, progress=False)
    expand(base, ds, tmp_path / "base", ratio=3, limit=2, progress=False)
    meta = read_metadata(tmp_path / "shift")
    assert r.written == 6 and "s_shift" in meta.columns and (meta["s_shift"].astype(float) >= 0).all()
    assert set(meta["method"]) == {"gif-sd-shift"}
    differ = [(tmp_path / "shift" / f).read_bytes() != (tmp_path / "base" / f).read_bytes() for f in meta["file_name"]]
    assert any(differ)
    assert method.config.preset is None and method.guidance.eps == 0.8  # GIF-SD's defaults, inherited


def test_a_new_method_in_one_file_runs_through_the_driver(extensions, tmp_path):
    ds, classes = load_dataset("smoke")
    method = create_method("posterize", classes, bits=2)
    r = expand(method, ds, tmp_path / "p", ratio=2, batch_size=3, progress=False)
    meta = read_metadata(tmp_path / "p")
    assert r.written == 32 and set(meta["bits"].astype(int)) == {2} and set(meta["method"]) == {"posterize"}
    from PIL import Image, ImageOps

    seed = ds[int(meta["seed_index"].iloc[0])][0]
    saved = Image.open(tmp_path / "p" / meta["file_name"].iloc[0])
    assert saved.tobytes() == ImageOps.posterize(seed.convert("RGB"), 2).tobytes()
    again = expand(create_method("posterize", classes, bits=2), ds, tmp_path / "p", ratio=2, batch_size=3,
                   progress=False)
    assert again.written == 0 and again.existing == 32  # resumes like every method
    with pytest.raises(ValueError, match="bits must be"):
        create_method("posterize", classes, bits=9)
