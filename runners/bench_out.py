"""Where a benchmark writes its JSON: never over a file git tracks (the published bench/results/) unless
asked with --overwrite (make BENCH_OVERWRITE=1). The check runs before the benchmark, so a refusal
costs nothing; an untracked file, or one outside a git checkout, is simply replaced."""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

from common.errors import UserError


def add_overwrite_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the output even when git tracks it (the published results)")


def tracked_by_git(path: str | Path) -> bool:
    """True when `path` is in the index of the git checkout around it (False without git or a checkout)."""
    path = Path(path).absolute()
    try:
        out = subprocess.run(["git", "ls-files", "--error-unmatch", "--", path.name], cwd=path.parent,
                             capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):  # no git, or the folder does not exist yet
        return False
    return out.returncode == 0


def result_path(path: str | Path, overwrite: bool) -> Path:
    """`path`, once it is safe to write: a UserError when git tracks it and `overwrite` is False."""
    if not overwrite and tracked_by_git(path):
        raise UserError(f"{path}: tracked by git (published results); pass --overwrite "
                        f"(make BENCH_OVERWRITE=1) to replace it, or --out elsewhere")
    return Path(path)
