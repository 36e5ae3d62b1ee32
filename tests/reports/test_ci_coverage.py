"""The bootstrap CIs have the coverage they are labelled with, on synthetic cells with a known answer.

Each repetition draws a cell of n Bernoulli(p) per-sample scores and asks whether its interval covers
100 p. A 95% interval must cover in 95% of R repetitions up to binomial noise: the accepted band is
0.95 +- Z sd with sd = sqrt(0.95 * 0.05 / R) (Z = 2.58, a two-sided 99% band). At R = 1000 the band
is about [0.932, 0.968], so a 90% interval (coverage ~0.91) or a 99% one (~0.99) labelled 95% fails;
the tests below check that the check itself rejects them.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from reports import scoring
from reports.aggregate import length_averages
from reports.scoring import Cell, bootstrap_means, cell_rng, percentile_ci

Z = 2.58
CELL_REPS, CELL_N, CELL_P = 1000, 100, 0.3
AVERAGE_REPS, AVERAGE_N, AVERAGE_PS = 400, 40, (0.2, 0.5, 0.9, 0.6)


def coverage_band(level: float, reps: int) -> tuple[float, float]:
    """The coverage fractions a `level` interval may show over `reps` independent repetitions."""
    sd = math.sqrt(level * (1.0 - level) / reps)
    return level - Z * sd, level + Z * sd


def bernoulli(rng: np.random.Generator, n: int, p: float) -> np.ndarray:
    return (rng.random(n) < p).astype(np.float64)


@pytest.fixture(scope="module")
def cell_replicates():
    """CELL_REPS cells' bootstrap replicates, each from fresh Bernoulli(CELL_P) samples."""
    rng = np.random.default_rng(7)
    return [bootstrap_means(bernoulli(rng, CELL_N, CELL_P), cell_rng(r, "vt", CELL_N)) for r in range(CELL_REPS)]


def cell_coverage(replicates) -> float:
    covered = [low <= 100 * CELL_P <= high for low, high in map(percentile_ci, replicates)]
    return float(np.mean(covered))


def test_cell_ci_covers_p_at_its_nominal_rate(cell_replicates):
    low, high = coverage_band(scoring.CI_LEVEL, CELL_REPS)
    assert scoring.CI_LEVEL == 0.95
    assert low <= cell_coverage(cell_replicates) <= high


@pytest.mark.parametrize("level", [0.90, 0.99], ids=["90pct", "99pct"])
def test_the_coverage_check_rejects_a_mislabelled_level(cell_replicates, level, monkeypatch):
    """A 90% (or 99%) interval computed where a 95% one is claimed falls outside the 95% band."""
    monkeypatch.setattr(scoring, "CI_LEVEL", level)
    low, high = coverage_band(0.95, CELL_REPS)
    assert not low <= cell_coverage(cell_replicates) <= high


def test_length_average_ci_covers_the_mean_p():
    """Tasks with different p: the average's CI covers 100 * mean(p) at the nominal rate."""
    rng = np.random.default_rng(8)
    truth = 100 * float(np.mean(AVERAGE_PS))
    covered, widths = [], []
    for r in range(AVERAGE_REPS):
        cells = {}
        for i, p in enumerate(AVERAGE_PS):
            samples = bernoulli(rng, AVERAGE_N, p)
            cells[f"t{i}", 4096] = Cell(f"t{i}", 4096, samples, bootstrap_means(samples, cell_rng(r, f"t{i}", 4096)))
        average = length_averages(cells)[4096]
        covered.append(average.ci_low <= truth <= average.ci_high)
        widths.append(average.ci_high - average.ci_low)
    low, high = coverage_band(scoring.CI_LEVEL, AVERAGE_REPS)
    assert low <= float(np.mean(covered)) <= high
    assert min(widths) > 0


def test_length_average_ci_has_the_width_of_independent_task_resampling():
    """Two tasks with varying samples: the average's CI is as wide as the percentiles of the averaged
    replicates, strictly wider than zero and narrower than either task's own interval."""
    rng = np.random.default_rng(9)
    cells = {}
    for task, p in (("a", 0.4), ("b", 0.7)):
        samples = bernoulli(rng, 30, p)
        cells[task, 8192] = Cell(task, 8192, samples, bootstrap_means(samples, cell_rng(0, task, 8192)))
    average = length_averages(cells)[8192]
    expected = percentile_ci((cells["a", 8192].boot + cells["b", 8192].boot) / 2)
    assert (average.ci_low, average.ci_high) == expected
    width = average.ci_high - average.ci_low
    task_widths = [np.subtract(*reversed(c.ci)) for c in cells.values()]
    assert 0 < width < min(task_widths), (width, task_widths)
    assert average.ci_low < average.score < average.ci_high
