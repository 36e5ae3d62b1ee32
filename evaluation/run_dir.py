"""The run directory: the one module that reads and writes anything under RUN (no JAX).

    RUN/.lock                                   flock'd by the one process writing the run; holds its pid
                                                (.lock.<process> per process under jax.distributed)
    RUN/run.json                                the claim (identity), settings, invocations, costs per length
    RUN/data/manifest.json, RUN/data/<task>/<length>.jsonl     samples (written by runners.prepare)
    RUN/pred/<task>/<length>.jsonl              one PredictionRecord per line, appended per sample
    RUN/pred/<task>/<length>.<process>.jsonl    one shard per process when several processes share a run
    RUN/summary.csv                             SUMMARY_COLUMNS: the report's summary.csv of this run (Avg. rows too)
    RUN/summary_table.csv, RUN/results.json     RULER's table (tasks x lengths, Avg.) and every summary number
                                                with its CI and provenance (built by reports.results)

Writers hold the lock (`RunDir.locked`), so two processes never append to one run. A prediction line is
written with one os.write on an O_APPEND descriptor and fsynced; a failed write is cut back, so a shard
only ever ends with whole lines, except after a SIGKILL mid-write, whose torn tail the next writer cuts
and readers skip. run.json merges every invocation: cells and costs are recomputed from all prediction
shards, each invocation is appended with its own wall time, and nothing a partial rerun did not touch
is lost. See docs/ARCHITECTURE.md for the formats.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import fcntl
import io
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from common.errors import UserError
from common.files import atomic_write_json, atomic_write_text, iter_jsonl, jsonl_line, read_json, write_all, write_error

RUN_FORMAT = 2
SUMMARY_COLUMNS = ("run", "task", "length", "n", "score", "ci_low", "ci_high")
COST_KEYS = ("prefill_tokens_per_s", "decode_ms_per_token", "peak_memory_bytes")
SHARD_NAME = re.compile(r"^(\d+)(?:\.(\d+))?\.jsonl$")


# ---------------------------------------------------------------------------------------------- records
@dataclass(frozen=True)
class PredictionRecord:
    """One evaluated sample: the decoded text, the sample's gold strings and meta, and its cost.

    The costs are the sample's share of its batch (batch time / batch size), so sums over samples give
    totals. prefill_s and decode_s are steady-state times; compile_s is the share of the compilation the
    batch triggered (0 once every shape of its length is compiled). Cost fields are None in lines
    written by other tools; reports need only index, pred, outputs and meta.
    """

    index: int
    pred: str
    outputs: tuple[str, ...]
    meta: dict[str, Any] = field(default_factory=dict)
    task: str | None = None
    length: int | None = None
    prompt_tokens: int | None = None
    pred_tokens: int | None = None
    prefill_s: float | None = None
    decode_s: float | None = None
    compile_s: float | None = None

    def to_json(self) -> dict:
        line = {k: v for k, v in asdict(self).items() if v is not None}
        line["outputs"] = list(self.outputs)
        for key in ("prefill_s", "decode_s", "compile_s"):
            if key in line:
                line[key] = round(line[key], 6)
        return line

    @classmethod
    def from_json(cls, line: dict, task: str, length: int) -> "PredictionRecord":
        """The record of one line found in the shard of (task, length); ValueError names what is wrong."""
        index = line.get("index")
        if not isinstance(index, int) or isinstance(index, bool):
            raise ValueError("'index' must be an integer")
        if not isinstance(line.get("pred"), str):
            raise ValueError("'pred' must be a string (the decoded text)")
        outputs = line.get("outputs")
        if not isinstance(outputs, list) or not outputs or not all(isinstance(o, str) for o in outputs):
            raise ValueError("'outputs' must be a non-empty list of gold strings")
        if line.get("task", task) != task:
            raise ValueError(f"'task' is {line['task']!r} but the file lies under pred/{task}/")
        if line.get("length", length) != length:
            raise ValueError(f"'length' is {line['length']!r} but the file is for length {length}")
        if not isinstance(line.get("meta", {}), dict):
            raise ValueError("'meta' must be an object")
        costs = {k: line.get(k) for k in ("prompt_tokens", "pred_tokens", "prefill_s", "decode_s", "compile_s")}
        for key, value in costs.items():
            if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0):
                raise ValueError(f"'{key}' must be a non-negative number")
        return cls(index=index, pred=line["pred"], outputs=tuple(outputs), meta=line.get("meta", {}), task=task,
                   length=length, **costs)


def shard_path(run: str | Path, task: str, length: int, process: int | None = None) -> Path:
    """RUN/pred/<task>/<length>.jsonl, or <length>.<process>.jsonl when several processes share a run."""
    name = f"{length}.jsonl" if process is None else f"{length}.{process}.jsonl"
    return Path(run) / "pred" / task / name


def _line_number(path: Path, ordinal: int) -> int:
    """1-based line number of the `ordinal`-th (0-based) non-blank line: only used to word an error."""
    nonblank = (i for i, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1) if line.strip())
    for i, lineno in enumerate(nonblank):
        if i == ordinal:
            return lineno
    return ordinal + 1


def read_shard(path: Path, task: str, length: int) -> list[PredictionRecord]:
    """The records of one shard (a torn last line skipped); a malformed line is a UserError naming it."""
    records = []
    for ordinal, line in enumerate(iter_jsonl(path, allow_torn_tail=True)):
        try:
            records.append(PredictionRecord.from_json(line, task, length))
        except ValueError as e:
            raise UserError(f"{path}:{_line_number(path, ordinal)}: {e}; fix or delete that line") from None
    return records


def iter_shards(run: str | Path) -> Iterator[tuple[str, int, Path]]:
    """(task, length, path) of every prediction shard under RUN/pred, sorted; other files are ignored."""
    pred_dir = Path(run) / "pred"
    if not pred_dir.is_dir():
        return
    for task_dir in sorted(pred_dir.iterdir()):
        if task_dir.is_dir():
            for path in sorted(task_dir.iterdir()):
                if (m := SHARD_NAME.match(path.name)) and path.is_file():
                    yield task_dir.name, int(m.group(1)), path


def read_predictions(run: str | Path) -> dict[tuple[str, int], tuple[PredictionRecord, ...]]:
    """(task, length) -> its records from every shard, sorted by index. The same index twice (in one
    shard or two) is a UserError naming both places; an empty result is returned as {}."""
    cells: dict[tuple[str, int], dict[int, tuple[PredictionRecord, Path]]] = {}
    for task, length, path in iter_shards(run):
        seen = cells.setdefault((task, length), {})
        for r in read_shard(path, task, length):
            if r.index in seen:
                other = seen[r.index][1]
                where = f"twice in {path}" if other == path else f"in both {other} and {path}"
                raise UserError(f"{task} length {length}: index {r.index} appears {where}; delete the duplicate line or shard")
            seen[r.index] = (r, path)
    return {key: tuple(r for _, (r, _) in sorted(by_index.items())) for key, by_index in cells.items() if by_index}


class PredictionShard:
    """One append-only shard of a run being written (the caller holds the run's lock).

    Opening it cuts a torn last line (a write interrupted by a kill) so that sample is redone; `done`
    maps the indices already written to their records.
    """

    def __init__(self, path: Path, task: str, length: int):
        self.path = Path(path)
        self.task, self.length = task, length
        self._fd: int | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.exists():
                self._cut_torn_tail()
        except OSError as e:
            raise write_error(self.path, e) from None
        self.done: dict[int, PredictionRecord] = {}
        for r in read_shard(self.path, task, length) if self.path.exists() else []:
            if r.index in self.done:
                raise UserError(f"{self.path}: index {r.index} appears twice; delete the file to redo it")
            self.done[r.index] = r

    def _cut_torn_tail(self) -> None:
        with open(self.path, "rb+") as f:
            data = f.read()
            keep = data.rfind(b"\n") + 1
            if keep != len(data):
                f.truncate(keep)
                f.flush()
                os.fsync(f.fileno())

    def append(self, record: PredictionRecord) -> None:
        """Writes the record as one whole line and fsyncs it; on failure (disk full, ...) the shard is cut
        back to its last whole line and a one-line UserError says how to resume."""
        if record.index in self.done:
            raise ValueError(f"{self.path}: index {record.index} already written")
        data = (jsonl_line(record.to_json()) + "\n").encode("utf-8")
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            size = os.fstat(self._fd).st_size
            try:
                write_all(self._fd, data)
                os.fsync(self._fd)
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, size)
                raise
        except OSError as e:
            raise write_error(self.path, e) from None
        self.done[record.index] = record

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def __enter__(self) -> "PredictionShard":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------- costs
def cost_per_length(cells: dict[tuple[str, int], tuple[PredictionRecord, ...]], peaks: dict[str, int] | None = None) -> dict:
    """Per length, from every record that carries costs: samples, steady-state prefill tokens/s and decode
    ms/token, samples/s (steady state), compile seconds, and the peak memory `peaks` gives."""
    totals: dict[int, dict[str, float]] = {}
    for (_, length), records in cells.items():
        t = totals.setdefault(length, dict.fromkeys(("samples", "prompt", "pred", "prefill", "decode", "compile"), 0))
        for r in records:
            if r.prefill_s is None or r.decode_s is None or r.prompt_tokens is None or r.pred_tokens is None:
                continue
            t["samples"] += 1
            t["prompt"] += r.prompt_tokens
            t["pred"] += r.pred_tokens
            t["prefill"] += r.prefill_s
            t["decode"] += r.decode_s
            t["compile"] += r.compile_s or 0.0
    out = {}
    for length, t in sorted(totals.items()):
        if not t["samples"]:
            continue
        steady = t["prefill"] + t["decode"]
        out[str(length)] = {
            "samples": int(t["samples"]),
            "prefill_tokens_per_s": round(t["prompt"] / t["prefill"], 2) if t["prefill"] > 0 else None,
            "decode_ms_per_token": round(1000 * t["decode"] / t["pred"], 3) if t["pred"] else None,
            "samples_per_s": round(t["samples"] / steady, 4) if steady > 0 else None,
            "compile_s": round(t["compile"], 3),
            "peak_memory_bytes": (peaks or {}).get(str(length)),
        }
    return out


def read_costs(per_length: Any, where: Path) -> dict[int, dict[str, float]]:
    """run.json's per_length as {length: {cost key: value}} (COST_KEYS that are numbers)."""
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


# ---------------------------------------------------------------------------------------------- summary
def summary_csv(rows: list[tuple[str, str, int, Any]]) -> str:
    """SUMMARY_COLUMNS from (run label, task, length, cell) rows; a cell has .n, .score and .ci (low, high)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(SUMMARY_COLUMNS)
    for label, task, length, cell in rows:
        low, high = cell.ci
        writer.writerow((label, task, length, cell.n, f"{cell.score:.2f}", f"{low:.2f}", f"{high:.2f}"))
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------- the run
class RunDir:
    """A run directory. Reading needs nothing; writing happens inside `with run.locked():`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.run_json = self.path / "run.json"

    @property
    def label(self) -> str:
        return self.path.resolve().name

    # -- the lock
    @contextlib.contextmanager
    def locked(self, process: int | None = None) -> Iterator["RunDir"]:
        """Holds an exclusive flock on RUN/.lock (RUN/.lock.<process> for one of several processes that
        share the run), released by the OS if the process dies. A second writer gets a one-line
        UserError naming the holder's pid."""
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"{self.path}: exists and is not a directory; pick another --run")
        lock_path = self.path / (".lock" if process is None else f".lock.{process}")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:
            raise write_error(self.path, e) from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise write_error(lock_path, e) from None
                holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
                raise UserError(
                    f"{self.path}: in use by another evaluation (pid {holder}); wait for it to finish, "
                    f"or stop it and rerun to resume"
                ) from None
            try:
                os.ftruncate(fd, 0)
                write_all(fd, f"{os.getpid()}\n".encode())
            except OSError as e:
                raise write_error(lock_path, e) from None
            yield self
        finally:
            os.close(fd)  # releases the flock

    # -- run.json: the claim and the invocations
    def info(self) -> dict:
        if not self.run_json.is_file():
            return {}
        info = read_json(self.run_json)
        if not isinstance(info, dict):
            raise UserError(f"{self.run_json}: expected a JSON object; fix or delete it")
        return info

    def check_claim(self, identity: dict, samples: int) -> bool:
        """Refuses a run claimed with another identity (checkpoint, seed, template, compute dtype) or more samples per
        cell than `samples`; returns whether the run is claimed already. Writes nothing."""
        info = self.info()
        before = info.get("identity")
        if before is None:
            return False
        if before != identity:
            changed = sorted(k for k in identity if before.get(k) != identity[k])
            raise UserError(
                f"{self.run_json}: this run was started with a different {', '.join(changed)} "
                f"({', '.join(f'{k}={before.get(k)!r}' for k in changed)}); use a new --run directory"
            )
        had = info.get("samples")
        if isinstance(had, int) and samples < had:
            raise UserError(
                f"{self.run_json}: this run evaluates {had} samples per cell; --samples {samples} would mix counts "
                f"in one summary: pass --samples {had} (or more), or use a new --run directory"
            )
        return True

    def claim(self, identity: dict, samples: int, checkpoint: dict) -> None:
        """Records the identity (once) and the samples per cell in run.json; call after validation."""
        info = self.info()
        info.update(format=RUN_FORMAT, identity=identity, checkpoint=checkpoint,
                    samples=max(samples, info.get("samples") or 0))
        info.setdefault("invocations", [])
        atomic_write_json(self.run_json, info)

    def record_invocation(self, invocation: dict, peaks: dict[str, int]) -> dict:
        """Appends one invocation (with its own wall time) to run.json and recomputes every length's costs
        from all prediction shards; peaks of lengths this invocation did not run are kept. Returns it."""
        info = self.info()
        cells = read_predictions(self.path)
        old = info.get("per_length") if isinstance(info.get("per_length"), dict) else {}
        merged_peaks = {k: v.get("peak_memory_bytes") for k, v in old.items() if isinstance(v, dict)}
        merged_peaks.update(peaks)
        earlier = info.get("invocations") or ([{"wall_s": info["wall_s"]}] if "wall_s" in info else [])  # format 1
        invocations = [*earlier, invocation]
        info.update(
            format=RUN_FORMAT,
            invocations=invocations,
            tasks=sorted({task for task, _ in cells}),
            lengths=sorted({length for _, length in cells}),
            wall_s=round(sum(i.get("wall_s", 0.0) for i in invocations), 3),
            versions=invocation.get("versions"),
            device=invocation.get("device"),
            peak_memory_bytes=max([p for p in merged_peaks.values() if p] or [0]) or None,
            per_length=cost_per_length(cells, merged_peaks),
        )
        atomic_write_json(self.run_json, info)
        return info

    # -- predictions
    def shard(self, task: str, length: int, process: int | None = None) -> PredictionShard:
        return PredictionShard(shard_path(self.path, task, length, process), task, length)

    def predictions(self) -> dict[tuple[str, int], tuple[PredictionRecord, ...]]:
        return read_predictions(self.path)

    def write_results(self, summary_csv_text: str, table_csv: str, results: dict) -> list[Path]:
        """RUN/summary.csv, RUN/summary_table.csv (each text as given) and RUN/results.json, each atomically."""
        paths = [self.path / "summary.csv", self.path / "summary_table.csv", self.path / "results.json"]
        atomic_write_text(paths[0], summary_csv_text)
        atomic_write_text(paths[1], table_csv)
        atomic_write_json(paths[2], results)
        return paths
