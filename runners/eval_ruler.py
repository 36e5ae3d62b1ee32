"""Evaluate a checkpoint on RULER at several lengths: make eval-ruler / python -m runners.eval_ruler.

    python -m runners.eval_ruler --checkpoint DIR --lengths 4096,8192 --tasks all --samples 10 --run RUN
    python -m runners.eval_ruler --tasks list [--task-file F]    # print the task registry and exit

With no --checkpoint it evaluates the shipped SWA demo (checkpoints/swa-w64, the one demo model that
retrieves; README "Demo models"); with no --lengths, at 1x, 2x and 4x the checkpoint's train_context
(config.json); with no --run, into
runs/<checkpoint name>-seed<seed>-<chat template>, so the same command always finds the same run.

This module is the CLI: it parses arguments, validates everything before writing anything (checkpoint
and its manifest, tasks, chat template, lengths), records provenance, and prints. The work is library
code: `evaluation.run_dir` owns RUN (lock, claim, prediction records, run.json, summary.csv) and
`evaluation.evaluator` runs the task x length loop over a predictor. Rerunning the same command resumes;
a different checkpoint, seed or chat template into the same RUN is refused, and so is a lower --samples.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
import zlib
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from common.cli import parse_lengths, user_errors_exit_2
from common.errors import UserError
from common.files import read_jsonl
from common.memory import peak_rss
from evaluation import distributed
from evaluation.distributed import DistributedSpec
from model_adapters.convert.cached import resolve_checkpoint
from evaluation.evaluator import Cell, Evaluator, check_lengths
from evaluation.predictors import ModelPredictor, Predictor, peak_device_memory, prompt_length
from evaluation.run_dir import PredictionRecord, RunDir
from model_adapters.config import AUTO_DTYPE, add_compute_dtype_flag, load_config
from runners.prepare import OPTION_ENV, TASKS_HELP, list_tasks_if_asked, prepare_data, select_tasks

DEMO_CHECKPOINT = Path(__file__).resolve().parent.parent / "checkpoints" / "swa-w64"
DEFAULT_LENGTH_MULTIPLES = (1, 2, 4)
AUTO_TEMPLATE = "auto"  # --chat-template: the checkpoint's own template, else base


@dataclass(frozen=True)
class EvalConfig:
    checkpoint: Path
    lengths: tuple[int, ...]
    tasks: str  # "all" or names, commas or spaces
    samples: int
    run: Path | None = None  # None: default_run_dir(checkpoint, seed, chat_template)
    seed: int = 42
    batch: int | None = None  # None: sized to the local devices
    prefill_chunk: int = 2048
    chat_template: str = "base"
    impl: str | None = None
    compute_dtype: str = AUTO_DTYPE  # activation dtype (model_adapters.config.resolve_compute_dtype)
    task_files: tuple[str, ...] = ()
    options: dict = field(default_factory=dict)  # haystack / squad / hotpotqa paths
    verify: bool = True  # check the checkpoint's manifest of content hashes
    distributed: DistributedSpec | None = None  # several processes under jax.distributed

    def __post_init__(self):
        if self.samples < 1:
            raise UserError(f"--samples: {self.samples} must be at least 1")
        if self.batch is not None and self.batch < 1:
            raise UserError(f"--batch: {self.batch} must be at least 1")
        if self.prefill_chunk < 1:
            raise UserError(f"--prefill-chunk: {self.prefill_chunk} must be at least 1")
        if self.run is None:
            object.__setattr__(self, "run", default_run_dir(self.checkpoint, self.seed, self.chat_template))


def default_run_dir(checkpoint: Path, seed: int, chat_template: str) -> Path:
    """runs/<checkpoint name>-seed<seed>-<chat template>: the run's identity, so a rerun finds it (a
    template given as a format string is named by its crc32)."""
    template = chat_template if re.fullmatch(r"[A-Za-z0-9_.-]{1,40}", chat_template) else \
        f"template-{zlib.crc32(chat_template.encode()):08x}"
    return Path("runs") / f"{Path(checkpoint).absolute().name}-seed{seed}-{template}"


def parse_args(argv=None) -> EvalConfig:
    from kernels import MODEL_IMPLS

    p = argparse.ArgumentParser(prog="python -m runners.eval_ruler", description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=str(DEMO_CHECKPOINT),
                   help="checkpoint directory (config.json + tokenizer + params/), or hf:DIR (a Hugging Face model "
                        "directory, converted once into $RATTN_RULER_CACHE); default: the shipped SWA demo")
    p.add_argument("--lengths", default=None,
                   help="target lengths in tokens, commas or spaces (default: 1x,2x,4x the checkpoint's train_context)")
    p.add_argument("--tasks", default="all", help=TASKS_HELP)
    p.add_argument("--samples", type=int, default=10, help="samples per task and length")
    p.add_argument("--run", default=None, help="run directory (default runs/<checkpoint name>-seed<seed>-<chat template>)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--batch", type=int, default=None, help="samples per batch (default: 1 per local device)")
    p.add_argument("--prefill-chunk", type=int, default=2048, help="prefill chunk size in tokens")
    p.add_argument("--chat-template", default=AUTO_TEMPLATE,
                   help=f"chat template name or format string with {{task_template}} (default {AUTO_TEMPLATE!r}: the "
                        "checkpoint's own, converted from its tokenizer_config.json, else 'base')")
    p.add_argument("--impl", choices=MODEL_IMPLS, default=None, help="kernel implementation (default: per backend)")
    add_compute_dtype_flag(p)
    p.add_argument("--task-file", action="append", default=[], help="extra task YAML or .py file (repeatable)")
    p.add_argument("--no-verify", action="store_true", help="skip checking the checkpoint's content hashes (huge checkpoints)")
    for name, env in OPTION_ENV.items():
        p.add_argument(f"--{name}", default=None, help=f"path (default: ${env})")
    multi = p.add_argument_group("several processes (jax.distributed; README \"Several hosts\")")
    multi.add_argument("--coordinator", default=None,
                       help=f"HOST:PORT of process 0, or '{distributed.AUTO}' where jax.distributed detects the cluster")
    multi.add_argument("--num-processes", type=int, default=None)
    multi.add_argument("--process-id", type=int, default=None)
    multi.add_argument("--distributed-timeout", type=int, default=300,
                       help="seconds to wait for every process to join, and after which a silent peer counts as dead")
    a = p.parse_args(argv)
    if a.coordinator is None and (a.num_processes is not None or a.process_id is not None):
        raise UserError("--num-processes and --process-id need --coordinator HOST:PORT (process 0's address)")
    spec = None if a.coordinator is None else DistributedSpec(a.coordinator, a.num_processes, a.process_id,
                                                               a.distributed_timeout)
    ckpt = resolve_checkpoint(a.checkpoint, convert=spec is None)
    lengths = parse_lengths(a.lengths) if a.lengths is not None else default_lengths(ckpt)
    chat_template = a.chat_template
    if chat_template == AUTO_TEMPLATE:
        chat_template = load_config(ckpt).tokenizer.chat_template or "base"
    options = {k: v for k, env in OPTION_ENV.items() if (v := getattr(a, k) or os.environ.get(env))}
    return EvalConfig(
        checkpoint=ckpt, lengths=tuple(lengths), tasks=a.tasks, samples=a.samples, run=Path(a.run) if a.run else None,
        seed=a.seed, batch=a.batch, prefill_chunk=a.prefill_chunk, chat_template=chat_template, impl=a.impl,
        compute_dtype=a.compute_dtype, task_files=tuple(a.task_file), options=options, verify=not a.no_verify, distributed=spec,
    )


def default_lengths(ckpt: Path) -> list[int]:
    """1x, 2x and 4x the checkpoint's train_context."""
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


