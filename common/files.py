"""Atomic writes and line-checked reads of the project's text files (jsonl, json, csv).

Writers never leave a half-written file: they write a temporary file beside the target and rename it.
Appends are whole lines, flushed and fsynced, so a killed process leaves at most one torn last line,
which `read_jsonl(..., allow_torn_tail=True)` detects and drops.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

from common.errors import UserError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# errno -> the fix a user can apply when writing a file fails with it
_WRITE_FIXES = {
    errno.ENOSPC: "disk full; free space and rerun the same command (finished work is kept)",
    errno.EDQUOT: "disk quota exceeded; free space and rerun the same command (finished work is kept)",
    errno.EROFS: "read-only file system; choose a writable location",
    errno.EACCES: "permission denied; choose a writable location",
    errno.EPERM: "permission denied; choose a writable location",
    errno.ENOTDIR: "a parent path is a file, not a directory; choose another location",
    errno.EEXIST: "a parent path is a file, not a directory; choose another location",
    errno.EISDIR: "it is a directory; choose another file name",
}


def write_error(path: str | os.PathLike, error: OSError) -> UserError:
    """The one-line UserError for an OSError raised while writing `path` (disk full, read-only, ...)."""
    fix = _WRITE_FIXES.get(error.errno, f"{error.strerror or error}; fix the location and rerun")
    return UserError(f"{path}: cannot write: {fix}")


def write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is written (a short write is retried; an error raises OSError)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Writes `data` to `path` through a temporary file and a rename (never half-written).

    The file gets the permissions a plain open() would give (0666 less the umask), not mkstemp's 0600.
    A failed write (disk full, read-only, a parent that is a file) leaves the old file intact and no
    temporary file behind, and raises a one-line UserError.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise write_error(path, e) from None
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Writes UTF-8 `text` (newlines as-is) atomically; see atomic_write_bytes."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def fingerprint(path: str | os.PathLike) -> str:
    """sha256 (16 hex digits) of a file's bytes, or of a directory's files (relative names and bytes),
    so that data edited in place at the same path is detected."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    h = hashlib.sha256()
    for file in files:
        if path.is_dir():
            h.update(str(file.relative_to(path)).encode() + b"\0")
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def jsonl_line(record: dict) -> str:
    """One record as its canonical jsonl line (no trailing newline); stable bytes for equal records."""
    return json.dumps(record, ensure_ascii=False, separators=(", ", ": "))


def atomic_write_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> None:
    atomic_write_text(path, "".join(jsonl_line(r) + "\n" for r in records))


def append_jsonl(f, record: dict) -> None:
    """Appends one whole line to an open text file and makes it durable before returning."""
    f.write(jsonl_line(record) + "\n")
    f.flush()
    os.fsync(f.fileno())


def iter_jsonl(path: str | os.PathLike, *, allow_torn_tail: bool = False) -> Iterator[dict]:
    """Yields the records of a jsonl file; a malformed line is a UserError naming file and line.

    With `allow_torn_tail`, a last line without its newline (a write cut short by a kill) is skipped
    instead: the writer's resume logic redoes it.
    """
    path = Path(path)
    try:
        data = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); regenerate the file") from None
    lines = data.split("\n")
    torn = lines[-1] != ""
    for lineno, line in enumerate(lines, start=1):
        if lineno == len(lines) and (not torn or allow_torn_tail):
            return
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}:{lineno}: malformed JSON ({e.msg}); fix or delete that line") from None
        if not isinstance(record, dict):
            raise UserError(f"{path}:{lineno}: expected a JSON object per line, got {type(record).__name__}")
        yield record


def read_jsonl(path: str | os.PathLike, *, allow_torn_tail: bool = False) -> list[dict]:
    return list(iter_jsonl(path, allow_torn_tail=allow_torn_tail))


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{path}:{e.lineno}: malformed JSON ({e.msg}); fix or regenerate it") from None
