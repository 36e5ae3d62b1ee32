"""The report's figures as PNG bytes (matplotlib's Agg canvas; pyplot's global state is never used).

Lengths go on a log2 axis labelled 4K, 8K, ...; a run's training length is a dashed vertical line in
the run's colour. PNGs carry no timestamp or software tag, so equal data give equal bytes.
"""

from __future__ import annotations

import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from reports.aggregate import RunSummary
from reports.depths import DepthGrid
from reports.tables import length_label

COST_PANELS = (
    ("prefill_tokens_per_s", "prefill tokens/s", 1.0),
    ("decode_ms_per_token", "decode ms/token", 1.0),
    ("peak_memory_bytes", "peak memory (GiB)", 1.0 / 2**30),
)


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return buf.getvalue()


def _length_axis(ax, lengths: list[int]) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(lengths)
    ax.set_xticklabels([length_label(n) for n in lengths])
    ax.minorticks_off()
    ax.set_xlabel("context length (tokens)")


def _mark_train(ax, train_length: int | None, color, label: str) -> None:
    if train_length is not None:
        ax.axvline(train_length, color=color, linestyle="--", linewidth=1, label=f"{label} train length")


def average_curve_png(runs: list[RunSummary], threshold: float) -> bytes:
    """RULER average vs length, one line per run with its 95% CI band and training length."""
    fig = Figure(figsize=(7, 4.2))
    ax = fig.add_subplot()
    all_lengths = sorted({n for r in runs for n in r.lengths} | {r.train_length for r in runs if r.train_length})
    for i, run in enumerate(runs):
        color = f"C{i % 10}"
        lengths = sorted(run.averages)
        avgs = [run.averages[n] for n in lengths]
        ax.plot(lengths, [a.score for a in avgs], marker="o", color=color, label=run.label)
        ax.fill_between(lengths, [a.ci_low for a in avgs], [a.ci_high for a in avgs], color=color, alpha=0.2)
        _mark_train(ax, run.train_length, color, run.label)
    ax.axhline(threshold, color="gray", linestyle=":", linewidth=1, label=f"threshold {threshold:g}")
    _length_axis(ax, all_lengths)
    ax.set_ylim(0, 100)
    ax.set_ylabel("RULER average score")
    ax.set_title("Average score vs context length (95% bootstrap CI)")
    ax.legend(fontsize="small", loc="lower left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def _heatmap(rows: list[str], cols: list[str], values: np.ndarray, title: str, ylabel: str) -> bytes:
    """values: (len(rows), len(cols)) scores in percent, NaN where there is no data."""
    fig = Figure(figsize=(1.2 + 0.9 * len(cols), 1.2 + 0.38 * len(rows)))
    ax = fig.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(values), cmap="RdYlGn", vmin=0, vmax=100, aspect="auto")
    ax.set_xticks(range(len(cols)), cols)
    ax.set_yticks(range(len(rows)), rows)
    for (i, j), v in np.ndenumerate(values):
        if not np.isnan(v):
            ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=7)
    ax.set_xlabel("context length (tokens)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize="medium")
    fig.colorbar(image, ax=ax, label="score")
    fig.tight_layout()
    return _png(fig)


def task_heatmap_png(run: RunSummary) -> bytes:
    """Task x length scores of one run; the training length's column is marked."""
    lengths = run.lengths
    values = np.array(
        [[run.cells[t, n].score if (t, n) in run.cells else np.nan for n in lengths] for t in run.tasks]
    )
    cols = [length_label(n) + ("\n(train)" if n == run.train_length else "") for n in lengths]
    return _heatmap(run.tasks, cols, values, f"{run.label}: score per task and length", "task")


def depth_heatmap_png(label: str, grid: DepthGrid, train_length: int | None) -> bytes:
    """Needle depth x length scores (NIAH tasks pooled) of one run."""
    cols = [length_label(n) + ("\n(train)" if n == train_length else "") for n in grid.lengths]
    return _heatmap(
        grid.row_labels, cols, 100.0 * grid.values, f"{label}: needle retrieval by depth and length", "needle depth"
    )


def cost_png(runs: list[RunSummary], costs: dict[str, dict[int, dict[str, float]]]) -> bytes:
    """Prefill tokens/s, decode ms/token and peak memory vs length; `costs` by run label (runs that have them).

    Each run keeps its colour from the average curve (its position in `runs`).
    """
    fig = Figure(figsize=(12, 3.6))
    axes = fig.subplots(1, len(COST_PANELS))
    all_lengths = sorted({n for per_length in costs.values() for n in per_length})
    for ax, (key, title, scale) in zip(axes, COST_PANELS):
        for i, run in enumerate(runs):
            points = sorted((n, c[key] * scale) for n, c in costs.get(run.label, {}).items() if key in c)
            if points:
                ax.plot(*zip(*points), marker="o", color=f"C{i % 10}", label=run.label)
                _mark_train(ax, run.train_length, f"C{i % 10}", run.label)
        _length_axis(ax, all_lengths)
        ax.set_title(title, fontsize="medium")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    fig.tight_layout()
    return _png(fig)
