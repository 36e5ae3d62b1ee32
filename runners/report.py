"""Length-generalization report from run directories: make report / python -m runners.report.

    python -m runners.report RUN [RUN ...] --out DIR [--threshold 85.6] [--train-length 4096] \
        [--task-file F] [--seed 0] [--label "RAttention 512=runs/a"]

Writes into DIR what `reports.build.build_report` writes: summary.csv, summary.md, report.html
(self-contained) and the figures, each as PNG, PDF and SVG. `--label NAME=RUN` (repeatable) names a run
in legends, tables and file names; other runs are named by their directory. Reads files only; never
imports JAX.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from common.cli import user_errors_exit_2
from common.errors import UserError
from reports.aggregate import RULER_THRESHOLD
from reports.build import build_report, registry_metrics


def _label(value: str) -> tuple[str, str]:
    name, sep, run = value.partition("=")
    if not sep or not name.strip() or not run:
        raise argparse.ArgumentTypeError(f"{value!r} is not NAME=RUN (e.g. 'RAttention 512=runs/rattn')")
    return run, name.strip()


def _threshold(value: str) -> float:
    try:
        t = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number (e.g. 85.6)") from None
    if not 0.0 <= t <= 100.0:
        raise argparse.ArgumentTypeError(f"{t:g} is outside 0..100 (scores are percentages)")
    return t


def _positive_int(value: str) -> int:
    if not value.isdigit() or int(value) <= 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive token count (e.g. 4096)")
    return int(value)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m runners.report", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run directories (each with pred/<task>/<length>.jsonl)")
    parser.add_argument("--out", required=True, help="output directory (created if missing)")
    parser.add_argument("--threshold", type=_threshold, default=RULER_THRESHOLD, help="effective-length threshold")
    parser.add_argument("--train-length", type=_positive_int, help="training length to mark (overrides run.json)")
    parser.add_argument("--task-file", action="append", default=[], help="extra task file(s) for the registry")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--label", type=_label, action="append", default=[], metavar="NAME=RUN",
                        help="name RUN as NAME in legends and tables (repeatable)")
    return parser.parse_intermixed_args(argv)


def _labels(pairs: list[tuple[str, str]]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for run, name in pairs:
        if run in labels and labels[run] != name:
            raise UserError(f"--label: {run} is labelled twice ({labels[run]!r} and {name!r}); keep one")
        labels[run] = name
    return labels


@user_errors_exit_2
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    written = build_report(
        args.runs,
        args.out,
        registry_metrics(args.task_file),
        threshold=args.threshold,
        train_length=args.train_length,
        seed=args.seed,
        labels=_labels(args.label),
    )
    print(f"wrote {len(written)} files to {args.out} (open {Path(args.out) / 'report.html'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
