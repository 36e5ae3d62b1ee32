"""Evaluate a checkpoint on RULER at several lengths: make eval-ruler / python -m runners.eval_ruler.

    python -m runners.eval_ruler --checkpoint DIR --lengths 4096,8192 --tasks all --samples 10 --run RUN

With no --checkpoint it evaluates the shipped RAttention demo (checkpoints/rattention-w64); with no
--lengths, at 1x, 2x, 4x and 8x the checkpoint's train_context (config.json).

1. Prepares (or reuses, checking RUN/data/manifest.json) each task's samples at each length with the
   checkpoint's own tokenizer.
2. Prompts with input + answer_prefix, chunked prefill, greedy decode up to the task's
   tokens_to_generate, stop at EOS; batches of samples of one (task, length), sharded over local devices.
3. Appends one line per sample to RUN/pred/<task>/<length>.jsonl as soon as its batch is done (flushed,
   fsynced), then scores RUN/summary.csv and writes RUN/run.json.
Rerunning the same command resumes: finished samples (by task, length, index) are skipped; a torn last
line is redone. Batches are fixed slices of the sample order, so a resumed run computes exactly the
batches an uninterrupted one would. A different checkpoint or seed in the same RUN is refused.
Several processes (jax.distributed): process p takes samples with index % process_count == p and writes
RUN/pred/<task>/<length>.<p>.jsonl; process 0 writes the summary once all shards are complete.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Callable, Sequence

from tqdm import tqdm

from model_adapters.config import load_config
from common.errors import UserError
from common.files import atomic_write_json, atomic_write_text, fingerprint, read_json, read_jsonl
from common.cli import parse_lengths, user_errors_exit_2
from runners.predictions import PredictionFile, prediction_path
from runners.predictors import ModelPredictor, Predictor, host_peak_rss, peak_device_memory
from runners.prepare import prepare_data

RUN_FORMAT = 1
DEMO_CHECKPOINT = Path(__file__).resolve().parent.parent / "checkpoints" / "rattention-w64"
DEFAULT_LENGTH_MULTIPLES = (1, 2, 4, 8)


@dataclass(frozen=True)
class EvalConfig:
    checkpoint: Path
    lengths: tuple[int, ...]
    tasks: str  # "all" or names, commas or spaces
    samples: int
    run: Path
    seed: int = 42
    batch: int | None = None  # None: sized to the local devices
    chunk: int = 2048
    template: str = "base"
    impl: str | None = None
    task_files: tuple[str, ...] = ()
    options: dict = field(default_factory=dict)  # haystack / squad / hotpotqa paths


def parse_args(argv=None) -> EvalConfig:
    p = argparse.ArgumentParser(prog="python -m runners.eval_ruler", description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=str(DEMO_CHECKPOINT),
                   help="checkpoint directory (config.json + tokenizer + params/); default: the shipped RAttention demo")
    p.add_argument("--lengths", default=None,
                   help="target lengths in tokens, commas or spaces (default: 1x,2x,4x,8x the checkpoint's train_context)")
    p.add_argument("--tasks", default="all", help="'all' or task names, commas or spaces")
    p.add_argument("--samples", type=int, default=10, help="samples per task and length")
    p.add_argument("--run", default=None, help="run directory (default runs/<checkpoint name>-<date>)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--batch", type=int, default=None, help="samples per batch (default: 1 per local device)")
    p.add_argument("--chunk", type=int, default=2048, help="prefill chunk size in tokens")
    p.add_argument("--template", default="base", help="chat template name or format string with {task_template}")
    p.add_argument("--impl", choices=("reference", "xla", "pallas"), default=None, help="kernel implementation")
    p.add_argument("--task-file", action="append", default=[], help="extra task YAML or .py file (repeatable)")
    for name in ("haystack", "squad", "hotpotqa"):
        p.add_argument(f"--{name}", default=None, help=f"path (default: $RULER_{name.upper()})")
    a = p.parse_args(argv)
    ckpt = Path(a.checkpoint)
    lengths = parse_lengths(a.lengths) if a.lengths is not None else default_lengths(ckpt)
    if a.samples < 1:
        raise UserError(f"--samples: {a.samples} must be at least 1")
    if a.batch is not None and a.batch < 1:
        raise UserError(f"--batch: {a.batch} must be at least 1")
    if a.chunk < 1:
        raise UserError(f"--chunk: {a.chunk} must be at least 1")
    run = Path(a.run) if a.run else Path("runs") / f"{ckpt.absolute().name}-{dt.date.today().isoformat()}"
    options = {k: v for k in ("haystack", "squad", "hotpotqa") if (v := getattr(a, k) or os.environ.get(f"RULER_{k.upper()}"))}
    return EvalConfig(
        checkpoint=ckpt, lengths=tuple(lengths), tasks=a.tasks, samples=a.samples, run=run,
        seed=a.seed, batch=a.batch, chunk=a.chunk, template=a.template, impl=a.impl,
        task_files=tuple(a.task_file), options=options,
    )


def default_lengths(ckpt: Path) -> list[int]:
    """1x, 2x, 4x and 8x the checkpoint's train_context."""
    train_context = load_config(ckpt).train_context
    if not train_context:
        raise UserError(f"{ckpt}/config.json has no train_context to take default lengths from; pass --lengths")
    return [m * train_context for m in DEFAULT_LENGTH_MULTIPLES]