def device_info() -> dict:
    import jax

    return {"backend": jax.default_backend(), "kind": jax.local_devices()[0].device_kind,
            "local_devices": jax.local_device_count(), "processes": jax.process_count(), "host": platform.node()}


@dataclass
class Throughput:
    """Running totals for the progress bar of one length."""

    prompt_tokens: int = 0
    prefill_s: float = 0.0

    def add(self, record: PredictionRecord) -> str:
        self.prompt_tokens += record.prompt_tokens or 0
        self.prefill_s += record.prefill_s or 0.0
        return f"{self.prompt_tokens / self.prefill_s:.0f} prefill tok/s" if self.prefill_s > 0 else ""


def score_run_dir(run: RunDir, task_files) -> dict:
    """Scores every prediction shard of `run`, writes RUN/summary.csv, summary_table.csv and results.json,
    and returns the scored cells {(task, length): reports.scoring.Cell}."""
    from reports.build import registry_metrics
    from reports.results import write_run_results

    return write_run_results(run, registry_metrics(task_files))


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


def validate(cfg: EvalConfig):
    """Everything that can be checked before RUN is touched: RUN's kind, the checkpoint (and its manifest),
    the lengths against max_context, the tasks and the chat template. Returns (model, tokenizer)."""
    from model_adapters.checkpoint import load
    from ruler_tasks.chat_templates import resolve_chat_template

    if cfg.run.exists() and not cfg.run.is_dir():
        raise UserError(f"{cfg.run}: exists and is not a directory; pick another --run")
    model, tokenizer = load(cfg.checkpoint, verify=cfg.verify, compute_dtype=cfg.compute_dtype)
    config = model.config
    extra = 1 if config.bos_id is not None else 0
    for length in cfg.lengths:
        if length + extra > config.max_context:
            raise UserError(
                f"--lengths: {length} exceeds this checkpoint's max_context {config.max_context - extra}"
                f"{' (one token is its BOS)' if extra else ''}; drop that length or raise max_context in config.json"
            )
    select_tasks(cfg.tasks, cfg.task_files)
    resolve_chat_template(cfg.chat_template)
    return model, tokenizer


