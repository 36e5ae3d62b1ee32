"""A builder of crafted run directories (RUN/pred/<task>/<length>[.<process>].jsonl, RUN/run.json)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reports.build import registry_metrics
from common.files import atomic_write_json, jsonl_line


class RunBuilder:
    """Writes prediction shards and run.json under `path`; records get consecutive indices per cell."""

    def __init__(self, path: Path):
        self.path = path
        self._next_index: dict[tuple[str, int], int] = {}

    def shard(self, task: str, length: int, process: int | None = None) -> Path:
        name = f"{length}.jsonl" if process is None else f"{length}.{process}.jsonl"
        return self.path / "pred" / task / name

    def add(
        self,
        task: str,
        length: int,
        samples: list[tuple[str, list[str]] | tuple[str, list[str], dict]],
        process: int | None = None,
        start: int | None = None,
    ) -> Path:
        """Appends (pred, outputs[, meta]) samples to the cell's shard; returns the shard's path.

        Indices continue from the cell's last one unless `start` is given.
        """
        path = self.shard(task, length, process)
        path.parent.mkdir(parents=True, exist_ok=True)
        start = self._next_index.get((task, length), 0) if start is None else start
        with open(path, "a", encoding="utf-8") as f:
            for i, (pred, outputs, *meta) in enumerate(samples, start=start):
                record = {"index": i, "task": task, "length": length, "pred": pred, "outputs": outputs}
                record["meta"] = meta[0] if meta else {}
                f.write(jsonl_line(record) + "\n")
        self._next_index[task, length] = start + len(samples)
        return path

    def write_run_json(self, info: dict) -> None:
        atomic_write_json(self.path / "run.json", info)

    def append_raw(self, task: str, length: int, text: str, process: int | None = None) -> Path:
        path = self.shard(task, length, process)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(text)
        return path


@pytest.fixture(scope="session")
def run_builder():
    """The RunBuilder class, for module-scoped fixtures (make_run is per test)."""
    return RunBuilder


@pytest.fixture
def make_run(tmp_path):
    """make_run(name) -> a RunBuilder for tmp_path/name (the directory is created)."""

    def make(name: str = "run") -> RunBuilder:
        path = tmp_path / name
        path.mkdir(parents=True)
        return RunBuilder(path)

    return make


@pytest.fixture(scope="session")
def metric_of():
    """task -> metric name from the real task registry (qa_* -> string_match_part, others -> all)."""
    return registry_metrics(())
