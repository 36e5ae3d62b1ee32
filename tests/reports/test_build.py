"""The whole report: files written, CSV rows, a self-contained HTML page whose images decode, CLI exit codes."""

import base64
import csv
import io
import re
import subprocess
import sys

import matplotlib.image
import pytest

from reports.build import build_report, main

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def report(tmp_path_factory, metric_of, run_builder):
    """Two crafted runs (RAttention-like and SWA-like) sharing niah_single_1 and qa_1 at 4K..16K."""
    root = tmp_path_factory.mktemp("report")
    runs = []
    for name, hits in [("rattn", (4, 4, 3)), ("swa", (4, 1, 0))]:
        (root / name).mkdir()
        b = run_builder(root / name)
        for length, hit in zip((4096, 8192, 16384), hits):
            samples = [
                (f"the number is {i}" if i < hit else "none", [str(i)], {"needle_depths": [i / 4]}) for i in range(4)
            ]
            b.add("niah_single_1", length, samples)
            b.add("qa_1", length, [("Paris", ["paris", "x"]), ("no", ["y"])])
        if name == "rattn":
            b.add("vt", 4096, [("A B", ["A", "B", "C", "D"])])
            b.write_run_json(
                {
                    "checkpoint": {"name": "rattn-512", "config": {"train_context": 4096}},
                    "per_length": {"4096": {"prefill_tokens_per_s": 900.0, "peak_memory_bytes": 2**30}},
                }
            )
        runs.append(root / name)
    out = root / "out"
    written = build_report(runs, out, metric_of, threshold=80.0, seed=1)
    return out, written


def test_all_outputs_are_written(report):
    out, written = report
    names = sorted(p.name for p in written)
    assert names == sorted(
        [
            "average_vs_length.png",
            "heatmap_rattn.png",
            "heatmap_swa.png",
            "depth_rattn.png",
            "depth_swa.png",
            "cost_vs_length.png",
            "summary.csv",
            "summary.md",
            "report.html",
        ]
    )
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_csv_has_one_row_per_run_task_length(report):
    out, _ = report
    rows = list(csv.DictReader(io.StringIO((out / "summary.csv").read_text())))
    assert list(rows[0]) == ["run", "task", "length", "n", "score", "ci_low", "ci_high"]
    assert len(rows) == 2 * 2 * 3 + 1
    by_key = {(r["run"], r["task"], int(r["length"])): r for r in rows}
    assert by_key["rattn", "niah_single_1", 16384]["score"] == "75.00"
    assert by_key["swa", "niah_single_1", 8192]["score"] == "25.00"
    assert by_key["rattn", "vt", 4096]["score"] == "50.00" and by_key["rattn", "vt", 4096]["n"] == "1"
    assert by_key["swa", "qa_1", 4096]["score"] == "50.00"  # part: "paris" found in the first only
    for r in rows:
        assert float(r["ci_low"]) <= float(r["score"]) <= float(r["ci_high"])


def test_markdown_tables_and_summary_lines(report):
    out, _ = report
    md = (out / "summary.md").read_text()
    assert "| task | 4K (train) | 8K | 16K |" in md  # rattn trained at 4K
    assert "| task | 4K | 8K | 16K |" in md  # swa: no training length known
    # rattn averages: 4K (100 + 50 + 50) / 3; swa: 8K (25 + 50) / 2 = 37.5
    assert "| average | 66.67 | 75.00 | 62.50 |" in md and "| average | 75.00 | 37.50 | 25.00 |" in md
    assert "effective length (average > 80): below 4K" in md
    assert "wAvg inc/dec: n/a" in md
    assert "## Comparison" in md and "| 4K | 75.00 | 75.00 |" in md  # over the common tasks only
    for png in re.findall(r"\]\(([^)]+\.png)\)", md):
        assert (out / png).read_bytes().startswith(PNG_SIGNATURE)


def test_html_is_self_contained_and_every_image_decodes(report):
    out, written = report
    page = (out / "report.html").read_text()
    assert not re.search(r"https?:|<script|<link|@import|url\(|href=", page, re.IGNORECASE)
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == sum(p.suffix == ".png" for p in written)
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        data = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert data.startswith(PNG_SIGNATURE)
        image = matplotlib.image.imread(io.BytesIO(data), format="png")
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_pngs_are_deterministic(report, tmp_path, metric_of):
    out, _ = report
    again = tmp_path / "again"
    build_report([out.parent / "rattn", out.parent / "swa"], again, metric_of, threshold=80.0, seed=1)
    for name in ("summary.csv", "summary.md", "heatmap_swa.png", "report.html"):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name


def test_cli_writes_the_report(report, tmp_path, capsys):
    out, _ = report
    assert main([str(out.parent / "swa"), "--out", str(tmp_path / "cli"), "--train-length", "8192"]) == 0
    assert "| task | 4K | 8K (train) | 16K |" in (tmp_path / "cli" / "summary.md").read_text()
    assert "report.html" in capsys.readouterr().out


def test_cli_scores_a_users_task_from_a_tasks_file(make_run, tmp_path):
    b = make_run("mine")
    b.add("my_qa", 4096, [("alpha", ["alpha", "beta"])])
    tasks_file = tmp_path / "tasks.yaml"
    tasks_file.write_text("my_qa:\n  include: niah_single_1\n  metric: string_match_part\n")
    assert main([str(b.path), "--out", str(tmp_path / "o"), "--task-file", str(tasks_file)]) == 0
    assert "mine,my_qa,4096,1,100.00" in (tmp_path / "o" / "summary.csv").read_text()


@pytest.mark.parametrize(
    "problem",
    ["missing-run", "malformed-line", "unknown-task", "bad-threshold", "same-run-twice"],
)
def test_cli_user_errors_exit_2_with_one_line(make_run, tmp_path, capsys, problem):
    b = make_run()
    b.add("niah_single_1", 4096, [("a", ["a"])])
    argv = [str(b.path), "--out", str(tmp_path / "o")]
    expected = str(b.path)
    if problem == "missing-run":
        argv[0] = expected = str(tmp_path / "nope")
    elif problem == "malformed-line":
        expected = f"{b.append_raw('niah_single_1', 4096, 'oops' + chr(10))}:2:"
    elif problem == "unknown-task":
        b.add("niah_singel_1", 4096, [("a", ["a"])])
        expected = "niah_single_1"  # did you mean
    elif problem == "bad-threshold":
        argv += ["--threshold", "120"]
        expected = "outside 0..100"
    else:
        argv.append(str(b.path))
        expected = "run given twice"
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert expected in err.splitlines()[-1]  # argparse's own errors come after its usage lines
    assert problem == "bad-threshold" or len(err.splitlines()) == 1
    assert not (tmp_path / "o" / "report.html").exists()


def test_reports_never_import_jax_or_the_model():
    code = (
        "import sys, reports.build, reports.plots;"
        "reports.build.registry_metrics(())('niah_single_1');"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'model_adapters', 'kernels'));"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
