"""Per-length averages, wAvg and effective length on crafted tables; comparisons over what runs share."""

import numpy as np

from reports.aggregate import (
    RULER_LENGTHS,
    compare,
    delta,
    effective_length,
    length_averages,
    lengths_mean,
    summarize,
    weighted_averages,
)
from reports.scoring import Cell


def _cell(task: str, length: int, score: float, n: int = 4) -> Cell:
    """A cell whose samples all score `score` (in [0, 1]); its bootstrap replicates are that constant."""
    return Cell(task, length, np.full(n, score), np.full(50, score))


def test_weighted_averages_on_rulers_lengths():
    scores = dict(zip(RULER_LENGTHS, [96.0, 94.0, 90.0, 85.0, 70.0, 50.0]))
    inc, dec = weighted_averages(scores)
    assert inc == round((96 * 1 + 94 * 2 + 90 * 3 + 85 * 4 + 70 * 5 + 50 * 6) / 21, 2) == 73.52
    assert dec == round((96 * 6 + 94 * 5 + 90 * 4 + 85 * 3 + 70 * 2 + 50 * 1) / 21, 2) == 88.14


def test_weighted_averages_need_all_six_lengths():
    assert weighted_averages({4096: 90.0, 8192: 80.0}) is None


def test_effective_length_is_the_longest_length_the_average_stays_above_the_threshold():
    scores = {4096: 95.0, 8192: 88.0, 16384: 86.0, 32768: 40.0}
    assert effective_length(scores) == 16384
    assert effective_length(scores, threshold=90.0) == 4096
    assert effective_length(scores, threshold=99.0) is None


def test_effective_length_stops_at_the_first_failure():
    scores = {4096: 95.0, 8192: 85.6, 16384: 86.0, 32768: 40.0}
    assert effective_length(scores) == 4096  # 85.6 itself does not exceed 85.6; 16K's pass comes after a failure


def test_length_average_is_the_unweighted_mean_of_task_scores():
    cells = {
        ("a", 4096): _cell("a", 4096, 1.0, n=100),
        ("b", 4096): _cell("b", 4096, 0.5, n=2),
        ("a", 8192): _cell("a", 8192, 0.25),
    }
    averages = length_averages(cells)
    assert averages[4096].score == 75.0 and averages[4096].n_tasks == 2
    assert (averages[4096].ci_low, averages[4096].ci_high) == (75.0, 75.0)
    assert averages[8192].score == 25.0 and averages[8192].n_tasks == 1
    assert length_averages(cells, tasks=["b"]) == {4096: averages[4096].__class__(4096, 50.0, 50.0, 50.0, 1)}


def test_summary_marks_effective_length_and_wavg():
    cells = {("t", n): _cell("t", n, s) for n, s in zip(RULER_LENGTHS, [1.0, 0.9, 0.8, 0.7, 0.6, 0.5])}
    summary = summarize("r", None, 8192, cells, threshold=85.0)
    assert summary.effective_length == 8192
    assert summary.wavg == weighted_averages({n: a.score for n, a in summary.averages.items()})


def test_comparison_keeps_tasks_every_run_has_at_every_common_length():
    a = summarize("a", None, None, {(t, n): _cell(t, n, 1.0) for t in "xyz" for n in (4096, 8192, 16384)})
    b = summarize(
        "b", None, None, {(t, n): _cell(t, n, 0.5) for t, n in [("x", 4096), ("x", 8192), ("y", 4096), ("w", 8192)]}
    )
    comparison = compare([a, b], threshold=60.0)
    assert comparison.lengths == (4096, 8192)
    assert comparison.tasks == ("x",)  # y lacks 8192 in b; z and w are in one run only
    assert comparison.averages["b"][8192].score == 50.0
    assert comparison.effective_lengths == {"a": 8192, "b": None}


def test_avg_is_the_mean_over_lengths_of_the_per_length_averages():
    cells = {
        ("a", 4096): _cell("a", 4096, 1.0, n=10),
        ("b", 4096): _cell("b", 4096, 0.5, n=10),
        ("a", 8192): _cell("a", 8192, 0.25, n=10),
    }
    overall = lengths_mean(cells)
    assert overall.score == (75.0 + 25.0) / 2 and overall.ci == (50.0, 50.0)
    assert (overall.n, overall.n_lengths) == (30, 2)
    assert lengths_mean(cells, ["a"]).score == 62.5
    assert lengths_mean(cells, ["c"]) is None


