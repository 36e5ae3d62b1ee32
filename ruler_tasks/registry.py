"""The task registry: YAML entries naming a generator and its arguments, like RULER's synthetic.yaml.

    from ruler_tasks.registry import load_registry
    reg = load_registry(extra=())   # tasks.yaml, then files in $RULER_TASKS (os.pathsep-separated), then extra
    reg.names()                     # the 13 defaults in RULER's order, then user tasks in load order
    task = reg.get("niah_single_1") # Task: name, version, metric, tokens_to_generate, needs_data, generator

A YAML file maps task names to entries:

    my_task:
      include: niah_single_2         # optional (or `base:`): start from another entry, then override
      generator: niah                # a registered generator name
      args: {num_needle_v: 2}        # merged over the included entry's args
      tokens_to_generate: 128        # optional; default: the generator class's
      metric: string_match_all       # optional; default: the generator class's
      version: 1                     # optional; bump when a change alters scores

A `.py` file is executed as a module: it registers generator classes with `@register_generator(name)`
and may define `TASKS = {name: entry, ...}` in the YAML form. Duplicate task names are an error.
A task's `version` joins the entry's version, the generator's version and a hash of its arguments,
so editing any of them is detected by the prepare runner's manifest.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from ruler_tasks.base import TaskGenerator
from common.errors import UserError
from ruler_tasks.metrics import METRICS

DEFAULT_TASKS_FILE = Path(__file__).parent / "tasks.yaml"
ENV_VAR = "RULER_TASKS"

# Built-in generators by name -> the module that registers them, imported on first use (so a missing
# optional module, e.g. QA during development, breaks only the tasks that use it).
_BUILTIN_MODULES = {
    "niah": "ruler_tasks.niah",
    "variable_tracking": "ruler_tasks.variable_tracking",
    "common_words_extraction": "ruler_tasks.common_words",
    "freq_words_extraction": "ruler_tasks.freq_words",
    "qa": "ruler_tasks.qa",
}
_GENERATORS: dict[str, type[TaskGenerator]] = {}
_ENTRY_KEYS = {"include", "base", "generator", "args", "tokens_to_generate", "metric", "version"}


def register_generator(name: str):
    """Class decorator: registers a TaskGenerator subclass under `name`. Another class under the same
    name is an error; the same class again (its file loaded twice) replaces the old one."""

    def deco(cls: type[TaskGenerator]) -> type[TaskGenerator]:
        if not (isinstance(cls, type) and issubclass(cls, TaskGenerator)):
            raise TypeError(f"@register_generator({name!r}) needs a TaskGenerator subclass, got {cls!r}")
        prev = _GENERATORS.get(name, cls)
        if (prev.__module__, prev.__qualname__) != (cls.__module__, cls.__qualname__):
            raise UserError(f"generator {name!r} is registered twice ({_GENERATORS[name].__module__} and {cls.__module__}); rename one")
        _GENERATORS[name] = cls
        return cls

    return deco


def generator_class(name: str, where: str) -> type[TaskGenerator]:
    if name not in _GENERATORS and name in _BUILTIN_MODULES:
        try:
            importlib.import_module(_BUILTIN_MODULES[name])
        except ModuleNotFoundError as e:
            if e.name != _BUILTIN_MODULES[name]:
                raise
            raise UserError(f"{where}: generator {name!r} is not available in this install ({e.name} is missing)") from None
    if name not in _GENERATORS:
        known = sorted(set(_GENERATORS) | set(_BUILTIN_MODULES))
        raise UserError(f"{where}: unknown generator {name!r}{_did_you_mean(name, known)}; known: {', '.join(known)}")
    return _GENERATORS[name]


def _did_you_mean(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


@dataclass(frozen=True)
class Task:
    name: str
    version: str
    metric: str
    tokens_to_generate: int
    needs_data: bool
    generator: TaskGenerator
    generator_name: str
    args: Mapping[str, Any]
    source: str


class Registry:
    """Resolved entries by name; a task's generator is built (and its module imported) on first `get`."""

    def __init__(self, entries: Mapping[str, tuple[dict, str]]):
        self._entries = dict(entries)
        self._tasks: dict[str, Task] = {}

    def names(self) -> list[str]:
        return list(self._entries)

    def get(self, name: str) -> Task:
        if name not in self._entries:
            hint = _did_you_mean(name, self._entries)
            raise UserError(f"unknown task {name!r}{hint or '; known: ' + ', '.join(self._entries)}")
        if name not in self._tasks:
            entry, source = self._entries[name]
            self._tasks[name] = _build(name, entry, source)
        return self._tasks[name]

    def __contains__(self, name: str) -> bool:
        return name in self._entries


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"task file {path}: not found; fix {ENV_VAR} or the path given") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise UserError(f"{where}: bad YAML ({getattr(e, 'problem', None) or e}); fix the file") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of task names to entries, got {type(data).__name__}")
    return data


