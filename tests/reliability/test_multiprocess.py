"""Real processes under jax.distributed on this machine (the gloo CPU collectives): shards, merge, a
killed peer, and a process started with other arguments."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from runners.eval_ruler import parse_args, run_eval
from tests.reliability.helpers import ENV, ROOT, eval_args, messages, predictions

SAMPLES = 5
TIMEOUT_S = 60  # --distributed-timeout: joining, and a silent peer


@pytest.fixture(scope="module")
def single(ckpt, tmp_path_factory):
    """The predictions of a single-process run (what every multi-process run must reproduce)."""
    run = tmp_path_factory.mktemp("single") / "run"
    run_eval(parse_args(eval_args(ckpt, run, samples=SAMPLES)), progress=False)
    return predictions(run)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(args: list[str], n: int, *, faults: dict[int, list[str]] | None = None,
           extra: dict[int, list[str]] | None = None) -> list[subprocess.CompletedProcess]:
    """Runs n eval processes (process i with faults[i] through faulty_eval, and extra[i] appended) to the
    end; returns their results in process order."""
    port = free_port()
    procs = []
    for i in range(n):
        dist = ["--coordinator", f"127.0.0.1:{port}", "--num-processes", str(n), "--process-id", str(i),
                "--distributed-timeout", str(TIMEOUT_S)]
        fault = (faults or {}).get(i)
        module = ["-m", "tests.reliability.faulty_eval", *fault, "--"] if fault else ["-m", "runners.eval_ruler"]
        procs.append(subprocess.Popen([sys.executable, *module, *args, *dist, *(extra or {}).get(i, [])], cwd=ROOT,
                                      env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = []
    for p in procs:
        out, err = p.communicate(timeout=4 * TIMEOUT_S)
        results.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return results


def errors(proc: subprocess.CompletedProcess) -> list[str]:
    """The `error:` lines among stderr's messages (JAX and gloo log their own lines around them)."""
    return [line for line in messages(proc.stderr) if line.startswith("error:")]


@pytest.mark.parametrize("n", [2, 3])
def test_each_process_writes_its_shard_and_process_0_scores_them_all(ckpt, single, tmp_path, n):
    run = tmp_path / "run"
    # the last process is slow to leave: process 0, which hosts the coordination service, must wait for it
    results = launch(eval_args(ckpt, run, samples=SAMPLES), n, faults={n - 1: ["--slow-exit", "3"]})
    for i, r in enumerate(results):
        assert r.returncode == 0, f"process {i}: {r.stderr[-2000:]}"
    shards = sorted((run / "pred/niah_single_1").iterdir())
    assert [p.name for p in shards] == [f"1024.{i}.jsonl" for i in range(n)]
    for i, shard in enumerate(shards):
        indices = [json.loads(line)["index"] for line in shard.read_text().splitlines()]
        assert indices == [k for k in range(SAMPLES) if k % n == i]  # only its own samples, in order
    assert predictions(run) == single
    assert "niah_single_1" in results[0].stdout  # only process 0 prints scores (gloo prints a line in each)
    assert not any("niah_single_1" in r.stdout for r in results[1:])
    summary = (run / "summary.csv").read_text().splitlines()
    # header, the one cell (every shard scored, once), its task's Avg., the length's Avg., the overall Avg.
    assert len(summary) == 5 and f",niah_single_1,1024,{SAMPLES}," in summary[1]
    invocations = json.loads((run / "run.json").read_text())["invocations"]
    assert len(invocations) == 1 and invocations[0]["device"]["processes"] == n


def test_a_killed_process_stops_the_other_in_one_line_and_a_rerun_resumes(ckpt, single, tmp_path):
    run = tmp_path / "run"
    args = eval_args(ckpt, run, samples=SAMPLES)
    first = launch(args, 2, faults={1: ["--kill-after", "1"]})
    assert first[1].returncode == -9
    assert first[0].returncode == 2, first[0].stderr[-2000:]
    [line] = errors(first[0])
    assert "lost a peer process at 'all prediction shards written'" in line and "rerun" in line
    assert not (run / "summary.csv").exists()
    assert len((run / "pred/niah_single_1/1024.1.jsonl").read_text().splitlines()) == 1

    second = launch(args, 2)
    assert [r.returncode for r in second] == [0, 0], second[0].stderr[-2000:] + second[1].stderr[-2000:]
    assert predictions(run) == single


def test_a_process_started_with_other_arguments_stops_every_process_in_one_line(ckpt, tmp_path):
    run = tmp_path / "run"
    # process 1 is slow to leave: process 0, which hosts the coordination service, must wait for it
    results = launch(eval_args(ckpt, run, samples=SAMPLES), 2, faults={1: ["--slow-exit", "2"]},
                     extra={1: ["--prefill-chunk", "256"]})
    for r in results:
        assert r.returncode == 2, r.stderr[-2000:]
        [line] = errors(r)
        assert "process(es) 1 were started with other arguments than process 0" in line
    assert not Path(run).exists()  # nothing written


def test_distributed_flags_are_checked_before_anything_starts(ckpt, tmp_path):
    for extra, needle in ((["--num-processes", "2"], "need --coordinator"),
                          (["--coordinator", "127.0.0.1:1", "--num-processes", "2"], "needs --num-processes and --process-id"),
                          (["--coordinator", "127.0.0.1:1", "--num-processes", "2", "--process-id", "2"], "must be in [0")):
        proc = subprocess.run([sys.executable, "-m", "runners.eval_ruler", *eval_args(ckpt, tmp_path / "run"), *extra],
                              cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2 and len(messages(proc.stderr)) == 1 and needle in proc.stderr, proc.stderr
