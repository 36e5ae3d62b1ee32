"""Reading one run directory: its prediction shards, run.json and the checkpoint's config.json.

Layout (DESIGN.md section 3):
    RUN/pred/<task>/<length>.jsonl             one shard per (task, length)
    RUN/pred/<task>/<length>.<process>.jsonl   or one per process when several hosts share a run
    RUN/run.json                               optional: model name, checkpoint config, costs
Shards of one (task, length) merge; the same (task, length, index) in two places is an error naming
both. A torn last line (a write cut short by a kill) is ignored; any other malformed line is an error
naming file:line. Other files under RUN/pred are ignored (temporary files, notes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.errors import UserError
from common.files import iter_jsonl, read_json

_SHARD_NAME = re.compile(r"^(\d+)(?:\.(\d+))?\.jsonl$")

COST_KEYS = ("prefill_tokens_per_s", "decode_ms_per_token", "peak_memory_bytes")


@dataclass(frozen=True)
class Prediction:
    """One scored-to-be sample: the decoded text and its gold strings."""

    index: int
    pred: str
    outputs: tuple[str, ...]
    meta: dict[str, Any]


@dataclass(frozen=True)
class Run:
    """Everything a report needs from one run directory.

    cells: (task, length) -> predictions sorted by index.
    costs: length -> {cost key: value} for the COST_KEYS run.json reports (missing keys left out).
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


def _record_line(path: Path, ordinal: int) -> int:
    """1-based line number of the `ordinal`-th (0-based) non-blank line: only used to word an error."""
    nonblank = (i for i, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1) if line.strip())
    for i, lineno in enumerate(nonblank):
        if i == ordinal:
            return lineno
    return ordinal + 1


def _check_record(record: dict, task: str, length: int) -> str | None:
    """The problem with one prediction line, or None when it is well formed for this (task, length)."""
    index = record.get("index")
    if not isinstance(index, int) or isinstance(index, bool):
        return "'index' must be an integer"
    if not isinstance(record.get("pred"), str):
        return "'pred' must be a string (the decoded text)"
    outputs = record.get("outputs")
    if not isinstance(outputs, list) or not outputs or not all(isinstance(o, str) for o in outputs):
        return "'outputs' must be a non-empty list of gold strings"
    if record.get("task", task) != task:
        return f"'task' is {record['task']!r} but the file lies under pred/{task}/"
    if record.get("length", length) != length:
        return f"'length' is {record['length']!r} but the file is for length {length}"
    if not isinstance(record.get("meta", {}), dict):
        return "'meta' must be an object"
    return None


def _read_shard(path: Path, task: str, length: int) -> list[Prediction]:
    preds = []
    for ordinal, record in enumerate(iter_jsonl(path, allow_torn_tail=True)):
        problem = _check_record(record, task, length)
        if problem:
            raise UserError(f"{path}:{_record_line(path, ordinal)}: {problem}; fix or delete that line")
        preds.append(Prediction(record["index"], record["pred"], tuple(record["outputs"]), record.get("meta", {})))
    return preds


def _read_cells(run_dir: Path) -> dict[tuple[str, int], tuple[Prediction, ...]]:
    pred_dir = run_dir / "pred"
    shards = sorted(
        (task_dir.name, int(m.group(1)), path)
        for task_dir in (sorted(pred_dir.iterdir()) if pred_dir.is_dir() else [])
        if task_dir.is_dir()
        for path in sorted(task_dir.iterdir())
        if (m := _SHARD_NAME.match(path.name)) and path.is_file()
    )
    cells: dict[tuple[str, int], dict[int, tuple[Prediction, Path]]] = {}
    for task, length, path in shards:
        seen = cells.setdefault((task, length), {})
        for p in _read_shard(path, task, length):
            if p.index in seen:
                other = seen[p.index][1]
                where = f"twice in {path}" if other == path else f"in both {other} and {path}"
                raise UserError(
                    f"{task} length {length}: index {p.index} appears {where}; delete the duplicate line or shard"
                )
            seen[p.index] = (p, path)
    merged = {
        key: tuple(p for _, (p, _) in sorted(by_index.items())) for key, by_index in cells.items() if by_index
    }
    if not merged:
        raise UserError(
            f"{run_dir}: no predictions (expected {pred_dir}/<task>/<length>.jsonl); run make eval-ruler first"
        )
    return merged


def _positive_int(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise UserError(f"{where} must be a positive integer token count, got {value!r}")
    return value


def _read_costs(per_length: Any, where: Path) -> dict[int, dict[str, float]]:
    if per_length is None:
        return {}
    if not isinstance(per_length, dict):
        raise UserError(f"{where}: 'per_length' must map a length to its costs, e.g. {{\"4096\": {{...}}}}")
    costs = {}
    for key, entry in per_length.items():
        if not str(key).isdigit() or not isinstance(entry, dict):
            raise UserError(f"{where}: per_length[{key!r}] must be a length in tokens mapping to an object")
        numbers = {k: float(entry[k]) for k in COST_KEYS if isinstance(entry.get(k), (int, float))}
        if numbers:
            costs[int(key)] = numbers
    return costs


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
    cells = _read_cells(run_dir)
    info: dict = {}
    run_json = run_dir / "run.json"
    if run_json.is_file():
        info = read_json(run_json)
        if not isinstance(info, dict):
            raise UserError(f"{run_json}: expected a JSON object; fix or delete it")
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
        costs=_read_costs(info.get("per_length"), run_json),
    )


def unique_labels(paths: list[Path]) -> list[str]:
    """Directory names as run labels; where two runs share a name, their paths as given instead."""
    names = [Path(p).resolve().name for p in paths]
    return [name if names.count(name) == 1 else str(p) for name, p in zip(names, paths)]
