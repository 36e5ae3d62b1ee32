"""The evaluation loop's resume rules, in process: fixed batches, skips, shards per process, torn tails.

A recording predictor stands in for a model, so each test runs in milliseconds; the same rules under real
processes killed with SIGKILL are in tests/reliability/test_kill_resume.py.
"""

import json

import pytest

from common.errors import UserError
from evaluation.evaluator import Cell, Evaluator, batches, check_lengths, to_record
from evaluation.predictors import Prediction
from evaluation.run_dir import PredictionRecord, PredictionShard, RunDir, shard_path


def sample(index: int, task: str = "niah_single_1") -> dict:
    return {"index": index, "input": f"prompt {index}", "outputs": [f"gold{index}"], "task": task,
            "meta": {"depth": index / 10}}


def cell(n: int, task: str = "niah_single_1", length: int = 1024) -> Cell:
    return Cell(task, length, tuple(sample(i, task) for i in range(n)))


class RecordingPredictor:
    """Predicts "p<index>@<batch members>", so each record also says which batch computed it."""

    def __init__(self):
        self.calls: list[list[int]] = []

    def predict(self, group):
        members = [s["index"] for s in group]
        self.calls.append(members)
        return [Prediction(pred=f"p{s['index']}@{members}", prompt_tokens=10 + s["index"], pred_tokens=2,
                           prefill_s=0.5, decode_s=0.25, compile_s=0.0) for s in group]


def written(run: RunDir, c: Cell, process: int | None = None) -> list[dict]:
    path = shard_path(run.path, c.task, c.length, process)
    return [json.loads(line) for line in path.read_text().splitlines()]


def record_of(line: dict) -> PredictionRecord:
    return PredictionRecord.from_json(line, line["task"], line["length"])


def test_batches_are_fixed_slices_of_the_sample_order():
    samples = [sample(i) for i in range(7)]
    assert [[s["index"] for s in b] for b in batches(samples, 3)] == [[0, 1, 2], [3, 4, 5], [6]]
    assert [[s["index"] for s in b] for b in batches(samples, 7)] == [list(range(7))]
    assert batches([], 3) == []


def test_a_fresh_run_writes_every_sample_once_in_index_order(tmp_path):
    run, c, predictor = RunDir(tmp_path / "run"), cell(7), RecordingPredictor()
    seen = []
    Evaluator(predictor, run, batch=3, on_record=seen.append).run([c])
    assert predictor.calls == [[0, 1, 2], [3, 4, 5], [6]]
    lines = written(run, c)
    assert [line["index"] for line in lines] == list(range(7))
    assert [r.index for r in seen] == list(range(7))
    assert lines[4]["pred"] == "p4@[3, 4, 5]" and lines[4]["outputs"] == ["gold4"] and lines[4]["length"] == 1024


@pytest.mark.parametrize("done", [{0, 1, 2, 3}, {0, 1, 2, 4}, {3, 4, 5}, {6}, set(range(7))],
                         ids=["mid-batch", "gap-in-batch", "whole-middle-batch", "last", "all"])
def test_a_resumed_run_recomputes_exactly_the_unfinished_batches_and_writes_only_what_is_missing(tmp_path, done):
    """Batch 3 over 7 samples, some already written: a batch runs whole when any of its samples is missing
    (so its predictions are the uninterrupted run's), and only the missing samples are appended."""
    reference = RecordingPredictor()
    Evaluator(reference, RunDir(tmp_path / "whole"), batch=3).run([cell(7)])
    uninterrupted = {line["index"]: line for line in written(RunDir(tmp_path / "whole"), cell(7))}

    run, c = RunDir(tmp_path / "run"), cell(7)
    with run.shard(c.task, c.length) as shard:
        for i in sorted(done):
            shard.append(record_of(uninterrupted[i]))
    predictor = RecordingPredictor()
    Evaluator(predictor, run, batch=3).run([c])

    expected_calls = [b for b in ([0, 1, 2], [3, 4, 5], [6]) if not set(b) <= done]
    assert predictor.calls == expected_calls
    lines = written(run, c)
    assert [line["index"] for line in lines] == sorted(done) + sorted(set(range(7)) - done)
    assert {line["index"]: line for line in lines} == uninterrupted


def test_a_torn_last_line_is_cut_and_that_sample_redone(tmp_path):
    run, c = RunDir(tmp_path / "run"), cell(4)
    Evaluator(RecordingPredictor(), run, batch=2).run([c])
    path = shard_path(run.path, c.task, c.length)
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:3]) + lines[3][:20])  # a kill in the middle of writing index 3
    with PredictionShard(path, c.task, c.length) as shard:
        assert sorted(shard.done) == [0, 1, 2]
    assert path.read_text() == "".join(lines[:3])
    predictor = RecordingPredictor()
    Evaluator(predictor, run, batch=2).run([c])
    assert predictor.calls == [[2, 3]]
    assert path.read_text() == "".join(lines)


