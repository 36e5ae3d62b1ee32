"""`rattn-ruler SUBCOMMAND [ARGS...]`: the console script; each subcommand is one runner's CLI.

    rattn-ruler prepare --tasks all --lengths 4096 --out RUN     # = python -m runners.prepare ...
    rattn-ruler eval --checkpoint DIR --lengths 4096,8192        # = python -m runners.eval_ruler ...
    rattn-ruler SUBCOMMAND --help                                # that runner's options

A subcommand's module is imported only when it runs, so `rattn-ruler --help` needs no JAX.
"""

from __future__ import annotations

import importlib
import sys
from typing import Sequence

# subcommand -> (module whose main(argv) -> int runs it, one line for --help)
SUBCOMMANDS = {
    "prepare": ("runners.prepare", "generate RULER samples into RUN/data (no model)"),
    "eval": ("runners.eval_ruler", "evaluate a checkpoint on RULER at several lengths"),
    "report": ("runners.report", "tables, plots and HTML from run directories"),
    "convert": ("model_adapters.convert.__main__", "convert an axlearn or Hugging Face checkpoint"),
    "train": ("runners.train", "train a preset model (the demo recipe)"),
    "generate": ("runners.generate", "greedy continuation of one prompt"),
    "init": ("runners.init", "a randomly initialized checkpoint of a preset"),
}


def usage() -> str:
    width = max(map(len, SUBCOMMANDS))
    text_width = max(len(text) for _, text in SUBCOMMANDS.values())
    lines = ["usage: rattn-ruler SUBCOMMAND [ARGS...]   (rattn-ruler SUBCOMMAND --help: its options)", "",
             "subcommands:"]
    lines += [f"  {name.ljust(width)}  {text.ljust(text_width)}  python -m {module.removesuffix('.__main__')}"
              for name, (module, text) in SUBCOMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs SUBCOMMAND's main with the rest of argv (None: sys.argv[1:]) and returns its exit status;
    --help prints the subcommands (exit 0); none, or an unknown one, is one line on stderr (exit 2)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["-h"], ["--help"]):
        print(usage())
        return 0
    if not argv:
        print(f"rattn-ruler: give a subcommand: {', '.join(SUBCOMMANDS)} (rattn-ruler --help)", file=sys.stderr)
        return 2
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"rattn-ruler: unknown subcommand {name!r}; choose from {', '.join(SUBCOMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[name][0])
    return module.main(rest)


if __name__ == "__main__":
    raise SystemExit(main())
