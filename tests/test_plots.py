"""Figures drawn by code, read back from their Axes: the pipeline picture of the method notebooks (what is drawn
where) and the paired-difference plot (every point and interval against its row)."""
import math

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgba
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
from matplotlib.path import Path as MplPath

from gifkit.experiments.plots import difference_plot, pipeline_figure, pipeline_steps

matplotlib.use("Agg")


def box_of(patch):
    return patch.get_x(), patch.get_y(), patch.get_x() + patch.get_width(), patch.get_y() + patch.get_height()


def near(point, box, margin=0.06):
    x, y = point
    x0, y0, x1, y1 = box
    return x0 - margin <= x <= x1 + margin and y0 - margin <= y <= y1 + margin


def arrow_ends(arrow):
    """Tail and tip of an arrow in data coordinates: its first vertex and the vertex farthest from it."""
    path = arrow.get_path()
    v = path.vertices if path.codes is None else path.vertices[path.codes != MplPath.CLOSEPOLY]
    tip = v[np.argmax(((v - v[0]) ** 2).sum(1))]
    return tuple(v[0]), tuple(tip)


def test_pipeline_figure_draws_every_step_in_its_box_along_a_u_with_the_loop(tmp_path):
    steps = pipeline_steps("gif-dalle")  # a prior's own steps: what the figure shows is what it was given
    fig = pipeline_figure(tmp_path / "pipeline.png", steps=steps)
    ax = fig.axes[0]
    boxes = [box_of(p) for p in ax.patches if isinstance(p, FancyBboxPatch)]
    centres = [((x0 + x1) / 2, (y0 + y1) / 2) for x0, y0, x1, y1 in boxes]
    assert len(boxes) == len(steps) == 10
    # a U: the first five left to right on the top row, the last five right to left below, column by column
    top, bottom = centres[:5], centres[5:]
    assert len({y for _, y in top}) == 1 and len({y for _, y in bottom}) == 1 and top[0][1] > bottom[0][1]
    assert [x for x, _ in top] == sorted(x for x, _ in top) and [x for x, _ in bottom] == sorted(
        (x for x, _ in bottom), reverse=True)
    assert [x for x, _ in bottom] == [x for x, _ in reversed(top)]
    # inside each box: its step's title above its description, and nothing else
    texts = [t for t in ax.texts if t.get_transform() == ax.transData]
    inside = [sorted((t for t in texts if near(t.get_position(), box, 0)), key=lambda t: -t.get_position()[1])
              for box in boxes]
    assert [[t.get_text() for t in ts] for ts in inside] == [[title, detail] for title, detail in steps]
    # the gradient path (steps 4-6: no decode for GIF-DALLE, CLIP, score) is coloured apart from the rest
    colours = [to_rgba(p.get_facecolor()) for p in ax.patches if isinstance(p, FancyBboxPatch)]
    assert len({colours[i] for i in (3, 4, 5)}) == 1 and colours[3] not in {colours[i] for i in (0, 1, 2, 6, 7, 8, 9)}
    # one arrow from each step to the next, then the update's dashed arrow back to the perturbations
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    assert len(arrows) == len(steps)
    for i, arrow in enumerate(arrows[:-1]):
        tail, tip = arrow_ends(arrow)
        assert near(tail, boxes[i]) and near(tip, boxes[i + 1]) and not near(tip, boxes[i]), i
    loop = arrows[-1]
    tail, tip = arrow_ends(loop)
    assert loop.get_linestyle() == "--" and near(tail, boxes[6]) and near(tip, boxes[2])  # update -> perturbations
    assert (tmp_path / "pipeline.png").stat().st_size > 10_000


def test_difference_plot_draws_each_row_at_its_mean_and_interval():
    table = pd.DataFrame({"method": ["b", "c", "d", "e"], "control": ["a"] * 4,
                          "mean_diff": [1.1, 0.3, -2.0, 0.5], "ci_low": [0.2, -1.0, -3.5, math.nan],
                          "ci_high": [2.0, 1.6, -0.5, math.nan]})
    ax = difference_plot(table, title="t")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["b - a", "c - a", "d - a", "e - a"]
    assert list(ax.get_yticks()) == [0, 1, 2, 3] and ax.get_ylim()[0] > ax.get_ylim()[1]  # first row on top
    lines = [(list(line.get_xdata()), list(line.get_ydata()), line) for line in ax.lines]
    intervals = [(x, y) for x, y, line in lines if len(x) == 2 and y[0] == y[1] and line.get_marker() in ("None", "")]
    assert intervals == [([0.2, 2.0], [0, 0]), ([-1.0, 1.6], [1, 1]), ([-3.5, -0.5], [2, 2])]  # none for e (NaN)
    points = {y[0]: (x[0], line.get_markerfacecolor()) for x, y, line in lines if line.get_marker() == "o"}
    assert {row: x for row, (x, _) in points.items()} == {0: 1.1, 1: 0.3, 2: -2.0, 3: 0.5}
    filled = {row for row, (_, colour) in points.items() if to_rgba(colour) != to_rgba("white")}
    assert filled == {0, 2}  # the intervals that miss 0: b higher, d lower; c holds 0, e has no interval
    zero = [line for x, y, line in lines if list(x) == [0, 0]]
    assert len(zero) == 1 and zero[0].get_linestyle() == "--"
    assert ax.get_title() == "t"