def test_a_shard_refuses_an_index_twice(tmp_path):
    run, c = RunDir(tmp_path / "run"), cell(2)
    Evaluator(RecordingPredictor(), run, batch=2).run([c])
    path = shard_path(run.path, c.task, c.length)
    with PredictionShard(path, c.task, c.length) as shard, pytest.raises(ValueError, match="index 1 already written"):
        shard.append(record_of(written(run, c)[1]))
    path.write_text(path.read_text() + path.read_text().splitlines(keepends=True)[0])
    with pytest.raises(UserError, match="index 0 appears twice; delete the file"):
        PredictionShard(path, c.task, c.length)


@pytest.mark.parametrize("process_count", [2, 3])
def test_each_process_takes_its_residue_class_into_its_own_shard(tmp_path, process_count):
    run, c = RunDir(tmp_path / "run"), cell(8)
    for p in range(process_count):
        predictor = RecordingPredictor()
        evaluator = Evaluator(predictor, run, batch=2, process=p, process_count=process_count)
        assert evaluator.progress([c]) == (len(range(p, 8, process_count)), 0)
        evaluator.run([c])
        mine = list(range(p, 8, process_count))
        assert [line["index"] for line in written(run, c, p)] == mine
        assert predictor.calls == [mine[i:i + 2] for i in range(0, len(mine), 2)]
        assert evaluator.progress([c]) == (len(mine), len(mine))
    assert not shard_path(run.path, c.task, c.length).exists(), "no unsuffixed shard under several processes"


def test_progress_counts_what_is_already_written(tmp_path):
    run, a, b = RunDir(tmp_path / "run"), cell(5, "niah_single_1"), cell(3, "vt")
    Evaluator(RecordingPredictor(), run, batch=2).run([a])
    assert Evaluator(RecordingPredictor(), run, batch=2).progress([a, b]) == (8, 5)


def test_lengths_run_in_the_order_given_with_a_callback_after_each(tmp_path):
    run, predictor, order, ends = RunDir(tmp_path / "run"), RecordingPredictor(), [], []
    cells = [cell(1, "a", 4096), cell(1, "b", 1024), cell(1, "b", 4096), cell(1, "a", 1024)]
    Evaluator(predictor, run, batch=1, on_record=lambda r: order.append((r.task, r.length))).run(
        cells, on_length_end=lambda length: ends.append((length, len(order))))
    assert order == [("a", 4096), ("b", 4096), ("b", 1024), ("a", 1024)]
    assert ends == [(4096, 2), (1024, 4)]


def test_a_predictor_that_drops_a_sample_is_an_error_not_a_silent_gap(tmp_path):
    class Dropping(RecordingPredictor):
        def predict(self, group):
            return super().predict(group)[:-1]

    with pytest.raises(ValueError, match="zip"):
        Evaluator(Dropping(), RunDir(tmp_path / "run"), batch=3).run([cell(3)])


def test_batch_below_one_is_refused(tmp_path):
    with pytest.raises(ValueError, match="must be at least 1"):
        Evaluator(RecordingPredictor(), RunDir(tmp_path), batch=0)


def test_check_lengths_refuses_a_sample_over_its_cell_and_accepts_one_at_it():
    c = cell(3)
    where = lambda c: f"data/{c.task}/{c.length}.jsonl"  # noqa: E731
    check_lengths([c], count=lambda s: 1024, where=where)
    with pytest.raises(UserError, match=r"^data/niah_single_1/1024.jsonl: sample 2 of niah_single_1 needs 1025 tokens .* "
                                        r"at length 1024"):
        check_lengths([c], count=lambda s: 1024 + (s["index"] == 2), where=where)


def test_a_record_carries_the_sample_and_its_cost():
    s = sample(5)
    r = to_record(s, 2048, Prediction(pred="x", prompt_tokens=7, pred_tokens=3, prefill_s=0.5, decode_s=0.25,
                                      compile_s=0.125))
    assert (r.index, r.pred, r.outputs, r.meta, r.task, r.length) == (5, "x", ("gold5",), s["meta"], "niah_single_1", 2048)
    assert (r.prompt_tokens, r.pred_tokens, r.prefill_s, r.decode_s, r.compile_s) == (7, 3, 0.5, 0.25, 0.125)
