"""runners.prepare end to end (in-process): files, manifest, resume, refusals, user tasks, bad input."""

import importlib.metadata
import importlib.util
import json
from pathlib import Path

import pytest

from common.files import read_jsonl
from common.cli import user_errors_exit_2
from ruler_tasks import RULER_REVISION
from ruler_tasks.registry import load_registry
from runners.prepare import main

EXAMPLE_PY = Path(__file__).parents[1] / "ruler_tasks" / "example_user_task.py"
SYNTHETIC = "niah_single_1,niah_single_2,niah_single_3,niah_multikey_1,niah_multikey_2,niah_multikey_3," \
            "niah_multivalue,niah_multiquery,vt,cwe,fwe"


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("RULER_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "ruler-cache"))
    for env in ("RULER_TASKS", "RULER_SQUAD", "RULER_HOTPOTQA", "RULER_HAYSTACK"):
        monkeypatch.delenv(env, raising=False)


def prepare(out, *extra, tasks=SYNTHETIC, lengths="4096", samples=2, seed=42):
    return user_errors_exit_2(main)(
        ["--tasks", tasks, "--lengths", lengths, "--samples", str(samples), "--seed", str(seed), "--out", str(out), *extra]
    )


def file_bytes(out):
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted((out / "data").rglob("*.jsonl"))}


def test_all_synthetic_tasks_at_4k_byte(tmp_path):
    assert prepare(tmp_path / "a") == 0
    files = file_bytes(tmp_path / "a")
    assert len(files) == 11
    for name in files:
        records = read_jsonl(tmp_path / "a" / name)
        assert [r["index"] for r in records] == [0, 1]
        for r in records:
            assert set(r) == {"index", "input", "outputs", "answer_prefix", "length", "task", "max_new_tokens", "seed", "meta"}
            assert 0.95 * 4096 <= r["length"] <= 4096
            assert all(o in r["input"] for o in r["outputs"])
    manifest = json.loads((tmp_path / "a" / "data" / "manifest.json").read_text())
    assert manifest["tokenizer"] == "byte:utf8-258" and manifest["seed"] == 42
    assert manifest["ruler_revision"] == RULER_REVISION and len(RULER_REVISION) == 40
    assert manifest["word_lists"] == {p: importlib.metadata.version(p) for p in ("wonderwords", "english-words")}
    assert manifest["tasks"]["vt"]["files"] == {"4096": 2} and manifest["tasks"]["vt"]["version"]

    assert prepare(tmp_path / "b") == 0
    assert file_bytes(tmp_path / "b") == files, "same seed, same bytes"
    assert prepare(tmp_path / "c", seed=7) == 0
    other = file_bytes(tmp_path / "c")
    assert all(other[k] != files[k] for k in files), "another seed, other samples"


def test_rerun_keeps_files_and_extends_short_ones(tmp_path):
    prepare(tmp_path, tasks="niah_single_1,fwe", samples=2)
    path = tmp_path / "data" / "fwe" / "4096.jsonl"
    before, mtime = path.read_bytes(), path.stat().st_mtime_ns
    prepare(tmp_path, tasks="niah_single_1,fwe", samples=2)
    assert path.stat().st_mtime_ns == mtime, "a complete file is kept"
    prepare(tmp_path, tasks="fwe", samples=3)
    after = path.read_bytes()
    assert after.startswith(before) and [r["index"] for r in read_jsonl(path)] == [0, 1, 2]
    fresh = tmp_path / "fresh"
    prepare(fresh, tasks="fwe", samples=3)
    assert (fresh / "data" / "fwe" / "4096.jsonl").read_bytes() == after, "sample i does not depend on the count"


@pytest.mark.parametrize("change", [["--seed", "1"], ["--chat-template", "meta-chat"]], ids=["seed", "chat"])
def test_changed_run_settings_are_refused_unless_overwrite(tmp_path, capsys, change):
    prepare(tmp_path, tasks="niah_single_1")
    argv = ["--tasks", "niah_single_1", "--lengths", "4096", "--samples", "2", "--out", str(tmp_path)]
    with pytest.raises(SystemExit) as exit_info:
        user_errors_exit_2(main)(argv + change)
    assert exit_info.value.code == 2
    assert "use a new --out or pass --overwrite" in capsys.readouterr().err
    assert user_errors_exit_2(main)(argv + change + ["--overwrite"]) == 0


def test_haystack_edited_in_place_is_refused(tmp_path, capsys):
    corpus = (Path(__file__).parents[2] / "ruler_tasks" / "data" / "devils_dictionary.txt").read_text()
    haystack = tmp_path / "essays.txt"
    haystack.write_text(corpus[:200_000])
    run = tmp_path / "run"
    assert prepare(run, "--haystack", str(haystack), tasks="niah_single_2") == 0
    haystack.write_text(corpus[200_000:])  # same path, other text
    with pytest.raises(SystemExit) as exit_info:
        prepare(run, "--haystack", str(haystack), tasks="niah_single_2")
    assert exit_info.value.code == 2 and "haystack was" in capsys.readouterr().err


