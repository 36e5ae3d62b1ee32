"""The whole report: files written, CSV rows, a self-contained HTML page whose images decode, CLI exit codes."""

import base64
import csv
import io
import re
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest

from common.files import atomic_write_json
from reports.build import build_report
from runners.report import main

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def report(tmp_path_factory, metric_of, run_builder):
    """Two crafted runs (RAttention-like and SWA-like) sharing niah_single_1 and qa_1 at 4K..16K; the
    swa run is labelled "SWA 64" and trained at 2K (outside the tested lengths); rattn used the
    default haystack, swa RULER's PaulGrahamEssays.json."""
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
                    "checkpoint": {"name": "rattn-512", "fingerprint": "0123456789abcdef",
                                   "config": {"train_context": 4096}},
                    "identity": {"checkpoint": "0123456789abcdef", "seed": 42, "template": "base"},
                    "versions": {"git": "d1e3e64430cda24a75cae70d8015f9025f56263a"},
                    "per_length": {"4096": {"prefill_tokens_per_s": 900.0, "peak_memory_bytes": 2**30}},
                }
            )
            haystack = "default:devils_dictionary"
        else:
            b.write_run_json({"checkpoint": {"name": "swa-512", "config": {"train_context": 2048}}})
            haystack = "/data/ruler/PaulGrahamEssays.json#feedfacecafebeef"
        manifest = {"seed": 42, "haystack": haystack, "tasks": {"niah_single_1": {"version": "1-niah.3-c596755e"}}}
        atomic_write_json(root / name / "data" / "manifest.json", manifest)
        runs.append(root / name)
    out = root / "out"
    written = build_report(runs, out, metric_of, threshold=80.0, seed=1, labels={str(root / "swa"): "SWA 64"})
    return out, written


FIGURES = ["average_vs_length", "tasks_vs_length", "heatmap_rattn", "heatmap_SWA_64", "depth_rattn", "depth_SWA_64",
           "cost_vs_length"]


def test_all_outputs_are_written(report):
    out, written = report
    names = sorted(p.name for p in written)
    figures = [f"{stem}.{fmt}" for stem in FIGURES for fmt in ("png", "pdf", "svg")]
    assert names == sorted([*figures, "summary.csv", "summary.md", "report.html"])
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_csv_has_rulers_table_shape_with_avg_rows(report):
    out, _ = report
    rows = list(csv.DictReader(io.StringIO((out / "summary.csv").read_text())))
    assert list(rows[0]) == ["run", "task", "length", "n", "score", "ci_low", "ci_high"]
    # per run: each task's lengths then its Avg. (vt ran at 4K only: no Avg.), then Avg. per length and overall
    assert len(rows) == (2 * 4 + 1 + 4) + (2 * 4 + 4)
    by_key = {(r["run"], r["task"], r["length"]): r for r in rows}
    assert by_key["rattn", "niah_single_1", "16384"]["score"] == "75.00"
    assert by_key["SWA 64", "niah_single_1", "8192"]["score"] == "25.00"
    assert by_key["rattn", "vt", "4096"]["score"] == "50.00" and by_key["rattn", "vt", "4096"]["n"] == "1"
    assert ("rattn", "vt", "Avg.") not in by_key
    assert by_key["SWA 64", "qa_1", "4096"]["score"] == "50.00"  # part: "paris" found in the first only
    # the average row (RULER's "Avg." over tasks) and column (mean over lengths)
    assert [by_key["rattn", "Avg.", str(n)]["score"] for n in (4096, 8192, 16384)] == ["66.67", "75.00", "62.50"]
    assert by_key["rattn", "Avg.", "4096"]["n"] == str(4 + 2 + 1)
    assert by_key["SWA 64", "niah_single_1", "Avg."]["score"] == "41.67"  # (100 + 25 + 0) / 3
    assert by_key["SWA 64", "Avg.", "Avg."]["score"] == "45.83"  # (75 + 37.5 + 25) / 3
    assert [r["task"] for r in rows if r["run"] == "SWA 64"][-4:] == ["Avg."] * 4
    for r in rows:
        assert float(r["ci_low"]) <= float(r["score"]) <= float(r["ci_high"])


