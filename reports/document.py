"""What the report says, in order, as a list of blocks that render.py turns into Markdown or HTML.

Order: how to read it (definitions, the haystack); the average-vs-length figure and the per-task
curves; per run its facts, task x length table, task heatmap and needle depth heatmap; the comparison
of runs over what they share; the cost figure when run.json has costs; the provenance of every run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from matplotlib.figure import Figure

from reports.aggregate import RULER_TASK_COUNT, Comparison, RunSummary, effective_length_definition
from reports.depths import DepthGrid
from reports.plots import average_curve, cost_figure, depth_heatmap, figure_files, task_curves, task_heatmap
from reports.provenance import RULER_HAYSTACK_FILE, Provenance
from reports.tables import (
    FEW_TASKS_MARK,
    Table,
    comparison_cells_table,
    comparison_table,
    few_tasks_note,
    length_label,
    provenance_table,
    run_facts,
    run_table,
)


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
    """A figure: written to OUT/<stem>.png, .pdf and .svg (`files`: format -> bytes); Markdown links
    them, HTML embeds the PNG (base64)."""

    caption: str
    stem: str
    files: dict[str, bytes]

    @classmethod
    def of(cls, caption: str, stem: str, fig: Figure) -> "Image":
        return cls(caption, stem, figure_files(fig))

    @property
    def filename(self) -> str:
        return f"{self.stem}.png"

    @property
    def png(self) -> bytes:
        return self.files["png"]


Block = Heading | Paragraph | Bullets | TableBlock | Image


def slug(label: str) -> str:
    """A file-name-safe form of a run label ('runs/a b' -> 'runs_a_b')."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("._") or "run"


def _reading(threshold: float, provenances: list[Provenance]) -> list[Block]:
    """How to read the report: the definitions, and which haystack the scores rest on."""
    blocks: list[Block] = [
        Paragraph(
            "Scores are RULER's (0-100) with 95% percentile-bootstrap CIs over samples. The average at a length "
            "is the unweighted mean of the task scores there; Avg. is the mean over lengths; the effective "
            f"length is {effective_length_definition(threshold)} (every tested length up to it exceeds it). "
            f"RULER calibrated {threshold:g} on the average over its {RULER_TASK_COUNT} tasks: an average over "
            f"fewer is marked {FEW_TASKS_MARK}."
        )
    ]
    if not all(p.is_rulers_haystack for p in provenances):
        blocks.append(
            Paragraph(
                "Haystack: the essay-haystack tasks of a run that did not use RULER's Paul Graham essays "
                f"(see each run's facts) are not comparable with published RULER numbers; evaluate with "
                f"--haystack {RULER_HAYSTACK_FILE} for that."
            )
        )
    return blocks


def _run_blocks(run: RunSummary, provenance: Provenance, grid: DepthGrid | None, threshold: float, name: str) -> list[Block]:
    blocks: list[Block] = [
        Heading(2, f"Run: {run.label}"),
        Bullets(tuple(run_facts(run, provenance, threshold))),
        TableBlock(run_table(run)),
        Image.of(f"{run.label}: score per task and length", f"heatmap_{name}", task_heatmap(run)),
    ]
    if grid is not None:
        blocks.append(
            Image.of(
                f"{run.label}: needle retrieval by depth and length (NIAH tasks pooled)",
                f"depth_{name}",
                depth_heatmap(run.label, grid, run.train_length),
            )
        )
    return blocks


def _comparison_blocks(comparison: Comparison, runs: list[RunSummary], threshold: float) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Comparison")]
    if not comparison.tasks or not comparison.lengths:
        return blocks + [Paragraph("The runs share no task at a common length; there is nothing to compare.")]
    lengths = ", ".join(length_label(n) for n in comparison.lengths)
    blocks += [
        Paragraph(
            f"Over the {len(comparison.tasks)} tasks every run has at every common length ({lengths}): "
            + ", ".join(comparison.tasks)
            + f". Differences are from {runs[0].label}, with the bootstrap CI of the difference."
        ),
        TableBlock(comparison_table(comparison, runs)),
    ]
    if len(comparison.tasks) < RULER_TASK_COUNT:
        blocks.append(Paragraph(few_tasks_note(len(comparison.tasks), threshold) + "."))
    blocks += [Heading(3, "Per task and length"), TableBlock(comparison_cells_table(comparison, runs))]
    return blocks


def build_document(
    runs: list[RunSummary],
    provenances: list[Provenance],
    grids: dict[str, DepthGrid | None],
    costs: dict[str, dict[int, dict[str, float]]],
    comparison: Comparison | None,
    threshold: float,
) -> list[Block]:
    """The whole report; `provenances` in the order of `runs`; `grids` and `costs` keyed by run label
    (costs only for runs that have them)."""
    names = {r.label: slug(r.label) for r in runs}
    if len(set(names.values())) < len(names):
        names = {r.label: f"{i}_{slug(r.label)}" for i, r in enumerate(runs)}
    blocks: list[Block] = [
        Heading(1, "RULER length generalization"),
        *_reading(threshold, provenances),
        Image.of("Average score vs context length", "average_vs_length", average_curve(runs, threshold)),
        Image.of("Score per task vs context length", "tasks_vs_length", task_curves(runs)),
    ]
    for run, provenance in zip(runs, provenances):
        blocks += _run_blocks(run, provenance, grids.get(run.label), threshold, names[run.label])
    if comparison is not None:
        blocks += _comparison_blocks(comparison, runs, threshold)
    if costs:
        blocks += [
            Heading(2, "Cost"),
            Image.of("Cost vs context length (from run.json)", "cost_vs_length", cost_figure(runs, costs)),
        ]
    blocks += [Heading(2, "Provenance"), TableBlock(provenance_table(runs, provenances))]
    return blocks
