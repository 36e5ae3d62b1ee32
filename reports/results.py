"""A run's results for a paper: RUN/summary.csv, RUN/summary_table.csv and RUN/results.json, written together.

`write_run_results` scores the run's predictions and writes the three files; results.json (`SCHEMA`)
holds every number of RULER's table (cells, per-length averages, Avg., wAvg inc/dec, effective length)
with its n and bootstrap 95% CI, whether the average covers fewer than RULER's 13 tasks, and what made
the run (reports/README.md lists the fields). Scores are percentages with 2 decimals, lengths tokens.
Reads files only; never imports JAX.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Callable

from evaluation.run_dir import RunDir
from reports.aggregate import (
    RULER_TASK_COUNT,
    RULER_THRESHOLD,
    LengthsMean,
    RunSummary,
    effective_length_definition,
    lengths_mean,
    summarize,
)
from reports.provenance import Provenance, read_provenance
from reports.runs import load_run
from reports.scoring import CI_LEVEL, N_BOOT, Cell, score_run
from reports.tables import few_tasks_text, summary_csv, summary_table_csv
from ruler_tasks import RULER_REVISION

SCHEMA = 1


def _scored(x: Cell | LengthsMean) -> dict:
    """n (samples behind it), score and its 95% CI (percent)."""
    low, high = x.ci
    return {"n": x.n, "score": x.score, "ci_low": low, "ci_high": high}


def run_results(run: RunSummary, provenance: Provenance, *, threshold: float, seed: int) -> dict:
    """results.json's content for one scored run; `seed` is the bootstrap seed its cells were scored with."""
    overall = lengths_mean(run.cells)
    inc, dec = run.wavg or (None, None)
    fewest = run.fewest_tasks
    task_means = {task: run.task_mean(task) for task in run.tasks}
    return {
        "schema": SCHEMA,
        "run": run.label,
        "model": run.model,
        "train_length": run.train_length,
        "tasks": run.tasks,
        "lengths": run.lengths,
        "cells": [{"task": task, "length": length, **_scored(cell)} for (task, length), cell in sorted(run.cells.items())],
        "task_avg": {task: None if mean is None else _scored(mean) for task, mean in task_means.items()},
        "average": [
            {"length": length, "score": a.score, "ci_low": a.ci_low, "ci_high": a.ci_high, "n_tasks": a.n_tasks}
            for length, a in run.averages.items()
        ],
        "avg": {**_scored(overall), "n_lengths": overall.n_lengths},
        "wavg_inc": inc,
        "wavg_dec": dec,
        "effective_length": {
            "length": run.effective_length,
            "threshold": threshold,
            "definition": effective_length_definition(threshold),
        },
        "coverage": {
            "tasks": fewest,
            "ruler_tasks": RULER_TASK_COUNT,
            "fewer_than_ruler": fewest < RULER_TASK_COUNT,
            "note": few_tasks_text(fewest, threshold) if fewest < RULER_TASK_COUNT else None,
        },
        "provenance": {**asdict(provenance), "rulers_haystack": provenance.is_rulers_haystack},
        "scoring": {
            "ruler_revision": RULER_REVISION,
            "bootstrap_resamples": N_BOOT,
            "ci_level": CI_LEVEL,
            "bootstrap_seed": seed,
        },
    }


def write_run_results(
    run_dir: RunDir, metric_of: Callable[[str], str], *, seed: int = 0, threshold: float = RULER_THRESHOLD
) -> dict[tuple[str, int], Cell]:
    """Scores every prediction of `run_dir` (`metric_of(task)` names the task's metric; bootstrap seeded
    with `seed`), writes RUN/summary.csv, RUN/summary_table.csv and RUN/results.json, and returns the
    scored cells {(task, length): Cell}. The caller holds the run's lock."""
    run = load_run(run_dir.path)
    cells = score_run(run, metric_of, seed=seed)
    summary = summarize(run.label, run.model, run.train_length, cells, threshold)
    run_dir.write_results(
        summary_csv([summary]), summary_table_csv(summary),
        run_results(summary, read_provenance(run), threshold=threshold, seed=seed),
    )
    return cells
