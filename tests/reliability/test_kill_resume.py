"""SIGKILL at chosen points (after the Nth line, or mid-write), and a second writer on a locked run.

Every kill point is exact (tests.reliability.faulty_eval counts written lines), so these tests behave
the same on a slow or a fast machine. The resume tests run at batch 3 and kill mid-batch: a resume that
skipped a whole batch once any of its samples was done, or that dropped the per-sample skip inside a
partly finished batch, fails them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from runners.eval_ruler import parse_args, run_eval
from tests.reliability.helpers import ENV, ROOT, eval_args, one_line_exit_2, predictions, run_eval_cli

SAMPLES = 7  # batches of 3: [0, 1, 2], [3, 4, 5], [6]


@pytest.fixture(scope="module")
def uninterrupted(ckpt, tmp_path_factory):
    """The predictions of one uninterrupted run at batch 3 (what every resumed run must reproduce)."""
    run = tmp_path_factory.mktemp("uninterrupted") / "run"
    run_eval(parse_args(eval_args(ckpt, run, samples=SAMPLES, batch=3)), progress=False)
    return predictions(run)


def batches_run(log) -> list[list[int]]:
    return [[index for _, index in json.loads(line)] for line in log.read_text().splitlines()] if log.exists() else []


@pytest.mark.parametrize("fault", [["--kill-after", "4"], ["--torn-at", "5"]], ids=["killed-after-4", "torn-at-5"])
def test_batch_3_killed_mid_batch_resumes_to_identical_predictions(ckpt, uninterrupted, tmp_path, fault):
    run, log = tmp_path / "run", tmp_path / "batches.jsonl"
    args = eval_args(ckpt, run, samples=SAMPLES, batch=3)
    killed = run_eval_cli(args, *fault, "--log-batches", str(log))
    assert killed.returncode == -9, killed.stderr[-1500:]
    done = len((run / "pred/niah_single_1/1024.jsonl").read_text().split("\n")) - 1
    assert done == 4, "killed in batch 2 with samples 0-3 written"
    log.unlink()

    resumed = run_eval_cli(args, "--log-batches", str(log))
    assert resumed.returncode == 0, resumed.stderr[-1500:]
    assert batches_run(log) == [[3, 4, 5], [6]], "the partly finished batch is rerun whole, finished ones not"
    assert predictions(run) == uninterrupted


def test_second_writer_on_a_locked_run_exits_2_naming_the_holder(ckpt, tmp_path):
    run, go = tmp_path / "run", tmp_path / "go"
    args = eval_args(ckpt, run, samples=3, batch=1)
    holder = subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.faulty_eval", "--pause-after", "1", "--until", str(go), "--", *args],
        cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        shard = run / "pred/niah_single_1/1024.jsonl"
        deadline = time.monotonic() + 300
        while not (shard.exists() and shard.read_text().count("\n") == 1):  # the holder is paused, lock held
            assert holder.poll() is None and time.monotonic() < deadline, "the holder did not reach its pause"
            time.sleep(0.05)
        second = run_eval_cli(args)
        one_line_exit_2(second, f"pid {holder.pid}")
        assert shard.read_text().count("\n") == 1, "the refused process wrote nothing"
    finally:
        go.touch()
        holder.wait(timeout=300)
    assert holder.returncode == 0, holder.stderr.read()[-1500:]
    assert len(predictions(run)) == 3
    assert run_eval_cli(args).returncode == 0, "the lock is released when its holder exits"
