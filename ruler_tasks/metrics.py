"""RULER's metrics, exactly as NVIDIA/RULER's scripts/eval/synthetic/constants.py defines them.

A prediction is first cleaned (strip; every control character in [\\x00-\\x1f] becomes a newline;
strip again). Then, case-insensitively:
- string_match_all: the fraction of gold strings that occur in the prediction;
- string_match_part: 1 if any gold string occurs, else 0 (RULER's definition; lm-eval's port averages).
Cell scores (RULER's arithmetic over these per-sample scores) are in reports/scoring.py.
"""

from __future__ import annotations

import re
from typing import Callable, Sequence

_CONTROL_CHARS = re.compile(r"[\x00-\x1f]")


def clean_prediction(pred: str) -> str:
    """RULER's postprocess_pred: strip, control characters to newlines, strip."""
    return _CONTROL_CHARS.sub("\n", pred.strip()).strip()


def string_match_all(pred: str, refs: Sequence[str]) -> float:
    """Per-sample score in [0, 1]: the fraction of `refs` found in the cleaned `pred`."""
    if not refs:
        raise ValueError("string_match_all needs at least one gold string")
    pred = clean_prediction(pred).lower()
    return sum(r.lower() in pred for r in refs) / len(refs)


def string_match_part(pred: str, refs: Sequence[str]) -> float:
    """Per-sample score in {0, 1}: 1 if any of `refs` is found in the cleaned `pred`."""
    if not refs:
        raise ValueError("string_match_part needs at least one gold string")
    pred = clean_prediction(pred).lower()
    return float(max(r.lower() in pred for r in refs))


SampleMetric = Callable[[str, Sequence[str]], float]

METRICS: dict[str, SampleMetric] = {
    "string_match_all": string_match_all,
    "string_match_part": string_match_part,
}


def get_metric(name: str) -> SampleMetric:
    from common.errors import UserError

    try:
        return METRICS[name]
    except KeyError:
        raise UserError(f"unknown metric {name!r}; use one of {sorted(METRICS)}") from None


def sample_scores(metric: str, preds: Sequence[str], refs: Sequence[Sequence[str]]) -> list[float]:
    """Per-sample scores in [0, 1] for aligned predictions and gold lists."""
    if len(preds) != len(refs):
        raise ValueError(f"{len(preds)=} predictions but {len(refs)=} gold lists")
    fn = get_metric(metric)
    return [fn(p, r) for p, r in zip(preds, refs)]