def test_changed_task_version_is_refused(tmp_path, capsys):
    variant = tmp_path / "v.yaml"
    variant.write_text("mine:\n  include: niah_single_1\n")
    prepare(tmp_path / "run", "--task-file", str(variant), tasks="mine")
    variant.write_text("mine:\n  include: niah_single_1\n  args: {type_needle_v: uuids}\n")
    with pytest.raises(SystemExit):
        prepare(tmp_path / "run", "--task-file", str(variant), tasks="mine")
    assert "task mine was generated with version" in capsys.readouterr().err


def test_changed_qa_data_file_is_refused(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("qa_fixtures", Path(__file__).parents[1] / "ruler_tasks" / "qa_fixtures.py")
    qa_fixtures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(qa_fixtures)
    squad = qa_fixtures.write_squad(tmp_path / "dev-v2.0.json", seed=0)
    assert prepare(tmp_path / "run", "--squad", str(squad), tasks="qa_1", lengths="2048") == 0
    manifest = json.loads((tmp_path / "run" / "data" / "manifest.json").read_text())
    assert len(manifest["tasks"]["qa_1"]["data"]) == 16
    qa_fixtures.write_squad(squad, seed=1)
    with pytest.raises(SystemExit) as e:
        prepare(tmp_path / "run", "--squad", str(squad), tasks="qa_1", lengths="2048")
    assert e.value.code == 2 and "task qa_1 was generated with data file" in capsys.readouterr().err
    assert prepare(tmp_path / "run", "--squad", str(squad), "--overwrite", tasks="qa_1", lengths="2048") == 0


def test_user_tasks_from_yaml_and_python(tmp_path, monkeypatch):
    variant = tmp_path / "v.yaml"
    variant.write_text("niah_words:\n  include: niah_single_2\n  args: {type_needle_v: words}\n")
    monkeypatch.setenv("RULER_TASKS", str(EXAMPLE_PY))
    assert prepare(tmp_path / "run", "--task-file", str(variant), tasks="niah_words,secret_word", lengths="2048") == 0
    for task in ("niah_words", "secret_word"):
        records = read_jsonl(tmp_path / "run" / "data" / task / "2048.jsonl")
        assert all(r["outputs"][0] in r["input"] and r["length"] <= 2048 for r in records)
    assert "-" in records[0]["outputs"][0], "secret_word answers are adjective-noun words"


def test_tasks_list_prints_the_registry_and_needs_no_out(tmp_path, capsys, monkeypatch):
    variant = tmp_path / "v.yaml"
    variant.write_text("niah_words:\n  include: niah_single_2\n  args: {type_needle_v: words}\n")
    monkeypatch.setenv("RULER_TASKS", str(EXAMPLE_PY))
    assert main(["--tasks=list", "--task-file", str(variant)]) == 0
    header, *lines = capsys.readouterr().out.splitlines()
    assert header.split()[:4] == ["task", "version", "needs_data", "metric"]
    rows = {line.split()[0]: line.split()[1:] for line in lines}
    registry = load_registry(extra=[variant])
    assert list(rows) == registry.names() and {"secret_word", "niah_words"} <= set(rows)
    for name, row in rows.items():
        task = registry.get(name)
        assert row[:3] == [task.version, "yes" if task.needs_data else "no", task.metric], name
    assert rows["qa_1"][1] == "yes" and rows["niah_single_1"][1] == "no"
    assert rows["vt"][3:] == ["variable_tracking", "type_haystack=noise", "num_chains=1", "num_hops=4"]
    assert "type_needle_v=words" in rows["niah_words"]
    assert main(["--tasks", "list", "--out", str(tmp_path / "run")]) == 0
    assert not (tmp_path / "run").exists(), "listing generates nothing"


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--tasks", "niah_singel_1"], "did you mean 'niah_single_1'"),
        (["--lengths", "4k"], "--lengths: '4k' is not an integer"),
        (["--tasks", "cwe", "--lengths", "300"], "cwe at length 300: too short; the task needs at least"),
        (["--tokenizer", "nope.json"], "tokenizer 'nope.json': no such file"),
        (["--samples", "0"], "--samples: 0 must be at least 1"),
    ],
    ids=["unknown-task", "bad-length", "length-too-small", "bad-tokenizer", "zero-samples"],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        user_errors_exit_2(main)(["--out", str(tmp_path / "run"), "--samples", "1", *argv])
    assert exit_info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after any progress bar
    assert last.startswith("error: ") and message in last
    assert not list((tmp_path / "run").rglob("*.jsonl"))


def test_qa_without_data_is_skipped_with_where_to_put_it(tmp_path, capsys):
    assert prepare(tmp_path, tasks="qa_1,niah_single_1") == 0
    out = capsys.readouterr().out
    assert "skipping qa_1:" in out and "RULER_SQUAD" in out
    assert not (tmp_path / "data" / "qa_1").exists()