def test_markdown_tables_and_summary_lines(report):
    out, _ = report
    md = (out / "summary.md").read_text()
    assert "| task | n | 4K (train) | 8K | 16K | Avg. |" in md  # rattn trained at 4K
    assert "| task | n | 4K | 8K | 16K | Avg. |" in md  # swa trained at 2K, outside the tested lengths
    # rattn averages: 4K (100 + 50 + 50) / 3; swa: 8K (25 + 50) / 2 = 37.5; Avg. = mean over lengths
    assert "| average | 2-3 tasks | 66.67† | 75.00† | 62.50† | 68.06† |" in md
    assert "| average | 2 tasks | 75.00† | 37.50† | 25.00† | 45.83† |" in md
    assert "| niah_single_1 | 4 | 100.00 | 25.00 | 0.00 | 41.67 |" in md  # n per cell
    assert "| vt | 1 | 50.00 | - | - | - |" in md
    definition = "the longest tested length up to which the per-length average stays above 80"
    assert f"effective length ({definition}): below 4K†" in md
    assert "wAvg inc/dec: n/a" in md
    assert "## Comparison" in md and "| 4K | 75.00 [" in md  # over the common tasks only
    for png in re.findall(r"\]\(([^)]+\.png)\)", md):
        assert (out / png).read_bytes().startswith(PNG_SIGNATURE)


def test_fewer_than_13_tasks_is_flagged_in_tables_and_html(report):
    out, _ = report
    note = "average over 2 of RULER's 13 tasks: the threshold (80) was calibrated on the average over all 13"
    for name in ("summary.md", "report.html"):
        text = (out / name).read_text()
        assert note.replace("'", "&#x27;" if name.endswith("html") else "'") in text, name
        assert "66.67†" in text and "marked †" in text


def test_comparison_has_cis_and_deltas(report):
    out, _ = report
    md = (out / "summary.md").read_text()
    assert "| length | rattn† | SWA 64† | SWA 64 − rattn |" in md
    # common tasks niah_single_1 + qa_1: rattn 8K (100 + 50) / 2, swa (25 + 50) / 2
    row = next(line for line in md.splitlines() if line.startswith("| 8K | 75.00 ["))
    assert "| 37.50 [" in row and row.split("|")[4].strip().startswith("-37.50 [")
    assert re.search(r"\| Avg\. \| [\d.]+ \[[\d.]+, [\d.]+\] \|", md)
    assert "| task | length | n | rattn | SWA 64 | SWA 64 − rattn |" in md
    assert "| niah_single_1 | 16K | 4 | 75.00 [" in md


def test_haystack_and_provenance_are_reported(report):
    out, _ = report
    md = (out / "summary.md").read_text()
    assert "haystack: The Devil's Dictionary (the shipped default, not RULER's Paul Graham essays)" in md
    assert "haystack: PaulGrahamEssays.json (RULER's Paul Graham essays, sha256 feedfacecafebeef)" in md
    assert "--haystack PaulGrahamEssays.json" in md
    provenance = md.split("## Provenance", 1)[1]
    for row in ("| checkpoint fingerprint | 0123456789abcdef | - |", "| seed | 42 | 42 |",
                "| samples per cell | 1-4 | 2-4 |", "| git revision | d1e3e64430cda24a75cae70d8015f9025f56263a | - |",
                "| version of niah_single_1 | 1-niah.3-c596755e | 1-niah.3-c596755e |", "| version of qa_1 | - | - |"):
        assert row in provenance, row
    assert "Provenance" in (out / "report.html").read_text()


