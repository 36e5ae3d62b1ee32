"""Reading one run directory for a report: its predictions, run.json's costs and the training length.

Everything under RUN is parsed by `evaluation.run_dir` (the one owner of the format; see
docs/ARCHITECTURE.md): shards of one (task, length) merge, the same (task, length, index) in two places is
an error naming both, a torn last line is ignored, any other malformed line is an error naming file:line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.errors import UserError
from common.files import read_json
from evaluation.run_dir import PredictionRecord, RunDir, read_costs, read_predictions

Prediction = PredictionRecord  # what a report reads of one sample: index, pred, outputs, meta


@dataclass(frozen=True)
class Run:
    """Everything a report needs from one run directory.

    cells: (task, length) -> predictions sorted by index.
    costs: length -> {cost key: value} for the cost keys run.json reports (missing keys left out).
    """

    label: str
    path: Path
    model: str | None
    train_length: int | None
    cells: dict[tuple[str, int], tuple[Prediction, ...]]
    costs: dict[int, dict[str, float]] = field(default_factory=dict)

    @property
    def tasks(self) -> list[str]:
        return sorted({task for task, _ in self.cells})

    @property
    def lengths(self) -> list[int]:
        return sorted({length for _, length in self.cells})


def _positive_int(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise UserError(f"{where} must be a positive integer token count, got {value!r}")
    return value


def _checkpoint_train_context(checkpoint: dict, where: Path) -> int | None:
    """train_context from run.json's checkpoint.config, else from the checkpoint's own config.json."""
    config = checkpoint.get("config")
    if isinstance(config, dict) and "train_context" in config:
        return _positive_int(config["train_context"], f"{where}: checkpoint.config.train_context")
    ckpt_path = checkpoint.get("path")
    if isinstance(ckpt_path, str) and (Path(ckpt_path) / "config.json").is_file():
        config_path = Path(ckpt_path) / "config.json"
        config = read_json(config_path)
        if isinstance(config, dict):
            return _positive_int(config.get("train_context"), f"{config_path}: train_context")
    return None


def load_run(path: str | Path, *, label: str | None = None, train_length: int | None = None) -> Run:
    """Reads a run directory; `train_length` overrides what run.json or the checkpoint config say."""
    run_dir = Path(path)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such run directory; pass a directory made by make eval-ruler")
    cells = read_predictions(run_dir)
    if not cells:
        raise UserError(
            f"{run_dir}: no predictions (expected {run_dir / 'pred'}/<task>/<length>.jsonl); run make eval-ruler first"
        )
    run = RunDir(run_dir)
    run_json, info = run.run_json, run.info()
    checkpoint = info.get("checkpoint") if isinstance(info.get("checkpoint"), dict) else {}
    model = checkpoint.get("name") if isinstance(checkpoint.get("name"), str) else None
    if train_length is None:
        train_length = _checkpoint_train_context(checkpoint, run_json)
    return Run(
        label=label or run_dir.resolve().name,
        path=run_dir,
        model=model,
        train_length=train_length,
        cells=cells,
        costs=read_costs(info.get("per_length"), run_json),
    )


def unique_labels(paths: list[Path]) -> list[str]:
    """Directory names as run labels; where two runs share a name, their paths as given instead."""
    names = [Path(p).resolve().name for p in paths]
    return [name if names.count(name) == 1 else str(p) for name, p in zip(names, paths)]