def _load_py(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"task file {path}: not found; fix {ENV_VAR} or the path given")
    name = "ruler_user_tasks_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    tasks = getattr(module, "TASKS", {})
    if not isinstance(tasks, dict):
        raise UserError(f"{path}: TASKS must be a dict of task names to entries")
    return tasks


def _resolve(name: str, entries: Mapping[str, tuple[dict, str]], stack: tuple[str, ...] = ()) -> dict:
    """An entry with its include chain merged in (args merged key by key)."""
    entry, source = entries[name]
    where = f"{source}: task {name!r}"
    if not isinstance(entry, dict):
        raise UserError(f"{where}: expected a mapping with 'generator' and 'args'")
    unknown = set(entry) - _ENTRY_KEYS
    if unknown:
        raise UserError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_ENTRY_KEYS)}")
    parent_name = entry.get("include", entry.get("base"))
    merged: dict = {}
    if parent_name is not None:
        if parent_name in stack or parent_name == name:
            raise UserError(f"{where}: include cycle through {parent_name!r}")
        if parent_name not in entries:
            raise UserError(f"{where}: includes unknown task {parent_name!r}{_did_you_mean(str(parent_name), entries)}")
        merged = _resolve(parent_name, entries, stack + (name,))
    args = dict(merged.get("args") or {})
    if entry.get("args") is not None and not isinstance(entry["args"], dict):
        raise UserError(f"{where}: args must be a mapping")
    args.update(entry.get("args") or {})
    merged = {**merged, **{k: v for k, v in entry.items() if k not in ("include", "base")}, "args": args}
    return merged


def _build(name: str, entry: dict, source: str) -> Task:
    where = f"{source}: task {name!r}"
    if "generator" not in entry:
        raise UserError(f"{where}: missing 'generator' (e.g. generator: niah)")
    gen_name = str(entry["generator"])
    cls = generator_class(gen_name, where)
    args = entry["args"]
    try:
        generator = cls(**args)
    except TypeError as e:
        raise UserError(f"{where}: bad args for generator {gen_name!r} ({e})") from None
    metric = entry.get("metric", cls.metric)
    if metric not in METRICS:
        raise UserError(f"{where}: unknown metric {metric!r}; use one of {sorted(METRICS)}")
    ttg = entry.get("tokens_to_generate", cls.tokens_to_generate)
    if not isinstance(ttg, int) or isinstance(ttg, bool) or ttg <= 0:
        raise UserError(f"{where}: tokens_to_generate must be a positive integer, got {ttg!r}")
    args_hash = hashlib.sha256(json.dumps([gen_name, args, metric, ttg], sort_keys=True, default=str).encode()).hexdigest()[:8]
    version = f"{entry.get('version', 1)}-{gen_name}.{cls.version}-{args_hash}"
    return Task(name, version, metric, ttg, cls.needs_data, generator, gen_name, dict(args), source)


def load_registry(extra: Iterable[str | os.PathLike] = ()) -> Registry:
    """tasks.yaml + the files in $RULER_TASKS + `extra` (YAML files or .py files)."""
    paths = [DEFAULT_TASKS_FILE]
    paths += [Path(p) for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
    paths += [Path(p) for p in extra]
    entries: dict[str, tuple[dict, str]] = {}
    for path in paths:
        raw = _load_py(path) if path.suffix == ".py" else _read_yaml(path)
        for name, entry in raw.items():
            if name in entries:
                raise UserError(f"{path}: task {name!r} is already defined in {entries[name][1]}; rename one")
            entries[str(name)] = (entry, str(path))
    return Registry({name: (_resolve(name, entries), source) for name, (_, source) in entries.items()})