def test_labels_name_runs_in_legends_tables_and_html(report):
    out, _ = report
    assert "## Run: SWA 64" in (out / "summary.md").read_text()
    assert "SWA 64" in (out / "report.html").read_text()
    for stem in ("average_vs_length", "tasks_vs_length"):
        assert "SWA 64" in (out / f"{stem}.svg").read_text()  # legend text, kept as SVG text


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


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_the_page_renders_in_headless_chromium(report):
    out, _ = report
    root = Path(__file__).resolve().parents[2]
    subprocess.run(["make", "-s", "report-screenshot", f"OUT={out}", "SHOT_SIZE=1000,3000"], cwd=root, check=True,
                   timeout=300, capture_output=True)
    shot = matplotlib.image.imread(out / "report.png", format="png")
    assert shot.shape[:2] == (3000, 1000)
    assert shot[..., :3].std() > 0.05  # text, tables and figures, not a blank page


def test_pngs_are_deterministic(report, tmp_path, metric_of):
    out, _ = report
    again = tmp_path / "again"
    build_report([out.parent / "rattn", out.parent / "swa"], again, metric_of, threshold=80.0, seed=1,
                 labels={str(out.parent / "swa"): "SWA 64"})
    for name in ("summary.csv", "summary.md", "heatmap_SWA_64.png", "heatmap_SWA_64.pdf", "heatmap_SWA_64.svg",
                 "report.html"):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name


def test_cli_writes_the_report(report, tmp_path, capsys):
    out, _ = report
    swa = str(out.parent / "swa")
    assert main([swa, "--out", str(tmp_path / "cli"), "--train-length", "8192", "--label", f"Sliding={swa}"]) == 0
    md = (tmp_path / "cli" / "summary.md").read_text()
    assert "| task | n | 4K | 8K (train) | 16K | Avg. |" in md and "## Run: Sliding" in md
    assert "report.html" in capsys.readouterr().out


def test_module_cli_writes_what_build_report_writes(report, tmp_path):
    out, _ = report
    swa = str(out.parent / "swa")
    argv = [str(out.parent / "rattn"), swa, "--out", str(tmp_path / "cli"), "--threshold", "80", "--seed", "1",
            "--label", f"SWA 64={swa}"]
    proc = subprocess.run([sys.executable, "-m", "runners.report", *argv], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stderr
    assert f"wrote 24 files to {tmp_path / 'cli'}" in proc.stdout
    for name in ("summary.csv", "summary.md", "heatmap_SWA_64.png", "report.html"):
        assert (tmp_path / "cli" / name).read_bytes() == (out / name).read_bytes(), name


def test_cli_scores_a_users_task_from_a_tasks_file(make_run, tmp_path):
    b = make_run("mine")
    b.add("my_qa", 4096, [("alpha", ["alpha", "beta"])])
    tasks_file = tmp_path / "tasks.yaml"
    tasks_file.write_text("my_qa:\n  include: niah_single_1\n  metric: string_match_part\n")
    assert main([str(b.path), "--out", str(tmp_path / "o"), "--task-file", str(tasks_file)]) == 0
    assert "mine,my_qa,4096,1,100.00" in (tmp_path / "o" / "summary.csv").read_text()


@pytest.mark.parametrize(
    "problem",
    ["missing-run", "malformed-line", "unknown-task", "bad-threshold", "same-run-twice", "label-not-a-run",
     "label-twice", "bad-label"],
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
    elif problem == "label-not-a-run":
        argv += ["--label", f"x={tmp_path / 'other'}"]
        expected = "is not one of the runs given"
    elif problem == "label-twice":
        argv += ["--label", f"x={b.path}", "--label", f"y={b.path}"]
        expected = "labelled twice"
    elif problem == "bad-label":
        argv += ["--label", "no-equals-sign"]
        expected = "is not NAME=RUN"
    else:
        argv.append(str(b.path))
        expected = "run given twice"
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert expected in err.splitlines()[-1]  # argparse's own errors come after its usage lines
    assert problem in ("bad-threshold", "bad-label") or len(err.splitlines()) == 1
    assert not (tmp_path / "o" / "report.html").exists()


def test_reports_never_import_jax_or_the_model():
    code = (
        "import sys, reports.build, reports.plots, reports.results, runners.report;"
        "reports.build.registry_metrics(())('niah_single_1');"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'model_adapters', 'kernels'));"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
