"""End to end tests of runners.eval_ruler on a tiny random checkpoint (CPU).

Lengths are small (the tiny model's RULER prompts at 1-2K tokens) so each run takes seconds; a few
shapes are compiled once per process.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from evaluation.predictors import Prediction
from reports.tables import AVG
from runners.eval_ruler import DEMO_CHECKPOINT, main, parse_args, run_eval
from runners.init import init_checkpoint
from runners.prepare import main as prepare_main
from tests.reliability.helpers import predictions

ROOT = Path(__file__).resolve().parents[2]
TASKS = "niah_single_1,vt"
LENGTHS = "1024 1536"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return init_checkpoint("tiny-rattention", str(tmp_path_factory.mktemp("ckpt") / "tiny-rattention"), seed=3)


def cli_args(ckpt: Path, run: Path, *extra: str, samples: int = 3, tasks: str = TASKS, lengths: str = LENGTHS,
             seed: int = 7) -> list[str]:
    return ["--checkpoint", str(ckpt), "--run", str(run), "--tasks", tasks, "--lengths", lengths,
            "--samples", str(samples), "--seed", str(seed), "--prefill-chunk", "512", *extra]


def summary(run: Path) -> dict[tuple[str, int], float]:
    with open(run / "summary.csv") as f:
        rows = [r for r in csv.DictReader(f) if AVG not in (r["task"], r["length"])]
    return {(r["task"], int(r["length"])): float(r["score"]) for r in rows}


@pytest.fixture(scope="module")
def reference_run(ckpt, tmp_path_factory) -> Path:
    """One uninterrupted run at batch size 1: what every other run must reproduce."""
    run = tmp_path_factory.mktemp("ref") / "run"
    run_eval(parse_args(cli_args(ckpt, run, "--batch", "1")))
    return run


def test_run_writes_predictions_summary_and_run_info(reference_run):
    preds = predictions(reference_run)
    assert sorted({(t, n) for t, n, _ in preds}) == [("niah_single_1", 1024), ("niah_single_1", 1536), ("vt", 1024), ("vt", 1536)]
    assert len(preds) == 12
    lines = [json.loads(x) for x in (reference_run / "pred/vt/1024.jsonl").read_text().splitlines()]
    samples = [json.loads(x) for x in (reference_run / "data/vt/1024.jsonl").read_text().splitlines()]
    for line, sample in zip(lines, samples):
        assert line["index"] == sample["index"] and line["outputs"] == sample["outputs"]
        assert line["meta"] == sample["meta"] and line["length"] == 1024
        # the prompt is input + answer_prefix (+ BOS), counted with the checkpoint's byte tokenizer
        assert line["prompt_tokens"] == len((sample["input"] + sample["answer_prefix"]).encode()) + 1
        assert 0 <= line["pred_tokens"] <= sample["max_new_tokens"] == 30
        assert line["prefill_s"] > 0 and line["decode_s"] >= 0
    assert set(summary(reference_run)) == {(t, n) for t, n, _ in preds}
    info = json.loads((reference_run / "run.json").read_text())
    assert info["checkpoint"]["config"]["window"] == 16 and len(info["checkpoint"]["fingerprint"]) == 16
    results = json.loads((reference_run / "results.json").read_text())
    assert results["schema"] == 1
    assert {(c["task"], c["length"]): c["score"] for c in results["cells"]} == summary(reference_run)
    assert results["provenance"]["fingerprint"] == info["checkpoint"]["fingerprint"]
    assert results["provenance"]["git_revision"] == info["versions"]["git"] is not None  # this invocation's
    assert (reference_run / "summary_table.csv").read_text().splitlines()[0] == "task,1024,1536,Avg."
    assert info["versions"]["jax"] and info["device"]["backend"] == "cpu" and info["wall_s"] > 0
    assert set(info["per_length"]) == {"1024", "1536"}
    assert info["per_length"]["1024"]["prefill_tokens_per_s"] > 0 and info["peak_memory_bytes"] > 0


def test_larger_batch_gives_identical_predictions(ckpt, reference_run, tmp_path):
    run_eval(parse_args(cli_args(ckpt, tmp_path / "run", "--batch", "2")))
    assert predictions(tmp_path / "run") == predictions(reference_run)


def test_rerun_skips_finished_samples_and_redoes_a_torn_line(ckpt, reference_run, tmp_path):
    run = tmp_path / "run"
    args = parse_args(cli_args(ckpt, run, "--batch", "1"))
    run_eval(args)
    path = run / "pred/niah_single_1/1536.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:1]) + lines[1][:25])  # a kill mid-append: one whole line, one torn
    calls = []

    class Counting:
        def __init__(self, model, tokenizer):
            from evaluation.predictors import ModelPredictor

            self.inner = ModelPredictor(model, tokenizer, prefill_chunk=512)

        def predict(self, samples):
            calls.append([(s["task"], s["index"]) for s in samples])
            return self.inner.predict(samples)

    run_eval(args, make_predictor=Counting)
    assert calls == [[("niah_single_1", 1)], [("niah_single_1", 2)]]
    assert predictions(run) == predictions(reference_run)


class AnswersFromGold:
    """A model double that 'knows' the answers: prints every gold string."""

    def __init__(self, model, tokenizer):
        pass

    def predict(self, samples):
        return [Prediction(" ".join(s["outputs"]), 10, 5, 0.1, 0.1) for s in samples]


class AnswersNothing:
    def __init__(self, model, tokenizer):
        pass

    def predict(self, samples):
        return [Prediction("", 10, 0, 0.1, 0.1) for s in samples]


@pytest.mark.parametrize("double, score", [(AnswersFromGold, 100.0), (AnswersNothing, 0.0)], ids=["gold", "empty"])
def test_pipeline_scores_a_model_double(ckpt, tmp_path, double, score):
    tasks = "niah_single_1,niah_multikey_1,niah_multivalue,niah_multiquery,vt,cwe,fwe"
    cells = run_eval(parse_args(cli_args(ckpt, tmp_path / "run", tasks=tasks, lengths="2048", samples=2)), make_predictor=double)
    assert len(cells) == 7 and {cell.score for cell in cells.values()} == {score}
    assert set(summary(tmp_path / "run").values()) == {score}


def test_make_target_end_to_end(ckpt, reference_run, tmp_path):
    run = tmp_path / "run"
    proc = subprocess.run(
        ["make", "-s", "eval-ruler", f"CKPT={ckpt}", f"RUN={run}", f"TASKS={TASKS}", f"LENGTHS={LENGTHS}",
         "SAMPLES=3", "SEED=7", "CHUNK=512", "BATCH=3", f"PY={sys.executable}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "average" in proc.stdout and "summary.csv" in proc.stdout
    assert predictions(run) == predictions(reference_run)
    assert summary(run) == summary(reference_run)


def test_four_fake_devices_match_one(ckpt, reference_run, tmp_path):
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(
        [sys.executable, "-m", "runners.eval_ruler", *cli_args(ckpt, tmp_path / "run", "--batch", "3")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = json.loads((tmp_path / "run/run.json").read_text())
    assert info["device"]["local_devices"] == 4
    assert predictions(tmp_path / "run") == predictions(reference_run)


def run_cli(args: list[str]) -> tuple[int, str]:
    proc = subprocess.run([sys.executable, "-m", "runners.eval_ruler", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"}, timeout=300)
    return proc.returncode, proc.stderr.strip()


def test_bad_input_is_one_line_exit_2(ckpt, reference_run, tmp_path):
    cases = {
        "missing checkpoint": (cli_args(tmp_path / "nope", tmp_path / "a"), "not a directory"),
        "unknown task": (cli_args(ckpt, tmp_path / "b", tasks="niah_singel_1"), "did you mean 'niah_single_1'"),
        "length too long": (cli_args(ckpt, tmp_path / "c", lengths="200000"), "max_context"),
        "other seed, same run": (cli_args(ckpt, reference_run, seed=8), "different seed"),
        "other dtype, same run": (cli_args(ckpt, reference_run, "--compute-dtype", "bfloat16"),
                                  "different compute_dtype (compute_dtype='float32')"),
    }
    for name, (args, needle) in cases.items():
        code, err = run_cli(args)
        assert code == 2, f"{name}: exit {code}: {err[-500:]}"
        assert len(err.splitlines()) == 1 and needle in err, f"{name}: {err}"
    assert not (tmp_path / "b" / "pred").exists() and not (tmp_path / "c" / "pred").exists()


def test_defaults_are_the_swa_demo_at_1_2_4x_its_training_length():
    cfg = parse_args([])
    assert cfg.checkpoint == DEMO_CHECKPOINT and DEMO_CHECKPOINT.name == "swa-w64"
    train_context = json.loads((DEMO_CHECKPOINT / "config.json").read_text())["train_context"]
    assert cfg.lengths == tuple(m * train_context for m in (1, 2, 4))


def test_default_lengths_need_a_train_context(tmp_path):
    ckpt = Path(init_checkpoint("tiny-rattention", str(tmp_path / "ckpt")))
    config = json.loads((ckpt / "config.json").read_text())
    (ckpt / "config.json").write_text(json.dumps({**config, "train_context": None}))
    code, err = run_cli(["--checkpoint", str(ckpt), "--run", str(tmp_path / "run")])
    assert code == 2 and len(err.splitlines()) == 1 and "pass --lengths" in err
    assert not (tmp_path / "run").exists()


def test_tasks_list_needs_no_checkpoint_and_matches_prepare(tmp_path, capsys):
    assert main(["--tasks", "list", "--checkpoint", str(tmp_path / "nope"), "--run", str(tmp_path / "run")]) == 0
    listed = capsys.readouterr().out
    assert prepare_main(["--tasks", "list"]) == 0
    assert listed == capsys.readouterr().out
    assert listed.splitlines()[1].split()[0] == "niah_single_1" and not (tmp_path / "run").exists()
