"""runners.bench_out and the bench runners: a result file git tracks is replaced only with --overwrite,
and the refusal comes before any benchmarking."""

import importlib
import shutil
import subprocess

import pytest

from common.cli import user_errors_exit_2
from common.errors import UserError
from runners.bench_out import result_path, tracked_by_git

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


@pytest.fixture
def repo(tmp_path):
    """A git checkout whose index holds results/tracked.json and results/kernels-cpu.json."""
    (tmp_path / "results").mkdir()
    for name in ("tracked.json", "kernels-cpu.json", "untracked.json"):
        (tmp_path / "results" / name).write_text('{"published": true}\n')
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(["git", "add", "results/tracked.json", "results/kernels-cpu.json"], cwd=tmp_path, check=True)
    return tmp_path


def test_tracked_files_need_overwrite(repo, tmp_path_factory):
    tracked = repo / "results" / "tracked.json"
    assert tracked_by_git(tracked) and not tracked_by_git(repo / "results" / "untracked.json")
    with pytest.raises(UserError, match="tracked by git .* --overwrite"):
        result_path(tracked, overwrite=False)
    assert result_path(tracked, overwrite=True) == tracked
    for free in (repo / "results" / "untracked.json", repo / "results" / "new.json", repo / "new-dir" / "a.json",
                 tmp_path_factory.mktemp("no-git") / "a.json"):
        assert result_path(free, overwrite=False) == free


@pytest.mark.parametrize("module,argv", [
    ("runners.bench_prepare", ["--out", "results/tracked.json"]),
    ("runners.bench_eval", ["--out", "results/tracked.json"]),
    ("runners.bench_decode", ["--small", "--out", "results/tracked.json"]),
    ("runners.bench_kernels", ["--out", "results"]),
])
def test_bench_runners_refuse_before_running(repo, monkeypatch, capsys, module, argv):
    monkeypatch.chdir(repo)
    with pytest.raises(SystemExit) as exit_info:
        user_errors_exit_2(importlib.import_module(module).main)(argv)
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1 and "BENCH_OVERWRITE=1" in err
    assert all(p.read_text() == '{"published": true}\n' for p in (repo / "results").iterdir())
