"""Prediction files that survive a kill at any moment: RUN/pred/<task>/<length>[.<process>].jsonl.

A file is only ever appended to, one whole line per finished sample, flushed and fsynced. A SIGKILL can
leave at most one torn last line (no trailing newline); opening the file for resume truncates it away so
that sample is simply redone. Lines are keyed by the sample's `index` (its ordinal, never overwritten).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from common.errors import UserError
from common.files import append_jsonl, iter_jsonl


def prediction_path(run_dir: Path, task: str, length: int, process: int | None = None) -> Path:
    """RUN/pred/<task>/<length>.jsonl, or <length>.<process>.jsonl when several processes share a run."""
    name = f"{length}.jsonl" if process is None else f"{length}.{process}.jsonl"
    return Path(run_dir) / "pred" / task / name


class PredictionFile:
    """An append-only prediction shard; `done` holds the indices already written, in file order."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.done: dict[int, dict] = {}
        if self.path.exists():
            self._truncate_torn_tail()
            for record in iter_jsonl(self.path):
                index = record.get("index")
                if not isinstance(index, int):
                    raise UserError(f"{self.path}: a line has no integer 'index'; delete the file to redo it")
                if index in self.done:
                    raise UserError(f"{self.path}: index {index} appears twice; delete the file to redo it")
                self.done[index] = record
        self._file = None

    def _truncate_torn_tail(self) -> None:
        """Cuts a last line that lacks its newline (a write interrupted by a kill)."""
        with open(self.path, "rb+") as f:
            data = f.read()
            keep = data.rfind(b"\n") + 1
            if keep != len(data):
                f.truncate(keep)
                f.flush()
                os.fsync(f.fileno())

    def append(self, record: dict) -> None:
        if record["index"] in self.done:
            raise ValueError(f"{self.path}: index {record['index']} already written")
        if self._file is None:
            self._file = open(self.path, "a", encoding="utf-8", newline="\n")
        try:
            append_jsonl(self._file, record)
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise UserError(f"{self.path}: disk full; free space and rerun the same command to resume") from None
            raise
        self.done[record["index"]] = record

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> "PredictionFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
