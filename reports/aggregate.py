"""RULER's summary numbers from scored cells: per-length average, wAvg (inc/dec), effective length.

- Average at a length: the unweighted mean of the task scores there (each already rounded to 2
  decimals, as RULER's table does), with RULER's arithmetic (`scoring.ruler_mean`: a sequential sum
  divided by the count, rounded to 2 decimals). Its CI comes from averaging the tasks' bootstrap
  replicates (tasks resampled independently).
- wAvg: only when all of RULER's lengths 4K..128K were run; weights 1..6 (inc, favours long contexts) or
  6..1 (dec), divided by 21.
- Effective length: the longest tested length up to which the per-length average stays above the
  threshold (every tested length <= it exceeds it; RULER: 85.6, the Llama-2-7B score at 4K); None when
  the shortest length already fails. A pass after a failure (noise at few samples) does not extend it.
  RULER calibrated that threshold on the average over its 13 tasks (RULER_TASK_COUNT); an average over
  fewer tasks is not comparable with it, and the report flags it.
- "Avg." (RULER's last column): the mean over lengths of the per-length averages (of one task, or of
  all tasks), with RULER's arithmetic; its CI averages the bootstrap replicates the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from reports.scoring import Cell, percentile_ci, ruler_mean

RULER_LENGTHS = (4096, 8192, 16384, 32768, 65536, 131072)
RULER_THRESHOLD = 85.6
RULER_TASK_COUNT = 13


@dataclass(frozen=True)
class LengthAverage:
    """The average over `n_tasks` tasks at one length, with its bootstrap CI (percent)."""

    length: int
    score: float
    ci_low: float
    ci_high: float
    n_tasks: int


def _by_length(
    cells: dict[tuple[str, int], Cell], tasks: Iterable[str] | None, lengths: Iterable[int] | None
) -> dict[int, list[Cell]]:
    """length -> the cells (sorted by task) whose task is in `tasks` and length in `lengths` (None: all)."""
    task_set = None if tasks is None else set(tasks)
    length_set = None if lengths is None else set(lengths)
    by_length: dict[int, list[Cell]] = {}
    for (task, length), cell in sorted(cells.items()):
        if (task_set is None or task in task_set) and (length_set is None or length in length_set):
            by_length.setdefault(length, []).append(cell)
    return dict(sorted(by_length.items()))


def length_averages(
    cells: dict[tuple[str, int], Cell], tasks: Iterable[str] | None = None, lengths: Iterable[int] | None = None
) -> dict[int, LengthAverage]:
    """Average per length over the cells whose task is in `tasks` (default all) and length in `lengths`."""
    averages = {}
    for length, group in _by_length(cells, tasks, lengths).items():
        boot_B = np.mean([c.boot for c in group], axis=0)
        low, high = percentile_ci(boot_B)
        averages[length] = LengthAverage(length, ruler_mean([c.score for c in group]), low, high, len(group))
    return averages


@dataclass(frozen=True)
class LengthsMean:
    """RULER's "Avg.": a mean over `n_lengths` lengths (percent) with its bootstrap CI; n: the samples
    behind it (summed over the cells)."""

    score: float
    ci_low: float
    ci_high: float
    n: int
    n_lengths: int

    @property
    def ci(self) -> tuple[float, float]:
        return self.ci_low, self.ci_high


def lengths_mean(
    cells: dict[tuple[str, int], Cell], tasks: Iterable[str] | None = None, lengths: Iterable[int] | None = None
) -> LengthsMean | None:
    """The mean over lengths of the per-length averages over `tasks` (default all; one task gives that
    task's "Avg."), or None when no cell is selected."""
    by_length = _by_length(cells, tasks, lengths)
    if not by_length:
        return None
    per_length = [ruler_mean([c.score for c in group]) for group in by_length.values()]
    low, high = percentile_ci(_mean_replicates(by_length))
    n = sum(c.n for group in by_length.values() for c in group)
    return LengthsMean(ruler_mean(per_length), low, high, n, len(by_length))


def _mean_replicates(by_length: dict[int, list[Cell]]) -> np.ndarray:
    """(N_BOOT,) replicates of the mean over lengths of the per-length averages, in [0, 1]."""
    return np.mean([np.mean([c.boot for c in group], axis=0) for group in by_length.values()], axis=0)


@dataclass(frozen=True)
class Delta:
    """One run's "Avg." minus a baseline's over the same tasks and lengths (points), with the percentile
    bootstrap CI of the difference. Cells are resampled with generators seeded per (task, length), so
    two runs with the same samples per cell are resampled in pairs (a paired bootstrap)."""

    score: float
    ci_low: float
    ci_high: float


def delta(
    base: dict[tuple[str, int], Cell], other: dict[tuple[str, int], Cell], tasks: Iterable[str], lengths: Iterable[int]
) -> Delta:
    """`other` minus `base` over `tasks` x `lengths` (every one of those cells must be in both)."""
    tasks, lengths = list(tasks), list(lengths)
    a, b = lengths_mean(base, tasks, lengths), lengths_mean(other, tasks, lengths)
    diff_B = _mean_replicates(_by_length(other, tasks, lengths)) - _mean_replicates(_by_length(base, tasks, lengths))
    low, high = percentile_ci(diff_B)
    return Delta(round(b.score - a.score, 2), low, high)


def weighted_averages(scores: dict[int, float]) -> tuple[float, float] | None:
    """(wAvg inc, wAvg dec) over RULER's six lengths, or None unless all six are in `scores`: weights
    1..6 (inc) or 6..1 (dec) by length index, sequential sums divided by the weights' sum, 2 decimals."""
    if not all(length in scores for length in RULER_LENGTHS):
        return None
    values = [scores[length] for length in RULER_LENGTHS]
    weights = range(1, len(RULER_LENGTHS) + 1)

    def weighted(ws) -> float:
        return round(sum(w * v for w, v in zip(ws, values)) / sum(weights), 2)

    return weighted(weights), weighted(reversed(weights))


def effective_length_definition(threshold: float) -> str:
    """What `effective_length` computes, in words (the report's and results.json's text)."""
    return f"the longest tested length up to which the per-length average stays above {threshold:g}"


def effective_length(scores: dict[int, float], threshold: float = RULER_THRESHOLD) -> int | None:
    """The longest length L such that every tested length <= L scores above `threshold` (strictly)."""
    effective = None
    for length in sorted(scores):
        if scores[length] <= threshold:
            break
        effective = length
    return effective


@dataclass(frozen=True)
class RunSummary:
    """A scored run and its RULER summary numbers (averages over all of its tasks)."""

    label: str
    model: str | None
    train_length: int | None
    cells: dict[tuple[str, int], Cell]
    averages: dict[int, LengthAverage]
    wavg: tuple[float, float] | None
    effective_length: int | None

    @property
    def tasks(self) -> list[str]:
        return sorted({task for task, _ in self.cells})

    @property
    def lengths(self) -> list[int]:
        return sorted({length for _, length in self.cells})

    @property
    def fewest_tasks(self) -> int:
        """The fewest tasks behind a per-length average (RULER's table has RULER_TASK_COUNT everywhere)."""
        return min(a.n_tasks for a in self.averages.values())

    def task_mean(self, task: str) -> LengthsMean | None:
        """The task's "Avg." (its mean over lengths), or None unless it ran at every length of the run."""
        if not all((task, length) in self.cells for length in self.lengths):
            return None
        return lengths_mean(self.cells, [task])


def summarize(
    label: str,
    model: str | None,
    train_length: int | None,
    cells: dict[tuple[str, int], Cell],
    threshold: float = RULER_THRESHOLD,
) -> RunSummary:
    averages = length_averages(cells)
    scores = {length: avg.score for length, avg in averages.items()}
    return RunSummary(
        label, model, train_length, cells, averages, weighted_averages(scores), effective_length(scores, threshold)
    )


@dataclass(frozen=True)
class Comparison:
    """Runs side by side over the lengths all of them have and the tasks all of them have at every one.

    averages: run label -> length -> the average over the common tasks.
    """

    tasks: tuple[str, ...]
    lengths: tuple[int, ...]
    averages: dict[str, dict[int, LengthAverage]]
    effective_lengths: dict[str, int | None]


def compare(runs: list[RunSummary], threshold: float = RULER_THRESHOLD) -> Comparison:
    tasks = sorted(set.intersection(*(set(r.tasks) for r in runs)))
    lengths = sorted(set.intersection(*(set(r.lengths) for r in runs)))
    tasks = [t for t in tasks if all((t, n) in r.cells for r in runs for n in lengths)]
    averages = {r.label: length_averages(r.cells, tasks, lengths) for r in runs}
    effective = {
        label: effective_length({n: a.score for n, a in avgs.items()}, threshold) for label, avgs in averages.items()
    }
    return Comparison(tuple(tasks), tuple(lengths), averages, effective)
