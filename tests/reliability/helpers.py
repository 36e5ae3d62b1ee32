"""Helpers of the fault-injection suite: CLI runs (plain or through faulty_eval) and their checks."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}
PROGRESS = re.compile(r"^(prepare|eval \d+):")  # tqdm bars on stderr, not messages


def eval_args(ckpt: Path, run: Path, *extra: str, tasks: str = "niah_single_1", lengths: str = "1024",
              samples: int = 3, batch: int = 1) -> list[str]:
    return ["--checkpoint", str(ckpt), "--run", str(run), "--tasks", tasks, "--lengths", lengths, "--samples",
            str(samples), "--batch", str(batch), "--seed", "7", "--prefill-chunk", "512", *extra]


def run_eval_cli(args: list[str], *faults: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """runners.eval_ruler in a subprocess, through tests.reliability.faulty_eval when faults are given."""
    module = ["-m", "tests.reliability.faulty_eval", *faults, "--"] if faults else ["-m", "runners.eval_ruler"]
    return subprocess.run([sys.executable, *module, *args], cwd=ROOT, env=ENV, capture_output=True, text=True,
                          timeout=timeout)


def messages(stderr: str) -> list[str]:
    """stderr's lines without progress bars (tqdm redraws with carriage returns)."""
    lines = (line.rsplit("\r", 1)[-1].strip() for line in stderr.split("\n"))
    return [line for line in lines if line and not PROGRESS.match(line)]


def one_line_exit_2(proc: subprocess.CompletedProcess, needle: str) -> str:
    """Asserts exit 2 with exactly one message line containing `needle`; returns it."""
    lines = messages(proc.stderr)
    assert proc.returncode == 2, f"exit {proc.returncode}: {proc.stderr[-1500:]}"
    assert len(lines) == 1 and needle in lines[0], lines
    return lines[0]


def predictions(run: Path) -> dict[tuple[str, int, int], str]:
    """(task, length, index) -> pred over every shard; fails on a torn or duplicate line."""
    out = {}
    for path in sorted((run / "pred").glob("*/*.jsonl")):
        text = path.read_text()
        assert text == "" or text.endswith("\n"), f"{path}: torn last line"
        for line in text.splitlines():
            r = json.loads(line)
            key = (r["task"], r["length"], r["index"])
            assert key not in out, f"duplicate {key} in {path}"
            out[key] = r["pred"]
    return out
