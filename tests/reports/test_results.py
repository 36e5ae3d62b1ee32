"""A run's summary.csv, summary_table.csv and results.json, written together from its predictions."""

import csv
import io
import json
from pathlib import Path

import pytest

from common.files import atomic_write_json
from evaluation.run_dir import SUMMARY_COLUMNS, RunDir
from reports.aggregate import effective_length_definition
from reports.results import SCHEMA, write_run_results
from ruler_tasks import RULER_REVISION

RULER_TASKS = ["niah_single_1", "niah_single_2", "niah_single_3", "niah_multikey_1", "niah_multikey_2",
               "niah_multikey_3", "niah_multivalue", "niah_multiquery", "vt", "cwe", "fwe", "qa_1", "qa_2"]
RULER_LENGTHS = [4096, 8192, 16384, 32768, 65536, 131072]


def _hits(k: int, n: int) -> list:
    """n samples of which the first k answer their gold string."""
    return [(f"the answer is {i}" if i < k else "none", [str(i)]) for i in range(n)]


@pytest.fixture
def small_run(make_run):
    """niah_single_1 at 4K (3 of 4) and 8K (1 of 4), vt at 4K only (1 of 1), with run.json and a manifest."""
    b = make_run("small")
    b.add("niah_single_1", 4096, _hits(3, 4))
    b.add("niah_single_1", 8192, _hits(1, 4))
    b.add("vt", 4096, _hits(1, 1))
    b.write_run_json({
        "checkpoint": {"name": "rattn-512", "fingerprint": "0123456789abcdef", "config": {"train_context": 4096}},
        "identity": {"checkpoint": "0123456789abcdef", "seed": 42, "template": "base"},
        "versions": {"git": "d1e3e64430cda24a75cae70d8015f9025f56263a"},
    })
    atomic_write_json(b.path / "data" / "manifest.json", {
        "seed": 42, "haystack": "/data/PaulGrahamEssays.json#feedfacecafebeef", "tokenizer": "byte",
        "chat_template": "base", "ruler_revision": RULER_REVISION,
        "tasks": {"niah_single_1": {"version": "1-niah"}, "vt": {"version": "2-vt"}, "cwe": {"version": "9"}},
    })
    return b.path


def test_the_three_files_are_written_atomically_with_the_cells_returned(small_run, metric_of):
    cells = write_run_results(RunDir(small_run), metric_of, seed=3)
    assert {(t, n): c.score for (t, n), c in cells.items()} == {
        ("niah_single_1", 4096): 75.0, ("niah_single_1", 8192): 25.0, ("vt", 4096): 100.0}
    assert {"summary.csv", "summary_table.csv", "results.json"} <= {p.name for p in small_run.iterdir()}
    assert not [p for p in small_run.iterdir() if p.name.endswith(".tmp")]
    rows = list(csv.DictReader(io.StringIO((small_run / "summary.csv").read_text())))
    assert tuple(rows[0]) == SUMMARY_COLUMNS
    assert [(r["task"], r["length"], r["n"], r["score"]) for r in rows] == [
        ("niah_single_1", "4096", "4", "75.00"), ("niah_single_1", "8192", "4", "25.00"),
        ("niah_single_1", "Avg.", "8", "50.00"),  # ran at every length: its Avg. over them
        ("vt", "4096", "1", "100.00"),  # vt did not run at 8K: no Avg. of its own
        ("Avg.", "4096", "5", "87.50"), ("Avg.", "8192", "4", "25.00"), ("Avg.", "Avg.", "9", "56.25"),
    ], "RULER's table shape, as the report's summary.csv"


def test_summary_table_has_rulers_shape(small_run, metric_of):
    write_run_results(RunDir(small_run), metric_of)
    assert (small_run / "summary_table.csv").read_text() == (
        "task,4096,8192,Avg.\n"
        "niah_single_1,75.00,25.00,50.00\n"
        "vt,100.00,,\n"  # vt did not run at 8K: no cell, no Avg.
        "Avg.,87.50,25.00,56.25\n"  # (75 + 100) / 2, 25 / 1, (87.5 + 25) / 2
    )


