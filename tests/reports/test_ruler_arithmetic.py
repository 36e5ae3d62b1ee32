"""Scores and their averages use RULER's arithmetic, `round(sum(scores) / len(scores) [* 100], 2)`: on
an exact .xx5 tie numpy's pairwise mean rounds the other way (issue 15)."""

import numpy as np

from reports.aggregate import length_averages, lengths_mean, summarize
from reports.scoring import Cell
from ruler_tasks.metrics import string_match_all


def test_cwe_like_cell_of_16_on_a_tie_scores_as_ruler():
    found = [3, 2, 9, 4, 8, 4, 10, 6, 9, 8, 0, 7, 9, 9, 3, 6]  # gold words found of 10, 97 in all: 60.625%
    gold = [f"w{i}" for i in range(10)]
    scores = np.array([string_match_all(" ".join(gold[:k]), gold) for k in found])
    cell = Cell("cwe", 4096, scores, scores)
    assert cell.score == 60.63
    ruler = sum([sum([1.0 if r in " ".join(gold[:k]) else 0.0 for r in gold]) / len(gold) for k in found])
    assert round(ruler / len(found) * 100, 2) == 60.63, "RULER's evaluate.py on the same cell"
    assert round(100.0 * float(scores.mean()), 2) == 60.62, "the numpy mean this replaces"


# Eight task scores whose mean is an exact .xx5 tie: a sequential sum gives 42.425 -> 42.43, numpy's
# pairwise sum lands just below it -> 42.42. Each is a cell of k hits out of n samples.
TIE_HITS = [(8, 9), (5, 7), (2, 7), (0, 3), (1, 9), (8, 11), (1, 6), (3, 6)]
TIE_SCORES = [88.89, 71.43, 28.57, 0.0, 11.11, 72.73, 16.67, 50.0]


def _hits_cell(task: str, length: int, k: int, n: int) -> Cell:
    return Cell(task, length, np.array([1.0] * k + [0.0] * (n - k)), np.full(10, k / n))


def test_the_tie_is_one_where_numpy_rounds_the_other_way():
    assert [_hits_cell("t", 4096, k, n).score for k, n in TIE_HITS] == TIE_SCORES
    assert round(sum(TIE_SCORES) / len(TIE_SCORES), 2) == 42.43
    assert round(float(np.mean(TIE_SCORES)), 2) == 42.42


def test_average_over_tasks_at_a_length_uses_rulers_arithmetic_on_a_tie():
    cells = {(f"t{i}", 4096): _hits_cell(f"t{i}", 4096, k, n) for i, (k, n) in enumerate(TIE_HITS)}
    assert length_averages(cells)[4096].score == 42.43
    assert lengths_mean(cells).score == 42.43  # one length: Avg. is that average


def test_avg_over_lengths_uses_rulers_arithmetic_on_a_tie():
    lengths = [1024 * 2**i for i in range(len(TIE_HITS))]
    cells = {("t", length): _hits_cell("t", length, k, n) for length, (k, n) in zip(lengths, TIE_HITS)}
    assert [a.score for a in length_averages(cells).values()] == TIE_SCORES
    assert lengths_mean(cells).score == 42.43
    assert summarize("r", None, None, cells).task_mean("t").score == 42.43
