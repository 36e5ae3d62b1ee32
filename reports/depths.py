"""Needle retrieval by depth and length, pooled over the NIAH tasks of one run.

The NIAH generator (ruler_tasks/niah.py) stores in each sample's meta `needle_depths`, where each
inserted needle went as a fraction of the haystack (0.0 = start, 1.0 = end), and `needles`, the needle
sentences in the same order. A gold string is placed at the depth of the one needle that contains it
(multikey distractor needles hold no gold string and are not counted); without `needles`, depths pair
with the gold strings in order when the counts agree. A needle counts as retrieved when its gold string
is in the cleaned prediction (case-insensitive, as string_match_all does for one string); with a single
depth and several gold strings, the sample's own score is used. Other samples are left out.
Depths fall into DEPTH_BINS equal bins; an empty (bin, length) is NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from reports.runs import Prediction, Run
from ruler_tasks.metrics import clean_prediction, get_metric

DEPTH_BINS = 10


@dataclass(frozen=True)
class DepthGrid:
    """values, counts: (DEPTH_BINS, len(lengths)): mean retrieval in [0, 1] (NaN if no needle), needles."""

    lengths: tuple[int, ...]
    values: np.ndarray
    counts: np.ndarray

    @property
    def row_labels(self) -> list[str]:
        width = 100 // DEPTH_BINS
        return [f"{i * width}-{(i + 1) * width}%" for i in range(DEPTH_BINS)]


def _is_fraction(d: Any) -> bool:
    return isinstance(d, (int, float)) and not isinstance(d, bool) and 0.0 <= d <= 1.0


def _gold_depths(pred: Prediction) -> list[tuple[float, str]] | None:
    """(depth, gold string) pairs, or None when the meta does not place the gold strings."""
    depths = pred.meta.get("needle_depths")
    if not isinstance(depths, list) or not depths or not all(_is_fraction(d) for d in depths):
        return None
    needles = pred.meta.get("needles")
    if isinstance(needles, list) and len(needles) == len(depths) and all(isinstance(n, str) for n in needles):
        placed = []
        for gold in pred.outputs:
            holders = [d for d, needle in zip(depths, needles) if gold in needle]
            if len(holders) == 1:
                placed.append((float(holders[0]), gold))
        return placed
    if len(depths) == len(pred.outputs):
        return [(float(d), gold) for d, gold in zip(depths, pred.outputs)]
    return None


def needle_points(pred: Prediction, metric: str) -> list[tuple[float, float]]:
    """(depth fraction, score in [0, 1]) for each needle of one prediction that can be placed."""
    placed = _gold_depths(pred)
    if placed is not None:
        text = clean_prediction(pred.pred).lower()
        return [(d, float(gold.lower() in text)) for d, gold in placed]
    depths = pred.meta.get("needle_depths")
    if isinstance(depths, list) and len(depths) == 1 and _is_fraction(depths[0]):
        return [(float(depths[0]), get_metric(metric)(pred.pred, pred.outputs))]
    return []


def depth_grid(run: Run, metric_of: Callable[[str], str]) -> DepthGrid | None:
    """The run's depth x length grid, or None when no prediction carries needle depths."""
    lengths = run.lengths
    sums = np.zeros((DEPTH_BINS, len(lengths)))
    counts = np.zeros((DEPTH_BINS, len(lengths)), dtype=np.int64)
    for (task, length), preds in run.cells.items():
        points = [pt for p in preds for pt in needle_points(p, metric_of(task))]
        if not points:
            continue
        depths, scores = np.array(points).T
        bins = np.minimum((depths * DEPTH_BINS).astype(np.int64), DEPTH_BINS - 1)
        col = lengths.index(length)
        np.add.at(sums[:, col], bins, scores)
        np.add.at(counts[:, col], bins, 1)
    if not counts.any():
        return None
    with np.errstate(invalid="ignore", divide="ignore"):
        values = np.where(counts > 0, sums / counts, np.nan)
    keep = counts.any(axis=0)
    return DepthGrid(tuple(n for n, k in zip(lengths, keep) if k), values[:, keep], counts[:, keep])
