"""Disk full, read-only output and a RUN that is a file: one line, exit 2, nothing torn, and a rerun after
freeing space resumes. Real filesystems where a tmpfs can be mounted (skipped with the reason elsewhere),
and the same faults injected by monkeypatch everywhere.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import common.files
import evaluation.run_dir
from common.errors import UserError
from common.files import atomic_write_text
from evaluation.predictors import Prediction
from runners.eval_ruler import parse_args, run_eval
from tests.reliability.helpers import eval_args, one_line_exit_2, predictions, run_eval_cli

TASKS = "niah_single_1,vt"
SAMPLES = 6


class LongGold:
    """A model double whose answers are the gold strings padded to about 1 KB (fills a disk quickly)."""

    def __init__(self, model, tokenizer):
        pass

    def predict(self, samples):
        return [Prediction(" ".join(s["outputs"]) + " " + "x" * 1000, 10, 4, 0.1, 0.2) for s in samples]


def evaluate(ckpt: Path, run: Path):
    return run_eval(parse_args(eval_args(ckpt, run, tasks=TASKS, samples=SAMPLES)), make_predictor=LongGold,
                    progress=False)


@pytest.fixture(scope="module")
def reference(ckpt, tmp_path_factory):
    run = tmp_path_factory.mktemp("reference") / "run"
    evaluate(ckpt, run)
    return run


def assert_whole_lines(run: Path) -> None:
    for path in run.glob("pred/*/*.jsonl"):
        text = path.read_text()
        assert text == "" or text.endswith("\n"), f"{path}: torn"


def test_disk_full_on_a_real_tmpfs_then_resume(ckpt, reference, tmpfs):
    mount = tmpfs(1 << 20)
    run = mount / "run"
    shutil.copytree(reference / "data", run / "data")  # samples ready: the predictions are what fills the disk
    filler = mount / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)  # fill the tmpfs, then free four pages: .lock, run.json, lines
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as e:
        assert e.errno == errno.ENOSPC
    finally:
        os.close(fd)
    os.truncate(filler, max(filler.stat().st_size - 4 * 4096, 0))
    with pytest.raises(UserError, match="disk full") as e:
        evaluate(ckpt, run)
    assert "\n" not in str(e.value)
    assert_whole_lines(run)
    written = len(predictions(run))
    assert 0 < written < 2 * SAMPLES, "the disk filled up during the predictions"
    filler.unlink()
    evaluate(ckpt, run)
    assert predictions(run) == predictions(reference)


def test_read_only_run_directory_on_a_real_mount(ckpt, tmpfs):
    mount = tmpfs(1 << 20)
    proc = subprocess.run(["mount", "-o", "remount,ro", str(mount)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot remount read-only: {proc.stderr.strip()}")
    one_line_exit_2(run_eval_cli(eval_args(ckpt, mount / "run")), "read-only file system")


def test_run_that_is_a_file(ckpt, tmp_path):
    run = tmp_path / "run"
    run.write_text("not a directory\n")
    one_line_exit_2(run_eval_cli(eval_args(ckpt, run)), "exists and is not a directory")
    assert run.read_text() == "not a directory\n"


def test_disk_full_mid_line_is_cut_back_and_resumes(ckpt, reference, tmp_path, monkeypatch):
    """A write that fails halfway (ENOSPC after part of the line) leaves only whole lines, and the error
    is the disk-full line, not a second error from closing the file."""
    run = tmp_path / "run"
    calls = 0
    write_all = evaluation.run_dir.write_all

    def fails_on_third_line(fd, data):
        nonlocal calls
        calls += 1
        if calls == 3:
            write_all(fd, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        write_all(fd, data)

    monkeypatch.setattr(evaluation.run_dir, "write_all", fails_on_third_line)
    with pytest.raises(UserError, match="disk full; free space and rerun") as e:
        evaluate(ckpt, run)
    assert "\n" not in str(e.value)
    assert_whole_lines(run)
    assert len(predictions(run)) == 1, "the pid in .lock, one line, then the failed one"
    monkeypatch.undo()
    evaluate(ckpt, run)
    assert predictions(run) == predictions(reference)


@pytest.mark.parametrize("code, needle", [(errno.ENOSPC, "disk full"), (errno.EROFS, "read-only file system")],
                         ids=["ENOSPC", "EROFS"])
def test_atomic_write_failure_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch, code, needle):
    path = tmp_path / "summary.csv"
    path.write_text("old\n")

    def fail(fd, data):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(common.files, "write_all", fail)
    with pytest.raises(UserError, match=needle):
        atomic_write_text(path, "new\n")
    assert path.read_text() == "old\n" and os.listdir(tmp_path) == ["summary.csv"]
