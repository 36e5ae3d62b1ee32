"""Figures a paper can use: runs apart in greyscale, one training-length entry, an axis the data keep,
colourblind-safe heatmaps, titles inside the saved image, PNG at >= 200 dpi plus PDF and SVG."""

import io
import struct
import xml.etree.ElementTree as ET

import matplotlib.image
import numpy as np
import pytest

from reports.aggregate import summarize
from reports.plots import FIGURE_DPI, average_curve, figure_files, task_curves, task_heatmap
from reports.scoring import Cell

LENGTHS = (4096, 8192, 16384)


def _run(label: str, train_length: int | None, scores: dict[str, tuple[float, ...]]):
    """A RunSummary whose cells score `scores[task][i]` (in [0, 1]) at LENGTHS[i], 4 samples each."""
    cells = {
        (task, n): Cell(task, n, np.full(4, s), np.full(50, s)) for task, row in scores.items() for n, s in zip(LENGTHS, row)
    }
    return summarize(label, None, train_length, cells, 85.6)


@pytest.fixture(scope="module")
def runs():
    return [
        _run("RAttention", 4096, {"niah_single_1": (1.0, 0.9, 0.8), "vt": (0.9, 0.7, 0.5)}),
        _run("SWA", 2048, {"niah_single_1": (1.0, 0.4, 0.1), "vt": (0.8, 0.3, 0.0)}),
        _run("full attention", 8192, {"niah_single_1": (1.0, 1.0, 0.2)}),
    ]


def _run_lines(ax):
    return [line for line in ax.get_lines() if not line.get_label().startswith("_") and line.get_xdata().size > 1]


@pytest.mark.parametrize("make", [average_curve, task_curves], ids=["average", "per-task"])
def test_runs_differ_in_marker_and_line_style(runs, make):
    fig = make(runs, 85.6) if make is average_curve else make(runs)
    lines = _run_lines(fig.axes[0])
    assert len(lines) == 3
    assert len({line.get_marker() for line in lines}) == 3
    assert len({str(line.get_linestyle()) for line in lines}) == 3


@pytest.mark.parametrize("make", [average_curve, task_curves], ids=["average", "per-task"])
def test_one_training_length_legend_entry(runs, make):
    fig = make(runs, 85.6) if make is average_curve else make(runs)
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]
    texts = [t.get_text() for legend in legends for t in legend.get_texts()]
    assert sum("training length" in t for t in texts) == 1, texts
    assert {"RAttention", "SWA", "full attention"} <= set(texts)


def test_a_training_length_outside_the_tested_range_keeps_the_axis(runs):
    fig = average_curve(runs, 85.6)
    low, high = fig.axes[0].get_xlim()
    assert 2048 < low < 4096 and 16384 < high < 32768  # SWA's 2K does not stretch the axis
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any("outside the tested range: 2K (SWA)" in t for t in legend), legend


def test_heatmaps_use_a_colourblind_safe_colour_map(runs):
    fig = task_heatmap(runs[0])
    assert fig.axes[0].get_images()[0].get_cmap().name in ("cividis", "viridis")


def _png_dpi(png: bytes) -> float:
    at = png.index(b"pHYs") + 4
    per_metre, _, unit = struct.unpack(">IIB", png[at : at + 9])
    assert unit == 1
    return per_metre * 0.0254


def test_each_figure_is_png_at_200_dpi_pdf_and_svg_that_parse(runs):
    files = figure_files(task_curves(runs))
    assert set(files) == {"png", "pdf", "svg"}
    assert FIGURE_DPI >= 200 and round(_png_dpi(files["png"])) == FIGURE_DPI
    assert matplotlib.image.imread(io.BytesIO(files["png"]), format="png").shape[1] > 1000
    assert files["pdf"].startswith(b"%PDF-") and files["pdf"].rstrip().endswith(b"%%EOF")
    root = ET.fromstring(files["svg"])
    assert root.tag.endswith("svg")
    assert "full attention" in files["svg"].decode()  # legend text (kept as a comment beside its glyphs)


def test_a_long_title_is_inside_the_saved_image():
    run = _run("a very long run label that is wider than a one-column heatmap", None, {"vt": (0.5, 0.5, 0.5)})
    fig = task_heatmap(run)
    png = figure_files(fig)["png"]
    width_px = matplotlib.image.imread(io.BytesIO(png), format="png").shape[1]
    title_px = fig.axes[0].title.get_window_extent().width * FIGURE_DPI / fig.dpi
    assert width_px >= title_px


def test_figures_are_deterministic(runs):
    assert figure_files(average_curve(runs, 85.6)) == figure_files(average_curve(runs, 85.6))
