"""The length-generalization report from run directories (`build_report`; its CLI is runners.report).

Writes into OUT: summary.csv, summary.md, report.html (self-contained) and the figures summary.md
links, each as PNG, PDF and SVG (average_vs_length, tasks_vs_length, heatmap_<run>, depth_<run>,
cost_vs_length). Every file is written atomically. Each task's metric comes from the task registry
(`registry_metrics`), so a user's task (registered through RULER_TASKS or a task file) is scored with
no change here. Reads files only; never imports JAX.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Sequence

from reports.aggregate import RULER_THRESHOLD, compare, summarize
from reports.depths import depth_grid
from reports.provenance import read_provenance
from reports.document import Image, build_document
from reports.render import to_html, to_markdown
from reports.runs import Run, load_run, unique_labels
from reports.scoring import score_run
from reports.tables import summary_csv
from common.errors import UserError
from common.files import atomic_write_bytes, atomic_write_text


def registry_metrics(tasks_files: Sequence[str | Path]) -> Callable[[str], str]:
    """task name -> metric name, from the task registry (default tasks + RULER_TASKS + `tasks_files`)."""
    from ruler_tasks.registry import load_registry

    registry = load_registry(extra=tuple(tasks_files))
    return lambda task: registry.get(task).metric


def _task_metrics(run: Run, metric_of: Callable[[str], str]) -> dict[str, str]:
    """task -> metric name for every task of `run`; an unregistered task names its directory."""
    metrics = {}
    for task in run.tasks:
        try:
            metrics[task] = metric_of(task)
        except UserError as e:
            hint = "or register it with --task-file / RULER_TASKS"
            raise UserError(f"{run.path / 'pred' / task}: {e}; {hint}") from None
    return metrics


def build_report(
    run_paths: Sequence[str | Path],
    out: str | Path,
    metric_of: Callable[[str], str],
    *,
    threshold: float = RULER_THRESHOLD,
    train_length: int | None = None,
    seed: int = 0,
    labels: Mapping[str, str] | None = None,
) -> list[Path]:
    """Reads the runs, scores them and writes the report into `out`; returns the files written.

    labels: run directory (as given, or any path to it) -> the name legends and tables use for it;
    other runs are named by their directory."""
    paths = [Path(p) for p in run_paths]
    if not paths:
        raise UserError("give at least one run directory")
    resolved = [p.resolve() for p in paths]
    for i, p in enumerate(resolved):
        if p in resolved[:i]:
            raise UserError(f"{paths[i]}: run given twice; list each run directory once")
    names = _run_names(paths, labels or {})
    runs = [load_run(p, label=label, train_length=train_length) for p, label in zip(paths, names)]

    summaries, provenances = [], []
    grids = {}
    for run in runs:
        provenances.append(read_provenance(run))
        metrics = _task_metrics(run, metric_of)
        cells = score_run(run, metrics.__getitem__, seed=seed)
        summaries.append(summarize(run.label, run.model, run.train_length, cells, threshold))
        grids[run.label] = depth_grid(run, metrics.__getitem__)
    comparison = compare(summaries, threshold) if len(summaries) > 1 else None
    costs = {run.label: run.costs for run in runs if run.costs}
    blocks = build_document(summaries, provenances, grids, costs, comparison, threshold)

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a directory; pick another --out")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for block in blocks:
        if isinstance(block, Image):
            for fmt, data in block.files.items():
                atomic_write_bytes(out / f"{block.stem}.{fmt}", data)
                written.append(out / f"{block.stem}.{fmt}")
    texts = {
        "summary.csv": summary_csv(summaries),
        "summary.md": to_markdown(blocks),
        "report.html": to_html(blocks, "RULER length generalization: " + ", ".join(s.label for s in summaries)),
    }
    for name, text in texts.items():
        atomic_write_text(out / name, text)
        written.append(out / name)
    return written


def _run_names(paths: list[Path], labels: Mapping[str, str]) -> list[str]:
    """Each run's name: its --label, else its directory name (its path where two share a name)."""
    by_dir = {Path(run).resolve(): name for run, name in labels.items()}
    for run, name in labels.items():
        if Path(run).resolve() not in {p.resolve() for p in paths}:
            raise UserError(f"--label {name}={run}: {run} is not one of the runs given; label a run directory you pass")
    names = [by_dir.get(p.resolve(), default) for p, default in zip(paths, unique_labels(paths))]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise UserError(f"--label: two runs are named {name!r}; give each run its own name")
    return names