def git_revision() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def versions() -> dict:
    found = {"python": platform.python_version(), "rattn-ruler": None}
    for name in ("rattn-ruler", "jax", "jaxlib", "flax", "orbax-checkpoint", "numpy"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    found["git"] = git_revision()
    return found


def claim_run(cfg: EvalConfig, identity: dict) -> dict:
    """Reads RUN/run.json, refuses a run started with another checkpoint, seed or template, returns it."""
    path = cfg.run / "run.json"
    info = read_json(path) if path.is_file() else {}
    before = info.get("identity")
    if before is not None and before != identity:
        changed = sorted(k for k in identity if before.get(k) != identity[k])
        raise UserError(
            f"{path}: this run was started with a different {', '.join(changed)} "
            f"({', '.join(f'{k}={before.get(k)!r}' for k in changed)}); use a new --run directory"
        )
    info["identity"] = identity
    return info


def batches(samples: Sequence[dict], size: int) -> list[list[dict]]:
    """Fixed slices of the sample order: the same batches whether or not the run was interrupted."""
    return [list(samples[i:i + size]) for i in range(0, len(samples), size)]


def record(sample: dict, length: int, p) -> dict:
    """One prediction line (DESIGN.md section 3); `length` is the target length of the cell."""
    return {
        "index": sample["index"], "task": sample["task"], "length": length,
        "pred": p.pred, "outputs": sample["outputs"], "meta": sample["meta"],
        "prompt_tokens": p.prompt_tokens, "pred_tokens": p.pred_tokens,
        "prefill_s": round(p.prefill_s, 6), "decode_s": round(p.decode_s, 6),
    }


@dataclass
class Throughput:
    """Running totals for the progress bar of one length."""

    prompt_tokens: int = 0
    prefill_s: float = 0.0

    def postfix(self) -> str:
        return f"{self.prompt_tokens / self.prefill_s:.0f} prefill tok/s" if self.prefill_s > 0 else ""


def evaluate_cell(samples: list[dict], length: int, pred_file: PredictionFile, predictor: Predictor, batch: int,
                  bar: tqdm, throughput: Throughput) -> None:
    """Runs every batch that has an unfinished sample; appends the unfinished samples' lines."""
    for group in batches(samples, batch):
        if all(s["index"] in pred_file.done for s in group):
            continue
        for sample, p in zip(group, predictor.predict(group)):
            if sample["index"] in pred_file.done:
                continue
            pred_file.append(record(sample, length, p))
            throughput.prompt_tokens += p.prompt_tokens
            throughput.prefill_s += p.prefill_s
            bar.set_postfix_str(throughput.postfix(), refresh=False)
            bar.update(1)


def cost_per_length(run_dir: Path, lengths: Sequence[int], tasks: Sequence[str], peaks: dict[str, int]) -> dict:
    """Throughput per length from the prediction lines (all shards), the keys reports/README.md reads.

    peak_memory_bytes is the peak so far when the length finished (device peak, else host RSS)."""
    out = {}
    for length in lengths:
        prompt = pred = 0
        prefill = decode = 0.0
        n = 0
        for task in tasks:
            for path in (run_dir / "pred" / task).glob(f"{length}*.jsonl"):
                for line in read_jsonl(path, allow_torn_tail=True):
                    n += 1
                    prompt += line["prompt_tokens"]
                    pred += line["pred_tokens"]
                    prefill += line["prefill_s"]
                    decode += line["decode_s"]
        if n:
            out[str(length)] = {
                "samples": n,
                "prefill_tokens_per_s": round(prompt / prefill, 2) if prefill > 0 else None,
                "decode_ms_per_token": round(1000 * decode / pred, 3) if pred else None,
                "samples_per_s": round(n / (prefill + decode), 4) if prefill + decode > 0 else None,
                "peak_memory_bytes": peaks.get(str(length)),
            }
    return out


def write_summary(run_dir: Path, task_files: Sequence[str]) -> dict:
    """RUN/summary.csv (task, length, n, score, ci_low, ci_high) from every prediction shard; returns the
    scored cells {(task, length): reports.scoring.Cell}."""
    from reports.build import registry_metrics
    from reports.runs import load_run
    from reports.scoring import score_run

    cells = score_run(load_run(run_dir), registry_metrics(task_files))
    rows = ["task,length,n,score,ci_low,ci_high"]
    for (task, length), cell in sorted(cells.items()):
        low, high = cell.ci
        rows.append(f"{task},{length},{cell.n},{cell.score:.2f},{low:.2f},{high:.2f}")
    atomic_write_text(run_dir / "summary.csv", "\n".join(rows) + "\n")
    return cells


def score_table(cells: dict) -> str:
    """The task x length scores and the per-length average (reports' definition), as printed text."""
    from reports.aggregate import length_averages

    lengths = sorted({length for _, length in cells})
    tasks = sorted({task for task, _ in cells})
    width = max([len("average"), *map(len, tasks)])
    lines = ["task".ljust(width) + "".join(f"{length:>10}" for length in lengths)]
    for task in tasks:
        lines.append(task.ljust(width) + "".join(
            f"{cells[task, length].score:>10.2f}" if (task, length) in cells else f"{'-':>10}" for length in lengths))
    averages = length_averages(cells)
    lines.append("average".ljust(width) + "".join(f"{averages[length].score:>10.2f}" for length in lengths))
    return "\n".join(lines)


def local_mesh():
    """A 1-D mesh ("data") over the local devices, or None with a single device."""
    import jax
    import numpy as np

    devices = jax.local_devices()
    if len(devices) == 1:
        return None
    return jax.sharding.Mesh(np.array(devices), ("data",))


def run_eval(cfg: EvalConfig, make_predictor: Callable[[object, object], Predictor] | None = None) -> dict:
    """Runs (or resumes) an evaluation; returns the scored cells {(task, length): Cell} (empty on
    processes other than 0). `make_predictor(model, tokenizer)`
    replaces the model-backed predictor (tests use doubles that answer from the gold outputs)."""
    import jax

    from model_adapters.checkpoint import load

    start = time.perf_counter()
    model, tokenizer = load(cfg.checkpoint)
    config = model.config
    extra = 1 if config.bos_id is not None else 0
    for length in cfg.lengths:
        if length + extra > config.max_context:
            raise UserError(
                f"--lengths: {length} exceeds this checkpoint's max_context {config.max_context - extra}"
                f"{' (one token is its BOS)' if extra else ''}; drop that length or raise max_context in config.json"
            )
    process, n_process = jax.process_index(), jax.process_count()
    identity = {"checkpoint": fingerprint(cfg.checkpoint), "seed": cfg.seed, "template": cfg.template}
    info = claim_run(cfg, identity)
    if process == 0:
        atomic_write_json(cfg.run / "run.json", info)

    tasks = prepare_data(
        tasks=cfg.tasks, lengths=cfg.lengths, samples=cfg.samples, tokenizer=tokenizer,
        tokenizer_spec=str(cfg.checkpoint), seed=cfg.seed, out=cfg.run, chat_template=cfg.template,
        task_files=cfg.task_files, options=cfg.options, progress=process == 0,
    )
    mesh = local_mesh()
    n_dev = 1 if mesh is None else mesh.devices.size
    batch = cfg.batch or n_dev
    if make_predictor is None:
        predictor = ModelPredictor(model, tokenizer, prefill_chunk=cfg.chunk, impl=cfg.impl, mesh=mesh)
    else:
        predictor = make_predictor(model, tokenizer)

    peaks: dict[str, int] = {}  # the process's peak memory so far, after each length
    for length in cfg.lengths:
        shards = []  # (this process's samples, their prediction file) per task
        for task in tasks:
            samples = read_jsonl(cfg.run / "data" / task.name / f"{length}.jsonl")[: cfg.samples]
            mine = [s for s in samples if s["index"] % n_process == process]
            path = prediction_path(cfg.run, task.name, length, process if n_process > 1 else None)
            shards.append((mine, PredictionFile(path)))
        total = sum(len(mine) for mine, _ in shards)
        done = sum(sum(s["index"] in f.done for s in mine) for mine, f in shards)
        throughput = Throughput()
        with tqdm(total=total, initial=done, desc=f"eval {length}", unit="sample", disable=process != 0) as bar:
            for mine, pred_file in shards:
                with pred_file:
                    evaluate_cell(mine, length, pred_file, predictor, batch, bar, throughput)
        peaks[str(length)] = peak_device_memory() or host_peak_rss()

    if n_process > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("rattn-ruler eval: all prediction shards written")
    if process != 0:
        return {}
    cells = write_summary(cfg.run, cfg.task_files)
    device = jax.local_devices()[0]
    info.update(
        format=RUN_FORMAT,
        checkpoint={"name": cfg.checkpoint.absolute().name, "path": str(cfg.checkpoint.absolute()),
                    "fingerprint": identity["checkpoint"], "config": config.to_dict()},
        settings={k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
        tasks=[t.name for t in tasks],
        versions=versions(),
        device={"backend": jax.default_backend(), "kind": device.device_kind, "local_devices": jax.local_device_count(),
                "processes": n_process, "host": platform.node()},
        wall_s=round(time.perf_counter() - start, 3),
        peak_memory_bytes=max(peaks.values()),
        per_length=cost_per_length(cfg.run, cfg.lengths, [t.name for t in tasks], peaks),
    )
    atomic_write_json(cfg.run / "run.json", info)
    return cells


@user_errors_exit_2
def main(argv=None) -> int:
    cfg = parse_args(argv)
    cells = run_eval(cfg)
    if cells:
        print(score_table(cells))
        print(f"results: {cfg.run / 'summary.csv'} (predictions in {cfg.run / 'pred'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