@pytest.fixture(autouse=True)
def close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def test_mini_figure_draws_each_committed_paired_difference_on_the_row_of_its_arm(tmp_path):
    """results/mini/mini.png, drawn again from the committed CSV files: the middle panel's point and interval on
    every row are the ones paired.csv holds for the arm and control that row's label names."""
    import shutil
    from pathlib import Path

    from gifkit.experiments.mini_report import redraw

    committed = Path(__file__).resolve().parents[1] / "results" / "mini"
    for name in ("config.json", "summary.csv", "runs.csv", "paired.csv", "diagnostics.csv"):
        shutil.copy(committed / name, tmp_path / name)
    paired = pd.read_csv(committed / "paired.csv")
    assert len(paired) == 14 and "original" in set(paired["control"])
    ax = redraw(tmp_path, results=False).axes[1]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == [f"{a} - {c}" for a, c in zip(paired["arm"], paired["control"])]
    rows = {label: i for i, label in enumerate(labels)}
    points = {line.get_ydata()[0]: line.get_xdata()[0] for line in ax.lines if line.get_marker() == "o"}
    intervals = {line.get_ydata()[0]: tuple(line.get_xdata()) for line in ax.lines
                 if line.get_marker() in ("None", "") and len(line.get_xdata()) == 2
                 and line.get_ydata()[0] == line.get_ydata()[1]}
    for _, r in paired.iterrows():
        row = rows[f"{r['arm']} - {r['control']}"]
        assert points[row] == pytest.approx(r["mean_diff"]) and intervals[row] == pytest.approx((r["ci_low"], r["ci_high"]))
    assert points[rows["randaugment - original"]] == pytest.approx(1.604)  # RandAugment's +1.60 on its own row
    assert (tmp_path / "mini.png").stat().st_size > 0


def test_mini_figure_with_one_seed_draws_no_empty_panel_and_says_what_one_seed_shows(tmp_path):
    """results/mini/quick (one seed, no paired differences): the middle panel is the sentence about one seed."""
    import shutil
    from pathlib import Path

    from gifkit.experiments.mini_report import ONE_SEED, redraw

    committed = Path(__file__).resolve().parents[1] / "results" / "mini" / "quick"
    for name in ("config.json", "summary.csv", "runs.csv", "diagnostics.csv", "guidance_metadata.csv", "timings.csv"):
        shutil.copy(committed / name, tmp_path / name)
    ax = redraw(tmp_path).axes[1]
    assert not ax.lines and not ax.axison
    assert " ".join(t.get_text() for t in ax.texts).split() == ONE_SEED.split()
    assert ONE_SEED in (tmp_path / "RESULTS.md").read_text()
    assert "results/mini/RESULTS.md" in ONE_SEED and (committed.parent / "RESULTS.md").is_file()


def test_expansion_grid_rows_are_as_long_as_the_variants_a_seed_has(tmp_path):
    """A selection keeps 2 of candidates numbered 0-19 per seed: each row is the seed and its 2 variants, no black
    tile (the grid is 3 tiles wide, not 21)."""
    from PIL import Image

    from gifkit.experiments.plots import expansion_grid

    colours = {(0, 3): (250, 0, 0), (0, 17): (0, 250, 0), (1, 5): (0, 0, 250), (1, 19): (250, 250, 0)}
    rows = []
    for (seed, variant), colour in colours.items():
        name = f"c/{seed}_{variant}.png"
        (tmp_path / "c").mkdir(exist_ok=True)
        Image.new("RGB", (8, 8), colour).save(tmp_path / name)
        rows.append(f"{name},{seed},{variant},0")
    (tmp_path / "metadata.csv").write_text("file_name,seed_index,variant,label\n" + "\n".join(rows) + "\n")
    seeds = [(Image.new("RGB", (8, 8), (128, 128, 128)), 0)] * 2
    grid = np.asarray(expansion_grid(seeds, tmp_path, size=10))
    assert grid.shape == (2 + 2 * 12, 2 + 3 * 12, 3)  # 2 rows, 3 columns of 10 px tiles with 2 px padding
    centres = [[tuple(grid[2 + 12 * r + 5, 2 + 12 * c + 5]) for c in range(3)] for r in range(2)]
    assert centres == [[(128, 128, 128), (250, 0, 0), (0, 250, 0)], [(128, 128, 128), (0, 0, 250), (250, 250, 0)]]


def test_class_grid_names_each_group_above_its_columns(tmp_path):
    """The header: "seed" over the first column, each root's name over its own group of variants, nothing over
    the blank separator columns."""
    from PIL import Image

    from gifkit.experiments.plots import class_grid

    roots = {}
    for name, colour in (("randaugment", (200, 0, 0)), ("gif-vae", (0, 0, 200))):
        root = tmp_path / name
        (root / "c").mkdir(parents=True)
        for v in range(2):
            Image.new("RGB", (8, 8), colour).save(root / "c" / f"0_{v}.png")
        (root / "metadata.csv").write_text("file_name,seed_index,variant,label\n" +
                                           "".join(f"c/0_{v}.png,0,{v},0\n" for v in range(2)))
        roots[name] = root
    seeds = [(Image.new("RGB", (8, 8), (90, 90, 90)), 0)]
    plain = np.asarray(class_grid(seeds, roots, 2, size=40, labels=False))
    shown = np.asarray(class_grid(seeds, roots, 2, size=40))
    assert shown.shape[0] == plain.shape[0] + 16 and (shown[16:] == plain).all()  # the grid, under a header
    header = shown[:16].min(axis=(0, 2)) < 128  # columns of the header holding dark (text) pixels
    pitch = 42
    spans = {"seed": (0, 1), "randaugment": (1, 2), "blank": (3, 1), "gif-vae": (4, 2)}
    inked = {k: bool(header[2 + a * pitch: 2 + (a + n) * pitch - 2].any()) for k, (a, n) in spans.items()}
    assert inked == {"seed": True, "randaugment": True, "blank": False, "gif-vae": True}
