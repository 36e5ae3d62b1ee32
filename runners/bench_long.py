"""Benchmark RULER at 32K to 1M tokens on a model of local layers only (make bench-long).

    python -m runners.bench_long [--lengths 32768,131072,524288,1048576] [--samples 2] [--out FILE]

A randomly initialized `long-rattention` checkpoint (every layer RAttention: no cache grows with the
context; quality is not the point) is prepared for and evaluated on niah_single_1 at each length, each
step in its own process so that each peak RSS is that step's alone: `runners.prepare` (seconds and peak
RSS per sample), then `runners.eval_ruler` on the prepared data (steady-state prefill tokens/s and
decode ms/token from its run.json, and the process's peak RSS). Ratios are against the first length.
Writes bench/results/long-<device>.json (a file git tracks only with --overwrite).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common.cli import parse_lengths, user_errors_exit_2
from common.errors import UserError
from common.files import atomic_write_json, read_jsonl
from runners.bench_out import add_overwrite_flag, result_path

ROOT = Path(__file__).resolve().parent.parent
TASK = "niah_single_1"


# Runs `python -m MODULE ARGS` and reports its own peak RSS at exit: VmHWM belongs to the process's memory
# map, which exec replaces, whereas getrusage's maxrss also counts the parent's RSS at fork.
MEASURED = """
import atexit, runpy, sys
from common.memory import peak_rss
atexit.register(lambda: print(f"peak_rss_kib {peak_rss() // 1024}", file=sys.stderr, flush=True))
sys.argv = sys.argv[1:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


def run_measured(argv: list[str]) -> tuple[float, int]:
    """(wall seconds, peak RSS bytes) of `python -m ARGV...` run to completion; a failure is a UserError."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", MEASURED, *argv], cwd=ROOT, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    lines = proc.stderr.strip().splitlines()
    if proc.returncode != 0:
        messages = [line for line in lines if not line.startswith("peak_rss_kib")]
        raise UserError(f"python -m {argv[0]} failed ({messages[-1] if messages else f'exit {proc.returncode}'}); "
                        "rerun it alone to see why")
    return time.perf_counter() - start, int(lines[-1].split()[1]) * 1024


def device_name() -> str:
    import jax

    device = jax.devices()[0]
    return "cpu" if device.platform == "cpu" else device.device_kind.lower().replace(" ", "-")


def bench_length(ckpt: Path, run: Path, length: int, samples: int, chunk: int, task: str = TASK) -> dict:
    """One RULER cell end to end, `runners.prepare` then `runners.eval_ruler`, each in its own measured
    process: wall time, peak RSS, and the eval's steady-state costs from run.json."""
    prepare_s, prepare_rss = run_measured([
        "runners.prepare", "--tasks", task, "--lengths", str(length), "--samples", str(samples),
        "--tokenizer", str(ckpt), "--seed", "42", "--out", str(run)])
    eval_s, eval_rss = run_measured([
        "runners.eval_ruler", "--checkpoint", str(ckpt), "--run", str(run), "--tasks", task, "--lengths", str(length),
        "--samples", str(samples), "--batch", "1", "--prefill-chunk", str(chunk), "--seed", "42"])
    cell = json.loads((run / "run.json").read_text())["per_length"][str(length)]
    prompts = [r["prompt_tokens"] for r in read_jsonl(run / "pred" / task / f"{length}.jsonl")]
    return {
        "length": length, "samples": samples, "prompt_tokens": max(prompts),
        "prepare_s_per_sample": round(prepare_s / samples, 3), "prepare_peak_rss_bytes": prepare_rss,
        "eval_wall_s": round(eval_s, 2), "eval_peak_rss_bytes": eval_rss,
        "prefill_tokens_per_s": cell["prefill_tokens_per_s"], "decode_ms_per_token": cell["decode_ms_per_token"],
        "compile_s": cell["compile_s"],
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m runners.bench_long", description=__doc__.splitlines()[0])
    p.add_argument("--lengths", default="32768,131072,524288,1048576")
    p.add_argument("--samples", type=int, default=2)
    p.add_argument("--prefill-chunk", type=int, default=2048)
    p.add_argument("--preset", default="long-rattention")
    p.add_argument("--out", default=None, help="default: bench/results/long-<device>.json")
    add_overwrite_flag(p)
    args = p.parse_args(argv)
    lengths = parse_lengths(args.lengths)
    out = result_path(args.out or ROOT / "bench" / "results" / f"long-{device_name()}.json", args.overwrite)
    from runners.init import init_checkpoint

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(init_checkpoint(args.preset, str(Path(tmp) / args.preset), seed=0))
        for length in lengths:
            row = bench_length(ckpt, Path(tmp) / f"run-{length}", length, args.samples, args.prefill_chunk)
            first = rows[0] if rows else row
            row["ratios_to_first"] = {
                "eval_peak_rss": round(row["eval_peak_rss_bytes"] / first["eval_peak_rss_bytes"], 3),
                "prefill_tokens_per_s": round(row["prefill_tokens_per_s"] / first["prefill_tokens_per_s"], 3),
                "decode_ms_per_token": round(row["decode_ms_per_token"] / first["decode_ms_per_token"], 3),
            }
            rows.append(row)
            print(f"{length:>8d}  prepare {row['prepare_s_per_sample']:7.2f} s/sample, peak RSS "
                  f"{row['prepare_peak_rss_bytes'] / 2**20:7.0f} MiB | eval peak RSS {row['eval_peak_rss_bytes'] / 2**20:7.0f} MiB, "
                  f"prefill {row['prefill_tokens_per_s']:9.0f} tok/s, decode {row['decode_ms_per_token']:6.3f} ms/token | "
                  f"vs first: {row['ratios_to_first']}", flush=True)
    atomic_write_json(out, {"device": device_name(), "machine": platform.platform(), "cpu_count": os.cpu_count(),
                            "preset": args.preset, "task": TASK, "prefill_chunk": args.prefill_chunk, "rows": rows})
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(user_errors_exit_2(main)())
