"""A cell's score uses RULER's arithmetic, `round(sum(scores) / len(scores) * 100, 2)`: on an exact
.xx5 tie numpy's pairwise mean rounds the other way (issue 15)."""

import numpy as np

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
