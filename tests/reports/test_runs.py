"""Reading run directories: shards merge, torn tails, one-line errors naming file and line, run.json."""

import json

import pytest

from reports.runs import load_run, unique_labels
from common.errors import UserError


def _one_line(e: pytest.ExceptionInfo) -> str:
    message = str(e.value)
    assert "\n" not in message
    return message


def test_shards_of_a_cell_merge_in_index_order(make_run):
    b = make_run()
    b.add("niah_single_1", 4096, [("a", ["1"]), ("b", ["2"])], process=1)
    b.add("niah_single_1", 4096, [("c", ["3"])], process=0)
    b.add("vt", 8192, [("x", ["y"])])
    run = load_run(b.path)
    assert run.lengths == [4096, 8192] and run.tasks == ["niah_single_1", "vt"]
    cell = run.cells["niah_single_1", 4096]
    assert [p.index for p in cell] == [0, 1, 2]
    assert [p.pred for p in cell] == ["a", "b", "c"]


def test_duplicate_index_across_shards_names_both_files(make_run):
    b = make_run()
    first = b.add("vt", 4096, [("a", ["1"])], process=0)
    second = b.add("vt", 4096, [("b", ["1"])], process=1, start=0)
    with pytest.raises(UserError) as e:
        load_run(b.path)
    message = _one_line(e)
    assert str(first) in message and str(second) in message and "index 0" in message


def test_duplicate_index_within_a_shard(make_run):
    b = make_run()
    path = b.add("vt", 4096, [("a", ["1"])])
    b.add("vt", 4096, [("b", ["1"])], start=0)
    with pytest.raises(UserError, match="twice in") as e:
        load_run(b.path)
    assert str(path) in _one_line(e)


def test_torn_last_line_is_ignored(make_run):
    b = make_run()
    b.add("vt", 4096, [("a", ["1"]), ("b", ["2"])])
    b.append_raw("vt", 4096, '{"index": 2, "task": "vt", "len')
    assert [p.index for p in load_run(b.path).cells["vt", 4096]] == [0, 1]


def test_malformed_middle_line_names_file_and_line(make_run):
    b = make_run()
    b.add("vt", 4096, [("a", ["1"])])
    path = b.append_raw("vt", 4096, "{not json\n")
    b.add("vt", 4096, [("b", ["2"])])
    with pytest.raises(UserError) as e:
        load_run(b.path)
    assert _one_line(e).startswith(f"{path}:2:")


@pytest.mark.parametrize(
    "fields, problem",
    [
        ({"index": "3", "pred": "x", "outputs": ["a"]}, "'index'"),
        ({"index": 3, "outputs": ["a"]}, "'pred'"),
        ({"index": 3, "pred": "x", "outputs": []}, "'outputs'"),
        ({"index": 3, "pred": "x", "outputs": ["a"], "task": "cwe"}, "'task'"),
        ({"index": 3, "pred": "x", "outputs": ["a"], "length": 8192}, "'length'"),
    ],
    ids=["index-not-int", "no-pred", "empty-outputs", "wrong-task", "wrong-length"],
)
def test_bad_record_names_file_and_line(make_run, fields, problem):
    b = make_run()
    b.add("vt", 4096, [("a", ["1"])])
    path = b.append_raw("vt", 4096, "\n" + json.dumps(fields) + "\n")
    with pytest.raises(UserError) as e:
        load_run(b.path)
    message = _one_line(e)
    assert message.startswith(f"{path}:3:") and problem in message


def test_missing_run_directory(tmp_path):
    with pytest.raises(UserError, match="no such run directory") as e:
        load_run(tmp_path / "nope")
    assert str(tmp_path / "nope") in _one_line(e)


def test_run_without_predictions(make_run):
    b = make_run()
    (b.path / "pred" / "vt").mkdir(parents=True)
    (b.path / "pred" / "vt" / "notes.txt").write_text("not a shard")
    b.append_raw("cwe", 4096, '{"index": 0')  # only a torn line: no sample
    with pytest.raises(UserError, match="no predictions") as e:
        load_run(b.path)
    assert str(b.path) in _one_line(e)


def test_run_json_gives_model_train_length_and_costs(make_run):
    b = make_run()
    b.add("vt", 4096, [("a", ["1"])])
    b.write_run_json(
        {
            "checkpoint": {"name": "rattn-512", "config": {"train_context": 4096}},
            "per_length": {"4096": {"prefill_tokens_per_s": 1000, "decode_ms_per_token": 2.5, "other": 1}},
        }
    )
    run = load_run(b.path)
    assert (run.model, run.train_length) == ("rattn-512", 4096)
    assert run.costs == {4096: {"prefill_tokens_per_s": 1000.0, "decode_ms_per_token": 2.5}}
    assert load_run(b.path, train_length=8192).train_length == 8192


def test_train_length_from_the_checkpoint_config(make_run, tmp_path):
    b = make_run()
    b.add("vt", 4096, [("a", ["1"])])
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps({"train_context": 2048}))
    b.write_run_json({"checkpoint": {"name": "m", "path": str(tmp_path / "ckpt")}})
    assert load_run(b.path).train_length == 2048


def test_malformed_run_json_names_file_and_line(make_run):
    b = make_run()
    b.add("vt", 4096, [("a", ["1"])])
    (b.path / "run.json").write_text('{\n  "checkpoint": \n}\n')
    with pytest.raises(UserError) as e:
        load_run(b.path)
    assert _one_line(e).startswith(f"{b.path / 'run.json'}:3:")


def test_labels_are_directory_names_unless_they_clash(tmp_path):
    paths = [tmp_path / "a" / "swa", tmp_path / "b" / "swa", tmp_path / "full"]
    assert unique_labels(paths) == [str(paths[0]), str(paths[1]), "full"]
