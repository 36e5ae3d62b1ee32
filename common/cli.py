"""What every runner's `main` shares: list-flag parsing and the UserError -> one line, exit 2 rule."""

from __future__ import annotations

import functools
import sys
from typing import Callable

from common.errors import UserError


def split_list(value: str) -> list[str]:
    """'a,b c' -> ['a', 'b', 'c']: lists on the command line accept commas, spaces or both."""
    return [part for part in value.replace(",", " ").split() if part]


def parse_lengths(value: str) -> list[int]:
    lengths = []
    for part in split_list(value):
        try:
            n = int(part)
        except ValueError:
            raise UserError(f"--lengths: {part!r} is not an integer token count (e.g. 4096,8192)") from None
        if n <= 0:
            raise UserError(f"--lengths: {n} must be a positive token count")
        lengths.append(n)
    if not lengths:
        raise UserError("--lengths: give at least one length, e.g. 4096,8192")
    return lengths


def user_errors_exit_2(main: Callable[..., int | None]) -> Callable[..., int]:
    """Runs `main`; a UserError prints its one line to stderr and exits 2 (bugs keep their traceback)."""

    @functools.wraps(main)
    def wrapped(*args, **kwargs):
        try:
            return main(*args, **kwargs) or 0
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print("interrupted; rerun the same command to resume", file=sys.stderr)
            sys.exit(130)

    return wrapped
