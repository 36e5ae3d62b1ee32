"""The report's tables as plain data (rendered by render.py), summary.csv and a run's summary_table.csv.

Lengths print as RULER's paper does (4096 -> "4K"); the run's training length is marked "(train)".
Tables have RULER's shape: tasks x lengths, then "Avg." (the mean over lengths); the average row and
its CI row follow the tasks. An average over fewer than RULER's 13 tasks carries FEW_TASKS_MARK.
Scores with a CI print as "75.00 [70.10, 80.20]"; differences from the first run as "+1.25 [...]".
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from evaluation.run_dir import summary_csv as summary_rows_csv
from reports.aggregate import (
    RULER_TASK_COUNT,
    Comparison,
    RunSummary,
    delta,
    effective_length_definition,
    lengths_mean,
)
from reports.provenance import Provenance

MISSING = "-"
AVG = "Avg."
FEW_TASKS_MARK = "†"


@dataclass(frozen=True)
class Table:
    """Rows of cell strings; numbers align right, a `text` table (words) aligns left."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    text: bool = False


def length_label(length: int) -> str:
    """4096 -> '4K', 131072 -> '128K', 1048576 -> '1M'; other counts as digits."""
    if length % (1 << 20) == 0:
        return f"{length >> 20}M"
    if length % 1024 == 0:
        return f"{length >> 10}K"
    return str(length)


def _length_header(length: int, train_length: int | None) -> str:
    return length_label(length) + (" (train)" if length == train_length else "")


def _score(value: float | None, missing: str = MISSING) -> str:
    return missing if value is None else f"{value:.2f}"


def _with_ci(score: float, low: float, high: float, signed: bool = False) -> str:
    fmt = "+.2f" if signed else ".2f"
    return f"{score:{fmt}} [{low:{fmt}}, {high:{fmt}}]"


def _flag(n_tasks: int) -> str:
    return FEW_TASKS_MARK if n_tasks < RULER_TASK_COUNT else ""


def few_tasks_text(n_tasks: int, threshold: float) -> str:
    """Why an average over fewer than RULER's 13 tasks is not comparable with RULER's numbers."""
    return (
        f"average over {n_tasks} of RULER's {RULER_TASK_COUNT} tasks: the threshold ({threshold:g}) was "
        f"calibrated on the average over all {RULER_TASK_COUNT}, so this average and the effective length "
        f"taken from it are not comparable with RULER's published numbers"
    )


def few_tasks_note(n_tasks: int, threshold: float) -> str:
    """The footnote for FEW_TASKS_MARK."""
    return f"{FEW_TASKS_MARK} {few_tasks_text(n_tasks, threshold)}"


def effective_length_text(effective: int | None, lengths: list[int], threshold: float) -> str:
    """What `aggregate.effective_length` computes, in words, and its value."""
    value = f"below {length_label(lengths[0])}" if effective is None else length_label(effective)
    return f"effective length ({effective_length_definition(threshold)}): {value}"


def _n_text(counts: list[int]) -> str:
    """Samples per cell along a row: one number when every cell has it, else each in order ('10/10/8')."""
    return str(counts[0]) if len(set(counts)) == 1 else "/".join(map(str, counts))


def run_table(run: RunSummary) -> Table:
    """Task rows x (n, lengths, Avg.) of scores, then the average row and its 95% CI row.

    A task's Avg. needs the task at every length of the run ("-" otherwise)."""
    lengths = run.lengths
    header = ("task", "n", *(_length_header(n, run.train_length) for n in lengths), AVG)
    rows = []
    for task in run.tasks:
        here = [n for n in lengths if (task, n) in run.cells]
        mean = run.task_mean(task)
        rows.append((
            task,
            _n_text([run.cells[task, n].n for n in here]),
            *(_score(run.cells[task, n].score if (task, n) in run.cells else None) for n in lengths),
            _score(mean.score if mean else None),
        ))
    averages = [run.averages[n] for n in lengths]
    overall = lengths_mean(run.cells)
    n_tasks = sorted({a.n_tasks for a in averages})
    tasks_text = f"{n_tasks[0]}" if len(n_tasks) == 1 else f"{n_tasks[0]}-{n_tasks[-1]}"
    rows.append((
        "average",
        f"{tasks_text} tasks",
        *(f"{a.score:.2f}{_flag(a.n_tasks)}" for a in averages),
        f"{overall.score:.2f}{_flag(n_tasks[0])}",
    ))
    rows.append(("average 95% CI", "", *(f"{a.ci_low:.2f}-{a.ci_high:.2f}" for a in averages),
                 f"{overall.ci_low:.2f}-{overall.ci_high:.2f}"))
    return Table(header, tuple(rows))


def run_facts(run: RunSummary, provenance: Provenance, threshold: float) -> list[str]:
    """One-line facts under a run's heading: model, training length, haystack, effective length, wAvg,
    Avg., and the notes a reader needs (missing cells, fewer than RULER's 13 tasks)."""
    train = MISSING if run.train_length is None else length_label(run.train_length)
    fewest = run.fewest_tasks
    facts = [
        f"model: {run.model or MISSING}",
        f"training length: {train}",
        f"haystack: {provenance.haystack_text}",
        effective_length_text(run.effective_length, run.lengths, threshold) + _flag(fewest),
    ]
    if run.wavg is None:
        facts.append("wAvg inc/dec: n/a (needs all of 4K..128K)")
    else:
        facts.append(f"wAvg inc/dec: {run.wavg[0]:.2f} / {run.wavg[1]:.2f}{_flag(fewest)}")
    overall = lengths_mean(run.cells)
    facts.append(f"{AVG} (mean over lengths of the average): {_with_ci(overall.score, *overall.ci)}{_flag(fewest)}")
    if len({a.n_tasks for a in run.averages.values()}) > 1:
        facts.append("note: not every task ran at every length; each average covers the tasks present there")
    if fewest < RULER_TASK_COUNT:
        facts.append(few_tasks_note(fewest, threshold))
    return facts


