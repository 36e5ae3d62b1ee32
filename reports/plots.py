"""The report's figures (matplotlib Figures on no canvas of pyplot: its global state is never used).

Made for a paper: each figure is written as PNG (FIGURE_DPI), PDF and SVG, with the same bytes for the
same data (no timestamps, a fixed SVG id salt). Runs keep one style everywhere, by their position in
the report: a colour from the Okabe-Ito palette (colourblind-safe) plus a marker and a line style of
their own, so lines stay apart in greyscale. Heatmaps use cividis (colourblind-safe, monotone in
lightness). Lengths go on a log2 axis labelled 4K, 8K, ...; the axis spans the tested lengths only: a
training length inside that range is a vertical line, one outside it is named in the legend, and all
runs' training lengths share one legend entry. Layouts are constrained, so titles and legends are
never clipped.
"""

from __future__ import annotations

import io
import math

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from reports.aggregate import RunSummary
from reports.depths import DepthGrid
from reports.tables import length_label

FIGURE_DPI = 200
FORMATS = ("png", "pdf", "svg")
HEATMAP_CMAP = "cividis"
# Okabe & Ito (2008), colourblind-safe; markers and dash patterns keep runs apart without colour.
COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)), (0, (8, 2)), (0, (1, 1)))
TRAIN_STYLE = {"color": "0.25", "linestyle": (0, (1, 2)), "linewidth": 1.3}
THRESHOLD_STYLE = {"color": "0.45", "linestyle": (0, (6, 3)), "linewidth": 0.9}
COST_PANELS = (
    ("prefill_tokens_per_s", "prefill tokens/s", 1.0),
    ("decode_ms_per_token", "decode ms/token", 1.0),
    ("peak_memory_bytes", "peak memory (GiB)", 1.0 / 2**30),
)


def run_style(i: int) -> dict:
    """Colour, marker and line style of the run at position `i` of the report."""
    return {
        "color": COLORS[i % len(COLORS)],
        "marker": MARKERS[i % len(MARKERS)],
        "linestyle": LINESTYLES[i % len(LINESTYLES)],
    }


def figure_files(fig: Figure) -> dict[str, bytes]:
    """The figure as {"png": ..., "pdf": ..., "svg": ...} bytes, free of timestamps."""
    FigureCanvasAgg(fig)
    metadata = {"png": {"Software": None}, "pdf": {"CreationDate": None}, "svg": {"Date": None}}
    files = {}
    with matplotlib.rc_context({"svg.hashsalt": "rattn-ruler"}):
        for fmt in FORMATS:
            buf = io.BytesIO()
            fig.savefig(buf, format=fmt, dpi=FIGURE_DPI, metadata=metadata[fmt], bbox_inches="tight", pad_inches=0.05)
            files[fmt] = buf.getvalue()
    return files


def _length_axis(ax, lengths: list[int]) -> None:
    """A log2 axis over exactly the tested `lengths` (a little margin each side)."""
    ax.set_xscale("log", base=2)
    ax.set_xticks(lengths)
    ax.set_xticklabels([length_label(n) for n in lengths])
    ax.minorticks_off()
    ax.set_xlim(lengths[0] / 2**0.3, lengths[-1] * 2**0.3)
    ax.set_xlabel("context length (tokens)")


def _mark_training(ax, runs: list[RunSummary], tested: list[int], annotate: bool = True) -> Line2D | None:
    """Vertical lines at the runs' training lengths inside the tested range (named after their runs
    when runs differ and `annotate`); returns the one legend handle for all of them, which also names
    any training length outside the range (not drawn, so the data keep the axis), or None when no run
    has a training length."""
    by_length: dict[int, list[str]] = {}
    for run in runs:
        if run.train_length is not None:
            by_length.setdefault(run.train_length, []).append(run.label)
    if not by_length:
        return None
    several = len(by_length) > 1
    outside = []
    for length, labels in sorted(by_length.items()):
        who = f" ({', '.join(labels)})" if several else ""
        if tested[0] <= length <= tested[-1]:
            ax.axvline(length, **TRAIN_STYLE)
            if several and annotate:
                ax.annotate(who.strip(" ()"), (length, 0.99), xycoords=("data", "axes fraction"), rotation=90,
                            ha="right", va="top", fontsize=7, color=TRAIN_STYLE["color"])
        else:
            outside.append(f"{length_label(length)}{who}")
    label = "training length" + ("; outside the tested range: " + ", ".join(outside) if outside else "")
    return Line2D([], [], **TRAIN_STYLE, label=label)


def _tested_lengths(runs: list[RunSummary]) -> list[int]:
    return sorted({n for r in runs for n in r.lengths})