def run_eval(cfg: EvalConfig, make_predictor: Callable[[object, object], Predictor] | None = None,
             progress: bool = True) -> dict:
    """Runs (or resumes) an evaluation; returns the scored cells {(task, length): Cell} (empty on
    processes other than 0). `make_predictor(model, tokenizer)` replaces the model-backed predictor
    (tests use doubles that answer from the gold outputs)."""
    import jax

    from model_adapters.checkpoint import model_fingerprint

    start = time.perf_counter()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    process, n_process = jax.process_index(), jax.process_count()
    distributed.agree("eval settings", {k: v for k, v in asdict(cfg).items() if k != "distributed"})
    model, tokenizer = validate(cfg)
    run = RunDir(cfg.run)
    identity = {"checkpoint": model_fingerprint(cfg.checkpoint), "seed": cfg.seed, "template": cfg.chat_template,
                "compute_dtype": model.config.compute_dtype}
    with run.locked(process if n_process > 1 else None):
        if process != 0:  # process 0 prepares the data and claims the run; the others then reuse both
            distributed.barrier("run claimed")
        claimed = run.check_claim(identity, cfg.samples)
        tasks = prepare_data(
            tasks=cfg.tasks, lengths=cfg.lengths, samples=cfg.samples, tokenizer=tokenizer,
            tokenizer_spec=str(cfg.checkpoint), seed=cfg.seed, out=cfg.run, chat_template=cfg.chat_template,
            task_files=cfg.task_files, options=cfg.options, progress=progress and process == 0,
            overwrite=not claimed, refusal_hint="use a new --run directory",
        )
        data = cfg.run / "data"
        cells = [Cell(task.name, length, tuple(read_jsonl(data / task.name / f"{length}.jsonl")[: cfg.samples]))
                 for length in cfg.lengths for task in tasks]
        check_lengths(cells, lambda s: prompt_length(model.config, tokenizer, s),
                      lambda cell: data / cell.task / f"{cell.length}.jsonl")
        if process == 0:
            run.claim(identity, cfg.samples, {
                "name": cfg.checkpoint.absolute().name, "path": str(cfg.checkpoint.absolute()),
                "fingerprint": identity["checkpoint"], "config": model.config.to_dict(),
            })
            distributed.barrier("run claimed")

        mesh = local_mesh()
        batch = cfg.batch or (1 if mesh is None else mesh.devices.size)
        if make_predictor is None:
            predictor = ModelPredictor(model, tokenizer, prefill_chunk=cfg.prefill_chunk, impl=cfg.impl, mesh=mesh)
        else:
            predictor = make_predictor(model, tokenizer)
        peaks: dict[str, int] = {}  # the process's peak memory so far, after each length
        for length in cfg.lengths:
            throughput = Throughput()
            bar = tqdm(desc=f"eval {length}", unit="sample", disable=not progress or process != 0)

            def on_record(record: PredictionRecord) -> None:
                bar.set_postfix_str(throughput.add(record), refresh=False)
                bar.update(1)

            evaluator = Evaluator(predictor, run, batch=batch, process=process, process_count=n_process,
                                  on_record=on_record)
            mine = [cell for cell in cells if cell.length == length]
            bar.total, bar.n = evaluator.progress(mine)
            bar.refresh()
            with bar:
                evaluator.run(mine)
            peaks[str(length)] = peak_device_memory() or peak_rss()

        distributed.barrier("all prediction shards written")
        if process != 0:
            return {}
        run.record_invocation({
            "started": started,
            "argv": sys.argv[1:],
            "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
            "tasks": [t.name for t in tasks],
            "lengths": list(cfg.lengths),
            "versions": versions(),
            "device": device_info(),
            "peak_memory_bytes": max(peaks.values()),
            "wall_s": round(time.perf_counter() - start, 3),
        }, peaks)
        scored = score_run_dir(run, cfg.task_files)
    return scored


@user_errors_exit_2
def main(argv=None) -> int:
    if list_tasks_if_asked(argv):
        return 0
    cfg = parse_args(argv)
    with distributed.joined(cfg.distributed) if cfg.distributed is not None else nullcontext():
        cells = run_eval(cfg)
    if cells:
        print(score_table(cells))
        print(f"results: {cfg.run / 'summary.csv'} (predictions in {cfg.run / 'pred'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