def test_results_json_holds_every_number_with_n_and_ci(small_run, metric_of):
    cells = write_run_results(RunDir(small_run), metric_of, seed=3)
    results = json.loads((small_run / "results.json").read_text())
    assert results["schema"] == SCHEMA == 1
    assert (results["run"], results["model"], results["train_length"]) == ("small", "rattn-512", 4096)
    assert (results["tasks"], results["lengths"]) == (["niah_single_1", "vt"], [4096, 8192])
    summary = {(r["task"], r["length"]): r for r in csv.DictReader(io.StringIO((small_run / "summary.csv").read_text()))}
    for entry in results["cells"]:
        cell, row = cells[entry["task"], entry["length"]], summary[entry["task"], str(entry["length"])]
        assert (entry["n"], entry["score"], (entry["ci_low"], entry["ci_high"])) == (cell.n, cell.score, cell.ci)
        assert [f"{entry[k]:.2f}" for k in ("score", "ci_low", "ci_high")] == [row["score"], row["ci_low"], row["ci_high"]]
    assert [(e["task"], e["length"], e["n"]) for e in results["cells"]] == [
        ("niah_single_1", 4096, 4), ("niah_single_1", 8192, 4), ("vt", 4096, 1)]
    assert results["task_avg"]["vt"] is None
    niah = results["task_avg"]["niah_single_1"]
    assert (niah["n"], niah["score"]) == (8, 50.0) and niah["ci_low"] <= 50.0 <= niah["ci_high"]
    assert [(a["length"], a["score"], a["n_tasks"]) for a in results["average"]] == [(4096, 87.5, 2), (8192, 25.0, 1)]
    for a in results["average"]:
        assert a["ci_low"] <= a["score"] <= a["ci_high"]
    assert {k: results["avg"][k] for k in ("score", "n", "n_lengths")} == {"score": 56.25, "n": 9, "n_lengths": 2}
    assert (results["wavg_inc"], results["wavg_dec"]) == (None, None)  # needs RULER's 4K..128K
    assert results["effective_length"] == {
        "length": 4096, "threshold": 85.6,
        "definition": "the longest tested length up to which the per-length average stays above 85.6",
    }
    coverage = results["coverage"]
    assert (coverage["tasks"], coverage["ruler_tasks"], coverage["fewer_than_ruler"]) == (1, 13, True)
    assert coverage["note"].startswith("average over 1 of RULER's 13 tasks: the threshold (85.6)")
    assert results["scoring"] == {"ruler_revision": RULER_REVISION, "bootstrap_resamples": 1000, "ci_level": 0.95,
                                  "bootstrap_seed": 3}


def test_results_json_records_provenance(small_run, metric_of):
    write_run_results(RunDir(small_run), metric_of)
    assert json.loads((small_run / "results.json").read_text())["provenance"] == {
        "checkpoint": "rattn-512",
        "fingerprint": "0123456789abcdef",
        "seed": 42,
        "samples": "1-4",
        "haystack": "/data/PaulGrahamEssays.json#feedfacecafebeef",
        "rulers_haystack": True,
        "tokenizer": "byte",
        "chat_template": "base",
        "task_versions": {"niah_single_1": "1-niah", "vt": "2-vt"},  # the run's tasks only
        "ruler_revision": RULER_REVISION,
        "git_revision": "d1e3e64430cda24a75cae70d8015f9025f56263a",
    }


def test_a_full_ruler_run_has_wavg_effective_length_and_no_coverage_flag(make_run, metric_of):
    b = make_run("full")
    passing = [13, 12, 11, 13, 5, 0]  # tasks that answer at each length; 16K fails, 32K's pass comes after
    for length, k in zip(RULER_LENGTHS, passing):
        for i, task in enumerate(RULER_TASKS):
            b.add(task, length, _hits(1 if i < k else 0, 1))
    write_run_results(RunDir(b.path), metric_of, threshold=85.6)
    results = json.loads((b.path / "results.json").read_text())
    averages = [round(100.0 * k / 13, 2) for k in passing]
    assert [a["score"] for a in results["average"]] == averages == [100.0, 92.31, 84.62, 100.0, 38.46, 0.0]
    assert results["wavg_inc"] == round(sum(w * s for w, s in zip(range(1, 7), averages)) / 21, 2) == 53.85
    assert results["wavg_dec"] == round(sum(w * s for w, s in zip(range(6, 0, -1), averages)) / 21, 2) == 84.62
    assert results["effective_length"]["length"] == 8192
    assert results["coverage"] == {"tasks": 13, "ruler_tasks": 13, "fewer_than_ruler": False, "note": None}
    assert results["avg"]["score"] == round(sum(averages) / 6, 2) and results["avg"]["n"] == 78
    assert results["provenance"]["samples"] == "1" and results["provenance"]["haystack"] is None


def test_the_readme_defines_effective_length_as_the_code_computes_it():
    readme = " ".join((Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8").split())
    definition = effective_length_definition(85.6).removesuffix(" 85.6")
    assert definition.replace("the longest", "The effective length is the longest", 1) in readme