def average_curve(runs: list[RunSummary], threshold: float) -> Figure:
    """RULER average vs length, one line per run with its 95% CI band; training lengths and threshold."""
    fig = Figure(figsize=(7.5, 4.2), layout="constrained")
    ax = fig.add_subplot()
    handles = []
    for i, run in enumerate(runs):
        style = run_style(i)
        lengths = sorted(run.averages)
        avgs = [run.averages[n] for n in lengths]
        (line,) = ax.plot(lengths, [a.score for a in avgs], label=run.label, markersize=5, **style)
        ax.fill_between(lengths, [a.ci_low for a in avgs], [a.ci_high for a in avgs], color=style["color"], alpha=0.15)
        handles.append(line)
    tested = _tested_lengths(runs)
    train = _mark_training(ax, runs, tested)
    ax.axhline(threshold, **THRESHOLD_STYLE)
    handles += [train] if train else []
    handles.append(Line2D([], [], **THRESHOLD_STYLE, label=f"threshold {threshold:g}"))
    _length_axis(ax, tested)
    ax.set_ylim(0, 100)
    ax.set_ylabel("RULER average score")
    ax.set_title("Average score vs context length (95% bootstrap CI)")
    ax.grid(alpha=0.3)
    ax.legend(handles=handles, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return fig


def task_curves(runs: list[RunSummary]) -> Figure:
    """Small multiples: one panel per task (all runs' tasks), score vs length per run with its CI band."""
    tasks = sorted({t for r in runs for t in r.tasks})
    ncols = min(4, len(tasks))
    nrows = math.ceil(len(tasks) / ncols)
    fig = Figure(figsize=(2.9 * ncols + 0.4, 2.4 * nrows + 0.9), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, sharey=True, squeeze=False)).ravel()
    tested = _tested_lengths(runs)
    handles: dict[str, object] = {}
    train = None
    for ax, task in zip(axes, tasks):
        for i, run in enumerate(runs):
            cells = [run.cells[task, n] for n in run.lengths if (task, n) in run.cells]
            if not cells:
                continue
            style = run_style(i)
            lengths = [c.length for c in cells]
            (line,) = ax.plot(lengths, [c.score for c in cells], label=run.label, markersize=4, **style)
            ax.fill_between(lengths, [c.ci[0] for c in cells], [c.ci[1] for c in cells], color=style["color"], alpha=0.12)
            handles.setdefault(run.label, line)
        train = _mark_training(ax, runs, tested, annotate=False)
        _length_axis(ax, tested)
        ax.set_ylim(-3, 103)
        ax.set_title(task, fontsize="medium")
        ax.grid(alpha=0.3)
    for ax in axes[len(tasks):]:
        ax.set_visible(False)
    for ax in axes[::ncols]:
        ax.set_ylabel("score")
    fig.suptitle("Score per task vs context length (95% bootstrap CI)")
    legend = [handles[r.label] for r in runs if r.label in handles] + ([train] if train else [])
    fig.legend(handles=legend, loc="outside lower center", ncols=min(4, len(legend)), fontsize="small")
    return fig


def _heatmap(rows: list[str], cols: list[str], values: np.ndarray, title: str, ylabel: str) -> Figure:
    """values: (len(rows), len(cols)) scores in percent, NaN where there is no data (left blank)."""
    fig = Figure(figsize=(2.2 + 0.9 * len(cols), 1.4 + 0.38 * len(rows)), layout="constrained")
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps[HEATMAP_CMAP]
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=0, vmax=100, aspect="auto")
    ax.set_xticks(range(len(cols)), cols)
    ax.set_yticks(range(len(rows)), rows)
    for (i, j), v in np.ndenumerate(values):
        if not np.isnan(v):
            r, g, b, _ = cmap(v / 100.0)
            dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
            ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=7, color="white" if dark else "black")
    ax.set_xlabel("context length (tokens)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize="medium")
    fig.colorbar(image, ax=ax, label="score")
    return fig


def task_heatmap(run: RunSummary) -> Figure:
    """Task x length scores of one run; the training length's column is marked."""
    lengths = run.lengths
    values = np.array(
        [[run.cells[t, n].score if (t, n) in run.cells else np.nan for n in lengths] for t in run.tasks]
    )
    cols = [length_label(n) + ("\n(train)" if n == run.train_length else "") for n in lengths]
    return _heatmap(run.tasks, cols, values, f"{run.label}: score per task and length", "task")


def depth_heatmap(label: str, grid: DepthGrid, train_length: int | None) -> Figure:
    """Needle depth x length scores (NIAH tasks pooled) of one run."""
    cols = [length_label(n) + ("\n(train)" if n == train_length else "") for n in grid.lengths]
    return _heatmap(
        grid.row_labels, cols, 100.0 * grid.values, f"{label}: needle retrieval by depth and length", "needle depth"
    )


def cost_figure(runs: list[RunSummary], costs: dict[str, dict[int, dict[str, float]]]) -> Figure:
    """Prefill tokens/s, decode ms/token and peak memory vs length; `costs` by run label (runs that have them)."""
    fig = Figure(figsize=(12, 3.8), layout="constrained")
    axes = fig.subplots(1, len(COST_PANELS))
    tested = sorted({n for per_length in costs.values() for n in per_length})
    with_costs = [r for r in runs if r.label in costs]
    handles: dict[str, object] = {}
    train = None
    for ax, (key, title, scale) in zip(axes, COST_PANELS):
        for i, run in enumerate(runs):
            points = sorted((n, c[key] * scale) for n, c in costs.get(run.label, {}).items() if key in c)
            if points:
                (line,) = ax.plot(*zip(*points), label=run.label, markersize=5, **run_style(i))
                handles.setdefault(run.label, line)
        train = _mark_training(ax, with_costs, tested)
        _length_axis(ax, tested)
        ax.set_title(title, fontsize="medium")
        ax.grid(alpha=0.3)
    fig.suptitle("Cost vs context length (from run.json)")
    legend = [handles[r.label] for r in runs if r.label in handles] + ([train] if train else [])
    fig.legend(handles=legend, loc="outside lower center", ncols=min(4, len(legend)), fontsize="small")
    return fig
