"""The report's tables as plain data (rendered by markdown.py and html.py) and summary.csv.

Lengths print as RULER's paper does (4096 -> "4K"); the run's training length is marked "(train)".
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from reports.aggregate import Comparison, RunSummary

CSV_COLUMNS = ("run", "task", "length", "n", "score", "ci_low", "ci_high")
MISSING = "-"


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


def length_label(length: int) -> str:
    """4096 -> '4K', 131072 -> '128K', 1048576 -> '1M'; other counts as digits."""
    if length % (1 << 20) == 0:
        return f"{length >> 20}M"
    if length % 1024 == 0:
        return f"{length >> 10}K"
    return str(length)


def _length_header(length: int, train_length: int | None) -> str:
    return length_label(length) + (" (train)" if length == train_length else "")


def _score(value: float | None) -> str:
    return MISSING if value is None else f"{value:.2f}"


def run_table(run: RunSummary) -> Table:
    """Task rows x length columns of scores, then the average row and its 95% CI row."""
    lengths = run.lengths
    header = ("task", *(_length_header(n, run.train_length) for n in lengths))
    rows = [
        (task, *(_score(run.cells[task, n].score if (task, n) in run.cells else None) for n in lengths))
        for task in run.tasks
    ]
    rows.append(("average", *(_score(run.averages[n].score) for n in lengths)))
    rows.append(("average 95% CI", *(f"{run.averages[n].ci_low:.2f}-{run.averages[n].ci_high:.2f}" for n in lengths)))
    return Table(header, tuple(rows))


def run_facts(run: RunSummary, threshold: float) -> list[str]:
    """One-line facts under a run's heading: model, training length, effective length, wAvg."""
    train = MISSING if run.train_length is None else length_label(run.train_length)
    below = f"below {length_label(run.lengths[0])}"
    effective = below if run.effective_length is None else length_label(run.effective_length)
    facts = [
        f"model: {run.model or MISSING}",
        f"training length: {train}",
        f"effective length (average > {threshold:g}): {effective}",
    ]
    if run.wavg is None:
        facts.append("wAvg inc/dec: n/a (needs all of 4K..128K)")
    else:
        facts.append(f"wAvg inc/dec: {run.wavg[0]:.2f} / {run.wavg[1]:.2f}")
    if len({a.n_tasks for a in run.averages.values()}) > 1:
        facts.append("note: not every task ran at every length; each average covers the tasks present there")
    return facts


def comparison_table(comparison: Comparison) -> Table:
    """Length rows x run columns of the average over the common tasks, then the effective length."""
    labels = list(comparison.averages)
    rows = [
        (length_label(n), *(_score(comparison.averages[label][n].score) for label in labels))
        for n in comparison.lengths
    ]
    below = f"below {length_label(comparison.lengths[0])}"
    effective = [comparison.effective_lengths[label] for label in labels]
    rows.append(("effective length", *(below if n is None else length_label(n) for n in effective)))
    return Table(("length", *labels), tuple(rows))


def comparison_cells_table(comparison: Comparison, runs: list[RunSummary]) -> Table:
    """(task, length) rows x run columns: every common cell side by side."""
    rows = tuple(
        (task, length_label(n), *(_score(r.cells[task, n].score) for r in runs))
        for task in comparison.tasks
        for n in comparison.lengths
    )
    return Table(("task", "length", *(r.label for r in runs)), rows)


def summary_csv(runs: list[RunSummary]) -> str:
    """One row per (run, task, length): CSV_COLUMNS, scores and CI bounds in percent."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for run in runs:
        for (task, length), cell in sorted(run.cells.items()):
            low, high = cell.ci
            writer.writerow((run.label, task, length, cell.n, f"{cell.score:.2f}", f"{low:.2f}", f"{high:.2f}"))
    return buf.getvalue()
