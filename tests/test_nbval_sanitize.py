"""notebooks/nbval_sanitize.cfg, the file `make nbval` gives strict nbval: it must replace what differs between two
correct runs of a notebook (date, machine, wall times, timings, output paths) and nothing else."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_the_sanitize_file_normalises_what_differs_between_runs_and_nothing_else():
    nbval = pytest.importorskip("nbval.plugin", reason="nbval (the dev extra) is not installed")
    text = (ROOT / "notebooks" / "nbval_sanitize.cfg").read_text()
    pairs = nbval.get_sanitize_patterns(text)
    assert len(pairs) == len(re.findall(r"(?m)^regex: ", text))  # a pair whose lines are not adjacent is lost

    def sanitize(s):
        for regex, replace in pairs:
            s = re.sub(regex, replace, s)
        return s

    live = ("profile: smoke (tiny)\ndate: 2026-12-03 09:08 UTC\nmachine: Linux x86_64, 16 CPU cores, a GPU\n"
            "wall time: printed by the last cell when the run ends\n"
            "expansion in /home/me/gifkit/results/smoke/02/expanded: 40 written\n"
            "10.7 s, 0.268 s per written image (prior 8.1 s, guidance 1.8 s)\n"
            "wall time of this run: 2.1 min (profile smoke, 2026-12-03 09:08 UTC, Linux)\n")
    committed = ("profile: smoke (tiny)\ndate: 2026-12-01 02:38 UTC\nmachine: Linux x86_64, 2 CPU cores\n"
                 "wall time: 13 s (the whole notebook)\nparameters given to this run: ratio=5\n"
                 "expansion in results/smoke/02/expanded: 40 written\n"
                 "2.2 s, 0.055 s per written image (prior 1.7 s, guidance 0.3 s)\n"
                 "wall time of this run: 6 s (profile smoke, 2026-12-01 02:38 UTC, Linux)\n")
    assert sanitize(live) == sanitize(committed)
    # a table column padded to a wider or narrower duration (pandas right-aligns: the padding is on the left)
    assert sanitize("4  time for 10k images   80 s       132 s   smoke") == \
        sanitize("4  time for 10k images   80 s        79 s   smoke")
    kept = "S_inf = 0.99428 by hand; 40 images from 8 seeds; eps = 0.8; 2 CPU; <Figure size 900x300 with 2 Axes>"
    assert sanitize(kept) == kept
