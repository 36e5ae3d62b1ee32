"""`make bench-eval`: a fixed small evaluation, timed per length -> bench/results/eval.json.

Initializes a random checkpoint of --preset (default tiny-rattention, so it runs on a CPU in minutes),
evaluates --tasks at --lengths with --samples samples into a fresh temporary run, and records per length
what the run's run.json reports: steady-state samples/s, prefill tokens/s and decode ms/token, the
compilation seconds apart, and peak memory. A file git tracks is replaced only with --overwrite.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
from pathlib import Path

from common.cli import parse_lengths, user_errors_exit_2
from common.files import atomic_write_json, read_json
from runners.bench_out import add_overwrite_flag, result_path
from runners.eval_ruler import EvalConfig, run_eval
from runners.init import init_checkpoint


@user_errors_exit_2
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m runners.bench_eval", description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="tiny-rattention")
    p.add_argument("--tasks", default="niah_single_1,niah_multikey_1,vt,fwe")
    p.add_argument("--lengths", default="1024,2048,4096")
    p.add_argument("--samples", type=int, default=4)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--prefill-chunk", type=int, default=1024)
    p.add_argument("--out", default="bench/results/eval.json")
    add_overwrite_flag(p)
    a = p.parse_args(argv)
    out = result_path(a.out, a.overwrite)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = init_checkpoint(a.preset, str(Path(tmp) / a.preset), seed=0)
        run = Path(tmp) / "run"
        run_eval(EvalConfig(checkpoint=Path(ckpt), run=run, tasks=a.tasks, lengths=tuple(parse_lengths(a.lengths)),
                            samples=a.samples, batch=a.batch, prefill_chunk=a.prefill_chunk))
        info = read_json(run / "run.json")
    result = {
        "preset": a.preset, "tasks": a.tasks, "samples": a.samples, "batch": a.batch, "prefill_chunk": a.prefill_chunk,
        "device": info["device"], "versions": info["versions"], "machine": platform.platform(),
        "wall_s": info["wall_s"], "per_length": info["per_length"],
    }
    atomic_write_json(out, result)
    print(f"{'length':>8} {'samples/s':>10} {'prefill tok/s':>14} {'decode ms/tok':>14} {'compile s':>10} {'peak MiB':>9}")
    for length, row in info["per_length"].items():
        print(f"{length:>8} {row['samples_per_s']:>10} {row['prefill_tokens_per_s']:>14} {row['decode_ms_per_token']:>14} "
              f"{row['compile_s']:>10} {row['peak_memory_bytes'] / 2**20:>9.0f}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
