"""The evaluation loop: every (task, length) cell, in fixed batches, through a Predictor, into a run.

    cells = [Cell(task, length, samples), ...]          samples as prepared, in index order
    check_lengths(cells, count)                         before any model sees a sample
    Evaluator(predictor, run_dir, batch=8).run(cells)   appends one PredictionRecord per sample

Batches are fixed slices of a cell's sample order (the same whether or not a run was interrupted), so a
resumed run computes exactly the batches an uninterrupted one would: a batch runs when any of its samples
is unfinished, and only its unfinished samples are written. Under several processes (jax.distributed),
process p takes the samples with index % process_count == p and writes its own shard. Library code: no
printing; progress goes to the `on_record` callback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from common.errors import UserError
from evaluation.predictors import Prediction, Predictor
from evaluation.run_dir import PredictionRecord, RunDir


@dataclass(frozen=True)
class Cell:
    """One (task, length): its samples (dicts as runners.prepare writes them), in index order."""

    task: str
    length: int
    samples: tuple[dict, ...]


def batches(samples: Sequence[dict], size: int) -> list[list[dict]]:
    """Fixed slices of the sample order: the same batches whether or not the run was interrupted."""
    return [list(samples[i:i + size]) for i in range(0, len(samples), size)]


def check_lengths(cells: Sequence[Cell], count: Callable[[dict], int], where: Callable[[Cell], str]) -> None:
    """Refuses a sample whose tokens (prompt + tokens to generate, as `count` gives them) exceed its cell's
    target length, before any model sees it; `where(cell)` names the cell's data file."""
    for cell in cells:
        for sample in cell.samples:
            n = count(sample)
            if n > cell.length:
                raise UserError(
                    f"{where(cell)}: sample {sample['index']} of {cell.task} needs {n} tokens (prompt + tokens to "
                    f"generate) but is filed at length {cell.length}; fix the task's generator to fit its budget"
                )


def to_record(sample: dict, length: int, p: Prediction) -> PredictionRecord:
    """The record of one predicted sample; `length` is the cell's target length."""
    return PredictionRecord(
        index=sample["index"], pred=p.pred, outputs=tuple(sample["outputs"]), meta=sample["meta"], task=sample["task"],
        length=length, prompt_tokens=p.prompt_tokens, pred_tokens=p.pred_tokens, prefill_s=p.prefill_s,
        decode_s=p.decode_s, compile_s=p.compile_s,
    )


class Evaluator:
    """Runs cells through `predictor` into `run` (whose lock the caller holds)."""

    def __init__(self, predictor: Predictor, run: RunDir, *, batch: int, process: int = 0, process_count: int = 1,
                 on_record: Callable[[PredictionRecord], None] | None = None):
        if batch < 1:
            raise ValueError(f"{batch=} must be at least 1")
        self.predictor = predictor
        self.run_dir = run
        self.batch = batch
        self.process, self.process_count = process, process_count
        self.on_record = on_record or (lambda record: None)

    def mine(self, cell: Cell) -> list[dict]:
        """This process's samples of the cell."""
        return [s for s in cell.samples if s["index"] % self.process_count == self.process]

    def shard(self, cell: Cell):
        return self.run_dir.shard(cell.task, cell.length, self.process if self.process_count > 1 else None)

    def progress(self, cells: Sequence[Cell]) -> tuple[int, int]:
        """(this process's samples, those already finished) over `cells`."""
        total = done = 0
        for cell in cells:
            mine = self.mine(cell)
            with self.shard(cell) as shard:
                total += len(mine)
                done += sum(s["index"] in shard.done for s in mine)
        return total, done

    def run_cell(self, cell: Cell) -> None:
        """Runs every batch that has an unfinished sample; appends the unfinished samples' records."""
        with self.shard(cell) as shard:
            for group in batches(self.mine(cell), self.batch):
                if all(s["index"] in shard.done for s in group):
                    continue
                for sample, p in zip(group, self.predictor.predict(group), strict=True):
                    if sample["index"] in shard.done:
                        continue
                    record = to_record(sample, cell.length, p)
                    shard.append(record)
                    self.on_record(record)

    def run(self, cells: Sequence[Cell], on_length_end: Callable[[int], None] | None = None) -> None:
        """Every cell, length by length (in the order given); `on_length_end(length)` after each length."""
        lengths = list(dict.fromkeys(cell.length for cell in cells))
        for length in lengths:
            for cell in cells:
                if cell.length == length:
                    self.run_cell(cell)
            if on_length_end is not None:
                on_length_end(length)
