"""What the report says, in order, as a list of blocks that render.py turns into Markdown or HTML.

Order: the average-vs-length figure; per run its facts, task x length table, task heatmap and needle
depth heatmap; the comparison of runs over what they share; the cost figure when run.json has costs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from reports.aggregate import Comparison, RunSummary
from reports.depths import DepthGrid
from reports.plots import average_curve_png, cost_png, depth_heatmap_png, task_heatmap_png
from reports.tables import Table, comparison_cells_table, comparison_table, length_label, run_facts, run_table


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class TableBlock:
    table: Table


@dataclass(frozen=True)
class Image:
    """A figure: written to OUT/<filename>, linked from Markdown, embedded (base64) in HTML."""

    caption: str
    filename: str
    png: bytes


Block = Heading | Paragraph | Bullets | TableBlock | Image


def slug(label: str) -> str:
    """A file-name-safe form of a run label ('runs/a b' -> 'runs_a_b')."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("._") or "run"


def _run_blocks(run: RunSummary, grid: DepthGrid | None, threshold: float, name: str) -> list[Block]:
    blocks: list[Block] = [
        Heading(2, f"Run: {run.label}"),
        Bullets(tuple(run_facts(run, threshold))),
        TableBlock(run_table(run)),
        Image(f"{run.label}: score per task and length", f"heatmap_{name}.png", task_heatmap_png(run)),
    ]
    if grid is not None:
        blocks.append(
            Image(
                f"{run.label}: needle retrieval by depth and length (NIAH tasks pooled)",
                f"depth_{name}.png",
                depth_heatmap_png(run.label, grid, run.train_length),
            )
        )
    return blocks


def _comparison_blocks(comparison: Comparison, runs: list[RunSummary]) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Comparison")]
    if not comparison.tasks or not comparison.lengths:
        return blocks + [Paragraph("The runs share no task at a common length; there is nothing to compare.")]
    lengths = ", ".join(length_label(n) for n in comparison.lengths)
    blocks += [
        Paragraph(
            f"Over the {len(comparison.tasks)} tasks every run has at every common length ({lengths}): "
            + ", ".join(comparison.tasks)
            + "."
        ),
        TableBlock(comparison_table(comparison)),
        Heading(3, "Per task and length"),
        TableBlock(comparison_cells_table(comparison, runs)),
    ]
    return blocks


def build_document(
    runs: list[RunSummary],
    grids: dict[str, DepthGrid | None],
    costs: dict[str, dict[int, dict[str, float]]],
    comparison: Comparison | None,
    threshold: float,
) -> list[Block]:
    """The whole report; `grids` and `costs` are keyed by run label (costs only for runs that have them)."""
    names = {r.label: slug(r.label) for r in runs}
    if len(set(names.values())) < len(names):
        names = {r.label: f"{i}_{slug(r.label)}" for i, r in enumerate(runs)}
    blocks: list[Block] = [
        Heading(1, "RULER length generalization"),
        Paragraph(
            f"Scores are RULER's (0-100); the average is the unweighted mean of tasks; the effective length is "
            f"the largest length whose average exceeds {threshold:g}. CIs are 95% bootstrap intervals over samples."
        ),
        Image("Average score vs context length", "average_vs_length.png", average_curve_png(runs, threshold)),
    ]
    for run in runs:
        blocks += _run_blocks(run, grids.get(run.label), threshold, names[run.label])
    if comparison is not None:
        blocks += _comparison_blocks(comparison, runs)
    if costs:
        blocks += [
            Heading(2, "Cost"),
            Image("Cost vs context length (from run.json)", "cost_vs_length.png", cost_png(runs, costs)),
        ]
    return blocks
