"""Generate RULER samples (no model): RUN/data/<task>/<length>.jsonl plus RUN/data/manifest.json.

    python -m runners.prepare --tasks all --lengths 4096,8192 --samples 10 --tokenizer byte --seed 42 --out RUN
    python -m runners.prepare --tasks list [--task-file F]    # print the task registry and exit

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
from typing import Sequence

import numpy as np
from tqdm import tqdm

from model_adapters.tokenizers import load_tokenizer
from ruler_tasks.base import Context
from ruler_tasks import RULER_REVISION
from ruler_tasks.chat_templates import resolve_chat_template
from ruler_tasks.corpus import corpus_id
from common.errors import UserError
from common.files import atomic_write_json, atomic_write_jsonl, read_json, read_jsonl
from ruler_tasks.length_fit import LengthTooSmall
from ruler_tasks.registry import Task, load_registry
from ruler_tasks.words import word_list_versions
from common.cli import parse_lengths, split_list, user_errors_exit_2

MANIFEST_VERSION = 1
# Run-time data options: flag name -> environment variable used when the flag is absent.
OPTION_ENV = {"haystack": "RULER_HAYSTACK", "squad": "RULER_SQUAD", "hotpotqa": "RULER_HOTPOTQA"}
TASKS_HELP = "'all' or task names, commas or spaces; 'list' prints the task registry and exits"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m runners.prepare", description=__doc__.splitlines()[0])
    p.add_argument("--tasks", default="all", help=TASKS_HELP)
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


OVERWRITE_HINT = "use a new --out or pass --overwrite"


def check_run(manifest: dict, run: dict, overwrite: bool, path: Path, hint: str = OVERWRITE_HINT) -> None:
    for key, value in run.items():
        if key in manifest and manifest[key] != value and not overwrite:
            raise UserError(f"{path}: {key} was {manifest[key]!r}, now {value!r}; {hint}")


def select_tasks(tasks: str | Sequence[str], task_files: Sequence[str] = ()) -> list[Task]:
    """The registry's tasks named by `tasks` ("all", names with commas or spaces, or a list); an unknown
    name is a UserError ("did you mean")."""
    registry = load_registry(extra=task_files)
    names = split_list(tasks) if isinstance(tasks, str) else list(tasks)
    if names == ["all"]:
        names = registry.names()
    if not names:
        raise UserError("--tasks: give 'all' or at least one task name")
    return [registry.get(n) for n in names]


def task_table(task_files: Sequence[str] = ()) -> str:
    """The registry's tasks (tasks.yaml, $RULER_TASKS, then `task_files`) as a text table, one line per
    task: name, version, needs_data (yes: it reads a data file, e.g. QA's), metric, generator and args."""
    registry = load_registry(extra=task_files)
    rows = [("task", "version", "needs_data", "metric", "generator and args")]
    for task in map(registry.get, registry.names()):
        args = " ".join(f"{k}={v}" for k, v in task.args.items())
        rows.append((task.name, task.version, "yes" if task.needs_data else "no", task.metric,
                     f"{task.generator_name} {args}".rstrip()))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join([*(cell.ljust(w) for cell, w in zip(row, widths)), row[-1]]) for row in rows)


def list_tasks_if_asked(argv: Sequence[str] | None) -> bool:
    """Prints `task_table` and returns True when argv (None: sys.argv[1:]) has `--tasks list`; every
    other argument is ignored except --task-file, so a CLI answers before checking its required ones."""
    p = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    p.add_argument("--tasks")
    p.add_argument("--task-file", action="append", default=[])
    try:
        known, _ = p.parse_known_args(argv)
    except argparse.ArgumentError:  # e.g. --tasks without a value: the CLI's own parser reports it
        return False
    if known.tasks != "list":
        return False
    print(task_table(known.task_file))
    return True


