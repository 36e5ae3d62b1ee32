"""Scores per (task, length) with RULER's metric for the task and a seeded bootstrap 95% CI.

A cell's score is RULER's, with RULER's arithmetic (scripts/eval/synthetic/constants.py), `ruler_mean`:
`round(sum(scores) / len(scores) * 100, 2)`, a sequential float sum, so that exact .xx5 ties round as
RULER's do (numpy's pairwise mean can land on the other side); averages of scores use the same rule.
Its CI is the percentile bootstrap over samples (B resamples of the n samples with replacement). The
generator for a cell is seeded from (seed, task, length), so a cell's CI does not depend on which other
cells or runs are in the report. The bootstrap replicates are kept so that per-length averages get a
CI too (each task resampled independently, then averaged across tasks).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from reports.runs import Run
from ruler_tasks.metrics import sample_scores

N_BOOT = 1000
CI_LEVEL = 0.95


@dataclass(frozen=True)
class Cell:
    """One (task, length) of one run.

    samples: (n,) per-sample scores in [0, 1], in index order.
    boot: (N_BOOT,) bootstrap replicates of the mean per-sample score, in [0, 1].
    """

    task: str
    length: int
    samples: np.ndarray
    boot: np.ndarray

    @property
    def n(self) -> int:
        return int(self.samples.size)

    @property
    def score(self) -> float:
        return ruler_mean(self.samples.tolist(), scale=100.0)

    @property
    def ci(self) -> tuple[float, float]:
        return percentile_ci(self.boot)


def ruler_mean(values: Sequence[float], scale: float = 1.0) -> float:
    """RULER's arithmetic: `round(sum(values) / len(values) * scale, 2)` with a sequential float sum, so
    an exact .xx5 tie rounds as RULER's does (numpy's pairwise mean can land on the other side)."""
    return round(sum(values) / len(values) * scale, 2)


def percentile_ci(boot: np.ndarray) -> tuple[float, float]:
    """(low, high) of replicates `boot` (B,) in [0, 1], as percentages rounded to 2 decimals."""
    tail = 100.0 * (1.0 - CI_LEVEL) / 2.0
    low, high = np.percentile(boot, [tail, 100.0 - tail])
    return round(100.0 * float(low), 2), round(100.0 * float(high), 2)


def bootstrap_means(samples: np.ndarray, rng: np.random.Generator, n_boot: int = N_BOOT) -> np.ndarray:
    """(n_boot,) means of resamples with replacement of `samples` (n,); n >= 1."""
    picks_BxN = rng.integers(0, samples.size, size=(n_boot, samples.size))
    return samples[picks_BxN].mean(axis=1)


def cell_rng(seed: int, task: str, length: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(task.encode("utf-8")), length])


def score_run(run: Run, metric_of: Callable[[str], str], *, seed: int = 0) -> dict[tuple[str, int], Cell]:
    """Scores every (task, length) of `run`; `metric_of(task)` names the task's metric."""
    cells = {}
    for (task, length), preds in sorted(run.cells.items()):
        scores = np.asarray(
            sample_scores(metric_of(task), [p.pred for p in preds], [p.outputs for p in preds]), dtype=np.float64
        )
        cells[task, length] = Cell(task, length, scores, bootstrap_means(scores, cell_rng(seed, task, length)))
    return cells
