"""The faults of issue 14, each answered with one line and exit 2 (or a recovery), nothing torn or claimed.

Cases that fail before any sample is predicted run the real CLI in a subprocess; cases about what a run
leaves behind use a model double in-process (its answers are the gold strings) to stay fast.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from evaluation.predictors import Prediction
from model_adapters.checkpoint import load, save
from model_adapters.generation import generate_greedy
from runners.eval_ruler import parse_args, run_eval
from tests.reliability.helpers import eval_args, one_line_exit_2, predictions, run_eval_cli

HERE = Path(__file__).parent


class Gold:
    """A model double that answers every gold string."""

    def __init__(self, model, tokenizer):
        pass

    def predict(self, samples):
        return [Prediction(" ".join(s["outputs"]), 10, 4, 0.1, 0.2, 0.0) for s in samples]


def untouched(run: Path) -> bool:
    """Nothing claimed and nothing predicted: no run.json and no prediction shard."""
    return not (run / "run.json").exists() and not list(run.glob("pred/*/*.jsonl"))


def test_typo_in_template_writes_nothing_and_the_corrected_command_runs(ckpt, tmp_path):
    run = tmp_path / "run"
    one_line_exit_2(run_eval_cli(eval_args(ckpt, run, "--chat-template", "meta-lama3")), "not a known name")
    assert not run.exists(), "validation comes before anything is written"
    one_line_exit_2(run_eval_cli(eval_args(ckpt, run, "--task-file", str(tmp_path / "missing.yaml"))), "missing.yaml")
    assert not run.exists()
    run_eval(parse_args(eval_args(ckpt, run, samples=1)), make_predictor=Gold, progress=False)
    assert len(predictions(run)) == 1


def test_too_small_length_names_the_tasks_minimum_length(ckpt, tmp_path):
    run = tmp_path / "run"
    err = one_line_exit_2(run_eval_cli(eval_args(ckpt, run, lengths="200")), "the task needs at least")
    minimum = int(err.split("at least ")[1].split()[0])
    assert 200 < minimum <= 1024 and "-" not in err.split("at least ")[1].split()[0]
    assert untouched(run)
    run_eval(parse_args(eval_args(ckpt, run, lengths=str(minimum), samples=1)), make_predictor=Gold, progress=False)


def test_oversized_user_task_is_refused_before_the_model_sees_it(ckpt, tmp_path):
    run = tmp_path / "run"
    proc = run_eval_cli(eval_args(ckpt, run, "--task-file", str(HERE / "oversized_task.py"), tasks="oversized"))
    one_line_exit_2(proc, "is filed at length 1024")
    assert untouched(run)


def _with_params(ckpt: Path, out: Path, value: float) -> Path:
    """A copy of `ckpt` whose second block's MLP down-projection has one weight set to `value` (saved, so
    its manifest matches). With inf, that block's output holds +-inf in one channel and no NaN (the NaN
    comes one block later, from the next norm), so only Inf detection names layer 1."""
    model, _ = load(ckpt)
    params = nnx.state(model, nnx.Param)
    pure = nnx.to_pure_dict(params)
    down = pure["blocks"][1]["mlp"]["down_proj"]
    down["kernel"] = down["kernel"].at[0, 0].set(value)
    nnx.replace_by_pure_dict(params, pure)
    nnx.update(model, params)
    return save(model, out)


@pytest.mark.parametrize("value", [np.inf, np.nan], ids=["inf", "nan"])
def test_non_finite_parameters_name_the_first_bad_layer(ckpt, tmp_path, value):
    bad = _with_params(ckpt, tmp_path / "bad", value)
    err = one_line_exit_2(run_eval_cli(eval_args(bad, tmp_path / "run", samples=1)), "NaN or Inf")
    assert "first at layer 1" in err
    assert not list((tmp_path / "run").glob("pred/*/*.jsonl"))


def test_flipped_bytes_in_params_are_caught_by_the_manifest(ckpt, tmp_path):
    bad = tmp_path / "ckpt"
    shutil.copytree(ckpt, bad)
    target = max((p for p in (bad / "params").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    data = bytearray(target.read_bytes())
    for i in np.random.default_rng(0).choice(len(data), size=min(100, len(data)), replace=False):
        data[i] ^= 0xFF
    target.write_bytes(bytes(data))
    one_line_exit_2(run_eval_cli(eval_args(bad, tmp_path / "run")), "content differs from its hash")
    assert not (tmp_path / "run").exists()


def test_task_version_change_names_evals_own_options(ckpt, tmp_path):
    tasks = tmp_path / "tasks.yaml"
    tasks.write_text("my_niah:\n  include: niah_single_1\n  args: {num_needle_k: 1}\n")
    run = tmp_path / "run"
    args = eval_args(ckpt, run, "--task-file", str(tasks), tasks="my_niah", samples=1)
    run_eval(parse_args(args), make_predictor=Gold, progress=False)
    tasks.write_text("my_niah:\n  include: niah_single_1\n  args: {num_needle_k: 1}\n  version: 2\n")
    err = one_line_exit_2(run_eval_cli(args), "use a new --run")
    assert "--out" not in err and "--overwrite" not in err


def test_partial_rerun_merges_run_json_and_lower_samples_is_refused(ckpt, tmp_path):
    run = tmp_path / "run"
    run_eval(parse_args(eval_args(ckpt, run, lengths="1024 1536", samples=2)), make_predictor=Gold, progress=False)
    run_eval(parse_args(eval_args(ckpt, run, lengths="1024", samples=2)), make_predictor=Gold, progress=False)
    info = json.loads((run / "run.json").read_text())
    assert set(info["per_length"]) == {"1024", "1536"}, "a partial rerun never loses a cell"
    assert len(info["invocations"]) == 2
    assert info["wall_s"] == pytest.approx(sum(i["wall_s"] for i in info["invocations"]), abs=0.01)
    assert {r["length"] for r in _summary(run)} == {"1024", "1536", "Avg."}

    run_eval(parse_args(eval_args(ckpt, run, lengths="1024", samples=3)), make_predictor=Gold, progress=False)
    assert json.loads((run / "run.json").read_text())["samples"] == 3
    err = one_line_exit_2(run_eval_cli(eval_args(ckpt, run, lengths="1024", samples=2)), "--samples 2")
    assert "pass --samples 3" in err


def _summary(run: Path) -> list[dict]:
    import csv

    with open(run / "summary.csv") as f:
        return list(csv.DictReader(f))


def test_run_summary_has_the_report_schema(ckpt, tmp_path):
    from evaluation.run_dir import SUMMARY_COLUMNS

    run = tmp_path / "run"
    run_eval(parse_args(eval_args(ckpt, run, samples=1)), make_predictor=Gold, progress=False)
    assert tuple((run / "summary.csv").read_text().splitlines()[0].split(",")) == SUMMARY_COLUMNS


def test_default_run_is_named_from_checkpoint_and_settings(ckpt):
    cfg = parse_args(["--checkpoint", str(ckpt), "--lengths", "1024"])
    assert cfg.run == Path("runs") / "tiny-rattention-seed42-base"
    assert parse_args(["--checkpoint", str(ckpt), "--lengths", "1024", "--seed", "1"]).run.name == "tiny-rattention-seed1-base"
    custom = parse_args(["--checkpoint", str(ckpt), "--lengths", "1024", "--chat-template", "<s>{task_template}"]).run
    assert custom.name.startswith("tiny-rattention-seed42-template-") and "{" not in custom.name


def test_compilation_is_timed_apart_from_steady_state(ckpt):
    model, _ = load(ckpt)
    prompts = [[7] * 300]
    first = generate_greedy(model, prompts, max_new_tokens=3, prefill_chunk=256)
    again = generate_greedy(model, prompts, max_new_tokens=3, prefill_chunk=256)
    assert first.compile_s > 0 and again.compile_s == 0.0
    assert first.tokens == again.tokens