def prepare_data(
    *,
    tasks: str | Sequence[str],
    lengths: Sequence[int],
    samples: int,
    tokenizer,
    tokenizer_spec: str,
    seed: int,
    out: str | Path,
    chat_template: str = "base",
    task_files: Sequence[str] = (),
    options: dict | None = None,
    overwrite: bool = False,
    progress: bool = True,
    refusal_hint: str = OVERWRITE_HINT,
) -> list[Task]:
    """Makes OUT/data/<task>/<length>.jsonl hold at least `samples` samples for every task and length;
    returns the tasks that can run (a task whose data is missing is skipped with one printed line).

    tasks: "all" or task names (a string with commas or spaces, or a list). tokenizer_spec: what the
    manifest records when the tokenizer has no fingerprint. options: haystack / squad / hotpotqa paths.
    refusal_hint: the fix a refusal names (the calling CLI's own options).
    """
    if samples < 1:
        raise UserError(f"--samples: {samples} must be at least 1")
    options = dict(options or {})
    selected = select_tasks(tasks, task_files)
    chat = resolve_chat_template(chat_template)

    data = Path(out) / "data"
    manifest_path = data / "manifest.json"
    manifest = read_json(manifest_path) if manifest_path.is_file() else {}
    run = {
        "manifest_version": MANIFEST_VERSION,
        "tokenizer": getattr(tokenizer, "fingerprint", tokenizer_spec),
        "seed": seed,
        "chat_template": chat.name,
        "haystack": corpus_id(options.get("haystack")),
        "ruler_revision": RULER_REVISION,
        "word_lists": word_list_versions(),
    }
    check_run(manifest, run, overwrite, manifest_path, refusal_hint)
    if overwrite and any(manifest.get(k) != v for k, v in run.items() if k in manifest):
        manifest = {}
    manifest.update(run)
    manifest.setdefault("tasks", {})

    runnable = []
    for task in selected:
        missing = task.generator.data_missing(options)
        if missing:
            print(f"skipping {task.name}: {missing}")
            continue
        entry = manifest["tasks"].get(task.name)
        data_id = task.generator.data_id(options)
        for key, now, what in (("version", task.version, "version"), ("data", data_id, "data file")):
            if entry and entry.get(key) != now:
                if not overwrite:
                    raise UserError(
                        f"{manifest_path}: task {task.name} was generated with {what} {entry.get(key)}, now {now}; "
                        f"{refusal_hint}"
                    )
                entry = None
        if entry is None:
            entry = manifest["tasks"][task.name] = {"files": {}}
        entry.update(version=task.version, data=data_id, generator=task.generator_name, args=task.args,
                     tokens_to_generate=task.tokens_to_generate, metric=task.metric)
        runnable.append(task)

    todo = []
    for task in runnable:
        files = manifest["tasks"][task.name]["files"]
        for length in lengths:
            path = data / task.name / f"{length}.jsonl"
            have = files.get(str(length), 0) if path.is_file() else 0
            if have < samples:
                todo.append((task, length, path, have))
    total = sum(samples - have for *_, have in todo)
    with tqdm(total=total, unit="sample", desc="prepare", disable=total == 0 or not progress) as bar:
        for task, length, path, have in todo:
            bar.set_postfix_str(f"{task.name} @ {length}")
            ctx = Context(length, task.tokens_to_generate, tokenizer, chat, options, seed=seed)
            records = read_jsonl(path) if have else []
            try:
                for i, sample in enumerate(
                    task.generator.iter_generate(ctx, file_rng(seed, task.name, length), samples - have, have)
                ):
                    records.append(record(task, have + i, sample, seed, length))
                    bar.update(1)
            except LengthTooSmall as e:
                raise UserError(
                    f"{task.name} at length {length}: too short; the task needs at least "
                    f"{e.need + task.tokens_to_generate} tokens with this tokenizer and chat template ({e.need} of "
                    f"prompt + {task.tokens_to_generate} to generate): drop {length} from --lengths"
                ) from None
            atomic_write_jsonl(path, records)
            manifest["tasks"][task.name]["files"][str(length)] = len(records)
            atomic_write_json(manifest_path, manifest)
    atomic_write_json(manifest_path, manifest)
    return runnable


@user_errors_exit_2
def main(argv=None) -> int:
    if list_tasks_if_asked(argv):
        return 0
    args = parse_args(argv)
    lengths = parse_lengths(args.lengths)
    tasks = prepare_data(
        tasks=args.tasks, lengths=lengths, samples=args.samples, tokenizer=load_tokenizer(args.tokenizer),
        tokenizer_spec=str(args.tokenizer), seed=args.seed, out=args.out, chat_template=args.chat_template,
        task_files=args.task_file, overwrite=args.overwrite,
        options={k: v for k in OPTION_ENV if (v := getattr(args, k) or os.environ.get(OPTION_ENV[k]))},
    )
    print(f"{len(tasks)} task(s) x {len(lengths)} length(s) ready in {Path(args.out) / 'data'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
