"""RULER's summary numbers from scored cells: per-length average, wAvg (inc/dec), effective length.

- Average at a length: the unweighted mean of the task scores there (each already rounded to 2
  decimals, as RULER's table does), rounded to 2 decimals. Its CI comes from averaging the tasks'
  bootstrap replicates (tasks resampled independently).
- wAvg: only when all of RULER's lengths 4K..128K were run; weights 1..6 (inc, favours long contexts) or
  6..1 (dec), divided by 21.
- Effective length: the longest tested length up to which the average stays above the threshold
  (every tested length <= it exceeds it; RULER: 85.6, the Llama-2-7B score at 4K); None when the
  shortest length already fails. A pass after a failure (noise at few samples) does not extend it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from reports.scoring import Cell, percentile_ci

RULER_LENGTHS = (4096, 8192, 16384, 32768, 65536, 131072)
RULER_THRESHOLD = 85.6


@dataclass(frozen=True)
class LengthAverage:
    """The average over `n_tasks` tasks at one length, with its bootstrap CI (percent)."""

    length: int
    score: float
    ci_low: float
    ci_high: float
    n_tasks: int


def length_averages(
    cells: dict[tuple[str, int], Cell], tasks: Iterable[str] | None = None, lengths: Iterable[int] | None = None
) -> dict[int, LengthAverage]:
    """Average per length over the cells whose task is in `tasks` (default all) and length in `lengths`."""
    task_set = None if tasks is None else set(tasks)
    length_set = None if lengths is None else set(lengths)
    by_length: dict[int, list[Cell]] = {}
    for (task, length), cell in sorted(cells.items()):
        if (task_set is None or task in task_set) and (length_set is None or length in length_set):
            by_length.setdefault(length, []).append(cell)
    averages = {}
    for length, group in sorted(by_length.items()):
        boot_B = np.mean([c.boot for c in group], axis=0)
        low, high = percentile_ci(boot_B)
        score = round(float(np.mean([c.score for c in group])), 2)
        averages[length] = LengthAverage(length, score, low, high, len(group))
    return averages


def weighted_averages(scores: dict[int, float]) -> tuple[float, float] | None:
    """(wAvg inc, wAvg dec) over RULER's six lengths, or None unless all six are in `scores`."""
    if not all(length in scores for length in RULER_LENGTHS):
        return None
    values = np.array([scores[length] for length in RULER_LENGTHS])
    weights = np.arange(1, len(RULER_LENGTHS) + 1, dtype=np.float64)
    return (
        round(float(values @ weights / weights.sum()), 2),
        round(float(values @ weights[::-1] / weights.sum()), 2),
    )


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
