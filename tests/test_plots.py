"""Figures drawn by code: the pipeline picture of the method notebooks."""
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from gifkit.experiments.plots import PIPELINE_STEPS, pipeline_figure


def test_pipeline_figure_draws_every_step_in_order_and_the_loop(tmp_path):
    fig = pipeline_figure(tmp_path / "pipeline.png")
    ax = fig.axes[0]
    boxes = [p for p in ax.patches if isinstance(p, FancyBboxPatch)]
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    assert len(boxes) == len(PIPELINE_STEPS) == 10
    assert len(arrows) == len(PIPELINE_STEPS)  # 9 between the steps + the update looping back
    titles = [t.get_text() for t in ax.texts if t.get_text() in {s for s, _ in PIPELINE_STEPS}]
    assert titles == [s for s, _ in PIPELINE_STEPS]
    assert (tmp_path / "pipeline.png").stat().st_size > 10_000
