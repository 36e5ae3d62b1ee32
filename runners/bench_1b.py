"""`make bench-1b`: model-level prefill and RULER timings of a 1B RAttention model against its all-global twin.

    python -m runners.bench_1b [--small] [--presets bench-1b,bench-1b-global] [--contexts 16384,65536]
        [--chunk 2048] [--cell-preset bench-1b] [--cell-length 65536] [--cell-samples 20] [--out FILE]

Random weights (speed is the point, not quality), activations in --compute-dtype (default: bfloat16 on a
GPU/TPU, float32 on a CPU):
1. For each preset (default `bench-1b`, 3 RAttention : 1 global, and `bench-1b-global`, every layer
   global) at each context: chunked prefill tokens/s and greedy decode ms/token
   (`runners.bench_decode.bench_context`).
2. One RULER niah_single_2 cell at --cell-length on a saved `--cell-preset` checkpoint, timed end to end
   (`runners.prepare`, then `runners.eval_ruler`, each process measured alone: `bench_long.bench_length`).
`--small` is CPU-sized (bench-mid and bench-mid-global at 1K and 2K, a 2-sample cell at 2K). Writes
bench/results/1b-<device>.json (a file git tracks only with --overwrite).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from common.cli import parse_lengths, split_list, user_errors_exit_2
from common.files import atomic_write_json
from model_adapters.config import add_compute_dtype_flag, resolve_compute_dtype
from model_adapters.model import RAttentionLM
from model_adapters.presets import preset_config
from runners.bench_decode import bench_context
from runners.bench_long import ROOT, bench_length, device_name
from runners.bench_out import add_overwrite_flag, result_path

CELL_TASK = "niah_single_2"
FULL = dict(presets="bench-1b,bench-1b-global", contexts="16384,65536", cell_preset="bench-1b",
            cell_length=65536, cell_samples=20)
SMALL = dict(presets="bench-mid,bench-mid-global", contexts="1024,2048", cell_preset="bench-mid",
             cell_length=2048, cell_samples=2)


def prefill_rows(preset: str, contexts: list[int], chunk: int, decode_steps: int, compute_dtype: str) -> list[dict]:
    config = preset_config(preset)
    config = config.replace(compute_dtype=resolve_compute_dtype(compute_dtype, config.compute_dtype,
                                                                jax.default_backend()))
    graphdef, state = nnx.split(RAttentionLM(config, rngs=nnx.Rngs(0)))
    rng = np.random.default_rng(0)
    rows = []
    for context in contexts:
        row = {"preset": preset, "compute_dtype": config.compute_dtype,
               **bench_context(graphdef, state, config, context, min(chunk, context), decode_steps, None, rng)}
        rows.append(row)
        print(f"{preset:<18} {context:>7}: prefill {row['prefill_tokens_per_s']:10.0f} tok/s, "
              f"decode {row['decode_ms_per_token']:8.2f} ms/token", flush=True)
    return rows


@user_errors_exit_2
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m runners.bench_1b", description=__doc__.splitlines()[0])
    p.add_argument("--small", action="store_true", help=f"CPU-sized: {SMALL}")
    p.add_argument("--presets")
    p.add_argument("--contexts")
    p.add_argument("--chunk", type=int, default=2048)
    p.add_argument("--decode-steps", type=int, default=16)
    add_compute_dtype_flag(p)
    p.add_argument("--cell-preset")
    p.add_argument("--cell-length", type=int)
    p.add_argument("--cell-samples", type=int)
    p.add_argument("--out", default=None, help="default: bench/results/1b-<device>.json")
    add_overwrite_flag(p)
    a = p.parse_args(argv)
    d = SMALL if a.small else FULL
    out = result_path(a.out or ROOT / "bench" / "results" / f"1b-{device_name()}.json", a.overwrite)
    contexts = parse_lengths(a.contexts or d["contexts"])
    presets = split_list(a.presets or d["presets"])
    for preset in presets:
        preset_config(preset)  # an unknown name fails here, before anything runs
    rows = [row for preset in presets for row in prefill_rows(preset, contexts, a.chunk, a.decode_steps,
                                                               a.compute_dtype)]
    by_context = {}
    for row in rows:
        by_context.setdefault(row["context"], {})[row["preset"]] = row["prefill_tokens_per_s"]
    from runners.init import init_checkpoint

    cell_preset = a.cell_preset or d["cell_preset"]
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(init_checkpoint(cell_preset, str(Path(tmp) / cell_preset), seed=0))
        cell = bench_length(ckpt, Path(tmp) / "run", a.cell_length or d["cell_length"],
                            a.cell_samples or d["cell_samples"], a.chunk, task=CELL_TASK)
    print(f"{CELL_TASK} at {cell['length']} on {cell_preset}: {cell['samples']} samples in {cell['eval_wall_s']} s "
          f"(prepare {cell['prepare_s_per_sample']} s/sample), prefill {cell['prefill_tokens_per_s']:.0f} tok/s")
    atomic_write_json(out, {
        "device": device_name(), "jax": jax.__version__, "chunk": a.chunk, "prefill": rows,
        "prefill_tokens_per_s": {str(c): v for c, v in by_context.items()},
        "cell": {"task": CELL_TASK, "preset": cell_preset, **cell},
    })
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