def comparison_table(comparison: Comparison, runs: list[RunSummary]) -> Table:
    """Length rows (then Avg. and the effective length) x, per run, the average over the common tasks
    with its CI, then per run after the first its difference from the first with the CI of the
    difference. `runs` in the order of `comparison.averages`."""
    tasks, lengths = comparison.tasks, list(comparison.lengths)
    base, others = runs[0], runs[1:]
    mark = _flag(len(tasks))
    header = ("length", *(r.label + mark for r in runs), *(f"{r.label} − {base.label}" for r in others))
    rows = []
    for n in [*lengths, None]:
        selected = lengths if n is None else [n]
        means = [lengths_mean(r.cells, tasks, selected) for r in runs]
        deltas = [delta(base.cells, r.cells, tasks, selected) for r in others]
        rows.append((
            AVG if n is None else length_label(n),
            *(_with_ci(m.score, *m.ci) for m in means),
            *(_with_ci(d.score, d.ci_low, d.ci_high, signed=True) for d in deltas),
        ))
    effective = [comparison.effective_lengths[r.label] for r in runs]
    below = f"below {length_label(lengths[0])}"
    rows.append(("effective length", *(below if e is None else length_label(e) for e in effective),
                 *([""] * len(others))))
    return Table(header, tuple(rows))


def comparison_cells_table(comparison: Comparison, runs: list[RunSummary]) -> Table:
    """(task, length) rows x n, each run's score with its CI, and each later run's difference from the
    first run with the CI of the difference."""
    base, others = runs[0], runs[1:]
    header = ("task", "length", "n", *(r.label for r in runs), *(f"{r.label} − {base.label}" for r in others))
    rows = []
    for task in comparison.tasks:
        for n in comparison.lengths:
            cells = [r.cells[task, n] for r in runs]
            deltas = [delta(base.cells, r.cells, [task], [n]) for r in others]
            rows.append((
                task,
                length_label(n),
                _n_text([c.n for c in cells]),
                *(_with_ci(c.score, *c.ci) for c in cells),
                *(_with_ci(d.score, d.ci_low, d.ci_high, signed=True) for d in deltas),
            ))
    return Table(header, tuple(rows))


def provenance_table(runs: list[RunSummary], provenances: list[Provenance]) -> Table:
    """Field rows x run columns: what each run records about how it was made ("-" where it does not)."""

    def row(name: str, values) -> tuple[str, ...]:
        return (name, *(MISSING if v is None else str(v) for v in values))

    rows = [
        row("checkpoint", [p.checkpoint for p in provenances]),
        row("checkpoint fingerprint", [p.fingerprint for p in provenances]),
        row("seed", [p.seed for p in provenances]),
        row("samples per cell", [p.samples for p in provenances]),
        row("haystack", [p.haystack_text for p in provenances]),
        row("tokenizer", [p.tokenizer for p in provenances]),
        row("chat template", [p.chat_template for p in provenances]),
        row("RULER revision", [p.ruler_revision for p in provenances]),
        row("git revision", [p.git_revision for p in provenances]),
    ]
    tasks = sorted({t for r in runs for t in r.tasks})
    rows += [row(f"version of {t}", [p.task_versions.get(t) for p in provenances]) for t in tasks]
    return Table(("", *(r.label for r in runs)), tuple(rows), text=True)


def summary_csv(runs: list[RunSummary]) -> str:
    """evaluation.run_dir.SUMMARY_COLUMNS (the schema of a run's own summary.csv) in RULER's table
    shape, per run: each task at each length then its Avg. (when it ran at every length), then task
    "Avg." (the average over the tasks) at each length and its Avg. An Avg. row's n: the samples behind it."""
    rows = []
    for run in runs:
        for task in run.tasks:
            rows += [(run.label, task, n, run.cells[task, n]) for n in run.lengths if (task, n) in run.cells]
            if (mean := run.task_mean(task)) is not None:
                rows.append((run.label, task, AVG, mean))
        rows += [(run.label, AVG, n, lengths_mean(run.cells, lengths=[n])) for n in run.lengths]
        rows.append((run.label, AVG, AVG, lengths_mean(run.cells)))
    return summary_rows_csv(rows)


def summary_table_csv(run: RunSummary) -> str:
    """RULER's table of one run: a row per task, a column per length (header: tokens), then "Avg." (the
    task's mean over lengths, "" unless it ran at every length); the last row, "Avg.", holds the average
    over the tasks at each length and its mean over lengths. Scores in percent, 2 decimals; "" where a
    task did not run at a length."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(("task", *run.lengths, AVG))
    for task in run.tasks:
        scores = [run.cells[task, n].score if (task, n) in run.cells else None for n in run.lengths]
        mean = run.task_mean(task)
        writer.writerow((task, *(_score(s, "") for s in scores), _score(mean.score if mean else None, "")))
    overall = lengths_mean(run.cells)
    writer.writerow((AVG, *(_score(run.averages[n].score) for n in run.lengths), _score(overall.score)))
    return buf.getvalue()
