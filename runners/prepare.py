"""Generate RULER samples (no model): RUN/data/<task>/<length>.jsonl plus RUN/data/manifest.json.

    python -m runners.prepare --tasks all --lengths 4096,8192 --samples 10 --tokenizer byte --seed 42 --out RUN

The manifest records the tokenizer fingerprint, seed, chat template, haystack and, per task, the
generator version and arguments and each file's sample count. A rerun keeps complete files and extends
short ones (sample i never depends on the count); a changed tokenizer, seed, chat template, haystack or
task version is refused unless --overwrite. Files are written atomically; tasks whose data is missing
(QA) are skipped with one line saying where to put it.
"""

from __future__ import annotations

import argparse
import os
import zlib
from pathlib import Path

import numpy as np
from tqdm import tqdm

from model_adapters.tokenizers import load_tokenizer
from ruler_tasks.base import Context
from ruler_tasks.chat_templates import resolve_chat_template
from ruler_tasks.corpus import corpus_id
from ruler_tasks.errors import UserError
from ruler_tasks.files import atomic_write_json, atomic_write_jsonl, read_json, read_jsonl
from ruler_tasks.registry import Task, load_registry
from runners.cli import parse_lengths, split_list, user_errors_exit_2

MANIFEST_VERSION = 1
# Run-time data options: flag name -> environment variable used when the flag is absent.
OPTION_ENV = {"haystack": "RULER_HAYSTACK", "squad": "RULER_SQUAD", "hotpotqa": "RULER_HOTPOTQA"}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m runners.prepare", description=__doc__.splitlines()[0])
    p.add_argument("--tasks", default="all", help="'all' or task names, commas or spaces")
    p.add_argument("--lengths", default="4096", help="target lengths in tokens, e.g. 4096,8192")
    p.add_argument("--samples", type=int, default=10, help="samples per task and length")
    p.add_argument("--tokenizer", default="byte", help="byte | tokenizer.model | tokenizer.json | checkpoint dir")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", required=True, help="run directory (data goes to OUT/data)")
    p.add_argument("--chat-template", default="base", help="chat template name or format string with {task_template}")
    p.add_argument("--task-file", action="append", default=[], help="extra task YAML or .py file (repeatable)")
    p.add_argument("--overwrite", action="store_true", help="regenerate files that disagree with the manifest")
    for name, env in OPTION_ENV.items():
        p.add_argument(f"--{name}", default=None, help=f"path (default: ${env})")
    return p.parse_args(argv)


def file_rng(seed: int, task: str, length: int) -> np.random.Generator:
    """The generator of one (task, length) file: independent of the other tasks and lengths."""
    return np.random.default_rng([seed, zlib.crc32(task.encode()), length])


def record(task: Task, index: int, sample, seed: int, length: int) -> dict:
    return {
        "index": index,
        "input": sample.input,
        "outputs": sample.outputs,
        "answer_prefix": sample.answer_prefix,
        "length": sample.length,
        "task": task.name,
        "max_new_tokens": task.tokens_to_generate,
        "seed": seed,
        "meta": {"target_length": length, **sample.meta},
    }


def check_run(manifest: dict, run: dict, overwrite: bool, path: Path) -> None:
    for key, value in run.items():
        if key in manifest and manifest[key] != value and not overwrite:
            raise UserError(
                f"{path}: {key} was {manifest[key]!r}, now {value!r}; use a new --out or pass --overwrite"
            )


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.samples < 1:
        raise UserError(f"--samples: {args.samples} must be at least 1")
    lengths = parse_lengths(args.lengths)
    registry = load_registry(extra=args.task_file)
    names = registry.names() if args.tasks.strip() == "all" else split_list(args.tasks)
    if not names:
        raise UserError("--tasks: give 'all' or at least one task name")
    tasks = [registry.get(n) for n in names]
    tokenizer = load_tokenizer(args.tokenizer)
    chat = resolve_chat_template(args.chat_template)
    options = {k: v for k in OPTION_ENV if (v := getattr(args, k) or os.environ.get(OPTION_ENV[k]))}

    data = Path(args.out) / "data"
    manifest_path = data / "manifest.json"
    manifest = read_json(manifest_path) if manifest_path.is_file() else {}
    run = {
        "manifest_version": MANIFEST_VERSION,
        "tokenizer": tokenizer.fingerprint if hasattr(tokenizer, "fingerprint") else str(args.tokenizer),
        "seed": args.seed,
        "chat_template": chat.name,
        "haystack": corpus_id(options.get("haystack")),
    }
    check_run(manifest, run, args.overwrite, manifest_path)
    if args.overwrite and any(manifest.get(k) != v for k, v in run.items() if k in manifest):
        manifest = {}
    manifest.update(run)
    manifest.setdefault("tasks", {})

    runnable = []
    for task in tasks:
        missing = task.generator.data_missing(options)
        if missing:
            print(f"skipping {task.name}: {missing}")
            continue
        entry = manifest["tasks"].get(task.name)
        if entry and entry["version"] != task.version:
            if not args.overwrite:
                raise UserError(
                    f"{manifest_path}: task {task.name} was generated by version {entry['version']}, now {task.version}; "
                    f"use a new --out or pass --overwrite"
                )
            entry = None
        if entry is None:
            entry = manifest["tasks"][task.name] = {"files": {}}
        entry.update(version=task.version, generator=task.generator_name, args=task.args,
                     tokens_to_generate=task.tokens_to_generate, metric=task.metric)
        runnable.append(task)

    todo = []
    for task in runnable:
        files = manifest["tasks"][task.name]["files"]
        for length in lengths:
            path = data / task.name / f"{length}.jsonl"
            have = files.get(str(length), 0) if path.is_file() else 0
            if have < args.samples:
                todo.append((task, length, path, have))
    total = sum(args.samples - have for *_, have in todo)
    with tqdm(total=total, unit="sample", desc="prepare", disable=total == 0) as bar:
        for task, length, path, have in todo:
            bar.set_postfix_str(f"{task.name} @ {length}")
            ctx = Context(length, task.tokens_to_generate, tokenizer, chat, options)
            records = read_jsonl(path) if have else []
            for i, sample in enumerate(
                task.generator.iter_generate(ctx, file_rng(args.seed, task.name, length), args.samples - have, have)
            ):
                records.append(record(task, have + i, sample, args.seed, length))
                bar.update(1)
            atomic_write_jsonl(path, records)
            manifest["tasks"][task.name]["files"][str(length)] = len(records)
            atomic_write_json(manifest_path, manifest)
    atomic_write_json(manifest_path, manifest)
    print(f"{len(runnable)} task(s) x {len(lengths)} length(s) ready in {data}")
    return 0


if __name__ == "__main__":
    raise SystemExit(user_errors_exit_2(main)())