def test_delta_between_runs_is_paired_over_the_same_tasks_and_lengths():
    rng = np.random.default_rng(0)
    boot = rng.uniform(0.4, 0.6, 50)
    base = {("a", 4096): Cell("a", 4096, np.full(4, 0.5), boot)}
    better = {("a", 4096): Cell("a", 4096, np.full(4, 0.75), boot + 0.25)}
    d = delta(base, better, ["a"], [4096])
    assert (d.score, d.ci_low, d.ci_high) == (25.0, 25.0, 25.0)  # same resamples: no spread in the difference
    assert delta(better, base, ["a"], [4096]).score == -25.0


def _spread_cell(task: str, length: int, score: float, spread: float) -> Cell:
    """A cell whose samples average `score` (in [0, 1]) and whose replicates vary by +-spread."""
    return Cell(task, length, np.array([score] * 4), score + spread * np.linspace(-1, 1, 1000))


def test_subsets_of_tasks_and_lengths_select_only_those_cells():
    base = {(t, n): _spread_cell(t, n, s, 0.01) for (t, n, s) in
            [("a", 1024, 0.5), ("a", 2048, 0.3), ("b", 1024, 0.9), ("b", 2048, 0.1)]}
    other = {key: _spread_cell(*key, c.samples[0] + (0.2 if key[0] == "a" else -0.4), 0.02) for key, c in base.items()}
    assert lengths_mean(base, ["a"], [1024]).score == 50.0 and lengths_mean(base, None, [2048]).score == 20.0
    assert lengths_mean(base, ["a"]).score == 40.0 and lengths_mean(base).score == 45.0
    d = delta(base, other, ["a"], [1024])  # only a @ 1024: +20 points, replicates differ by 0.01 * linspace
    assert d.score == 20.0 and (d.ci_low, d.ci_high) == (19.05, 20.95)
    assert delta(base, other, ["a", "b"], [2048]).score == -10.0  # a +20, b -40 at 2048
    third = {key: _spread_cell(*key, c.samples[0] + 1 / 3 - 0.3, 0.0) for key, c in base.items()}
    assert delta(base, third, ["a"], [1024]).score == 3.33  # rounded to two decimals


def test_summary_keeps_its_model_and_training_length_and_uses_the_given_threshold():
    cells = {("a", 1024): _cell("a", 1024, 0.9), ("a", 2048): _cell("a", 2048, 0.7)}
    run = summarize("r", "model-x", 1024, cells, threshold=60.0)
    assert (run.label, run.model, run.train_length) == ("r", "model-x", 1024)
    assert run.effective_length == 2048  # 70 > 60; at RULER's 85.6 it would be 1024
    assert summarize("r", None, None, cells).effective_length == 1024


def test_comparison_averages_only_the_tasks_every_run_has_and_uses_the_given_threshold():
    shared = {("a", n): _cell("a", n, 0.9) for n in (1024, 2048)}
    extra = {**shared, ("b", 1024): _cell("b", 1024, 0.1), ("b", 2048): _cell("b", 2048, 0.1)}
    runs = [summarize("one", None, None, shared), summarize("two", None, None, extra)]
    result = compare(runs, threshold=95.0)
    assert result.tasks == ("a",)
    assert {n: a.score for n, a in result.averages["two"].items()} == {1024: 90.0, 2048: 90.0}
    assert result.effective_lengths == {"one": None, "two": None}  # 90 <= 95; at 85.6 both would be 2048
    assert compare(runs).effective_lengths == {"one": 2048, "two": 2048}


def test_a_tasks_average_is_over_that_task_alone():
    cells = {("a", 1024): _cell("a", 1024, 1.0), ("a", 2048): _cell("a", 2048, 0.5),
             ("b", 1024): _cell("b", 1024, 0.0), ("b", 2048): _cell("b", 2048, 0.25)}
    run = summarize("r", None, None, cells)
    assert (run.task_mean("a").score, run.task_mean("b").score) == (75.0, 12.5)


def test_delta_is_rounded_to_two_decimals():
    base = {("a", 1024): Cell("a", 1024, np.array([1.0, 0.0, 0.0]), np.full(50, 1 / 3))}
    other = {("a", 1024): Cell("a", 1024, np.array([1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]), np.full(50, 2 / 7))}
    d = delta(base, other, ["a"], [1024])
    assert d.score == round(28.57 - 33.33, 2) == -4.76
