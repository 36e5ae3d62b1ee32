"""Benchmark sample generation: time and peak memory per task and length, byte and BPE tokenizers
(make bench-prepare).

Writes bench/results/prepare.json (a file git tracks only with --overwrite) and prints, per row (task,
tokenizer, length), seconds per sample, the process's peak RSS while generating the row (its VmHWM,
reset before each row, beside the RSS the row started from), and min/mean fill (length / target). The
BPE tokenizer is a byte-level BPE tokenizer.json trained here on the shipped corpus (8K vocabulary), so
the benchmark needs no download.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

from common.memory import current_rss, peak_rss, reset_peak_rss
from model_adapters.tokenizers import ByteTokenizer, HFTokenizer
from ruler_tasks.base import Context
from ruler_tasks.chat_templates import resolve_chat_template
from ruler_tasks.corpus import DEFAULT_CORPUS
from common.files import atomic_write_json
from ruler_tasks.registry import load_registry
from common.cli import parse_lengths, split_list, user_errors_exit_2
from runners.bench_out import add_overwrite_flag, result_path
from runners.prepare import file_rng


def build_bpe_tokenizer(path: Path, vocab_size: int = 8192, text_file: Path = DEFAULT_CORPUS) -> Path:
    """Trains a byte-level BPE tokenizer.json on `text_file` and saves it to `path`."""
    import tokenizers

    tok = tokenizers.Tokenizer(tokenizers.models.BPE())
    tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train([str(text_file)], trainer)
    tok.save(str(path))
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m runners.bench_prepare", description=__doc__.splitlines()[0])
    p.add_argument("--tasks", default="all")
    p.add_argument("--lengths", default="1024,4096,16384,65536,131072,262144,524288,1048576")
    p.add_argument("--samples", type=int, default=10)
    p.add_argument("--out", default="bench/results/prepare.json")
    add_overwrite_flag(p)
    args = p.parse_args(argv)
    out = result_path(args.out, args.overwrite)
    registry = load_registry()
    names = registry.names() if args.tasks == "all" else split_list(args.tasks)
    tasks = [t for t in (registry.get(n) for n in names) if not t.needs_data]
    chat = resolve_chat_template("base")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        bpe = HFTokenizer(build_bpe_tokenizer(Path(tmp) / "tokenizer.json"))
        print(f"trained the BPE tokenizer in {time.perf_counter() - t0:.1f} s")
        for tok_name, tok in (("byte", ByteTokenizer()), ("bpe8k", bpe)):
            for length in parse_lengths(args.lengths):
                for task in tasks:
                    ctx = Context(length, task.tokens_to_generate, tok, chat)
                    reset_peak_rss()
                    rss_before = current_rss()
                    start = time.perf_counter()
                    samples = task.generator.generate(ctx, file_rng(0, task.name, length), args.samples)
                    secs = time.perf_counter() - start
                    peak = max(peak_rss(), rss_before)  # VmHWM's page counts lag by a few pages
                    fills = [s.length / length for s in samples]
                    row = {"task": task.name, "tokenizer": tok_name, "length": length, "samples": len(samples),
                           "seconds": round(secs, 4), "seconds_per_sample": round(secs / len(samples), 4),
                           "samples_per_s": round(len(samples) / secs, 2), "rss_before_mib": round(rss_before / 2**20, 1),
                           "peak_rss_mib": round(peak / 2**20, 1),
                           "min_fill": round(min(fills), 4), "mean_fill": round(sum(fills) / len(fills), 4)}
                    rows.append(row)
                    print(f"{tok_name:6s} {length:>7d} {task.name:16s} {row['seconds_per_sample']:8.3f} s/sample "
                          f"peak RSS {row['peak_rss_mib']:7.1f} MiB (from {row['rss_before_mib']:.1f}) "
                          f"fill min {row['min_fill']:.3f} mean {row['mean_fill']:.3f}", flush=True)
    atomic_write_json(out, {"machine": platform.platform(), "python": platform.python_version(), "rows": rows})
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(user_errors_exit_2(main)())
