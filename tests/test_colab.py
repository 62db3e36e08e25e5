"""``python -m gifkit.experiments.colab`` takes its settings as flags (the stages themselves: test_real_layouts)."""
import pytest

from gifkit.experiments import colab


def test_flags_reach_run_colab(monkeypatch, capsys):
    seen = {}
    monkeypatch.setattr(colab, "run_colab", lambda out, **kw: seen.update(out=out, **kw) or {"ok": 1})
    assert colab.main(["OUT", "--profile", "smoke", "--data", "smoke", "--classes", "3", "--seeds-per-class", "2",
                       "--test-per-class", "4", "--ratio", "2", "--arms", "gif-sd", "--device", "cpu",
                       "--no-download", "--no-progress"]) == 0
    assert seen == {"out": "OUT", "profile": "smoke", "data": "smoke", "n_classes": 3, "seeds_per_class": 2,
                    "test_per_class": 4, "ratio": 2, "arms": ("gif-sd",), "device": "cpu", "download": False,
                    "progress": False}
    assert '"ok": 1' in capsys.readouterr().out
    colab.main([])
    assert seen["out"] is None and seen["n_classes"] == 10 and seen["seeds_per_class"] == 5 and seen["download"]
    assert seen["arms"] == ("sd", "gif-sd") and seen["ratio"] is None and seen["profile"] == "colab"


@pytest.mark.parametrize("flag", ["--classes", "--seeds-per-class", "--ratio"])
def test_non_positive_counts_are_refused(flag, capsys):
    with pytest.raises(SystemExit) as e:
        colab.main([flag, "0"])
    assert e.value.code == 2 and "must be >= 1" in capsys.readouterr().err
