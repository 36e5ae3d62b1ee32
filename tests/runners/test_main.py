"""runners.main, the rattn-ruler console script: --help, one-line errors, and each subcommand reaching
its runner's main with the rest of argv (in process), plus the installed script (a subprocess)."""

import json
import subprocess
import sysconfig
from pathlib import Path

import pytest

from runners.main import SUBCOMMANDS, main
from runners.prepare import main as prepare_main

ROOT = Path(__file__).resolve().parents[2]


def test_help_lists_every_subcommand(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert set(SUBCOMMANDS) == {"prepare", "eval", "report", "convert", "train", "generate", "init"}
    listed = [line.split()[0] for line in out.splitlines() if line.startswith("  ")]
    assert listed == list(SUBCOMMANDS)


@pytest.mark.parametrize("argv,needle", [(["bogus"], "unknown subcommand 'bogus'"), ([], "give a subcommand")],
                         ids=["unknown", "none"])
def test_unknown_or_missing_subcommand_is_one_line_exit_2(capsys, argv, needle):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.splitlines()) == 1 and needle in captured.err


@pytest.mark.parametrize("name,option", [
    ("prepare", "--task-file"), ("eval", "--prefill-chunk"), ("report", "--threshold"), ("convert", "axlearn"),
    ("train", "--recall-steps"), ("generate", "--max-new-tokens"), ("init", "--preset"),
])
def test_each_subcommand_is_its_runner(capsys, name, option):
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0 and option in capsys.readouterr().out


def test_arguments_and_exit_status_pass_through(tmp_path, capsys):
    assert main(["prepare", "--tasks", "list"]) == 0
    listed = capsys.readouterr().out
    assert prepare_main(["--tasks", "list"]) == 0 and capsys.readouterr().out == listed
    with pytest.raises(SystemExit) as exit_info:
        main(["prepare", "--out", str(tmp_path / "run"), "--tasks", "niah_singel_1"])
    assert exit_info.value.code == 2 and "did you mean 'niah_single_1'" in capsys.readouterr().err

    assert main(["init", "--preset", "tiny-full", "--out", str(tmp_path / "ckpt"), "--seed", "1"]) == 0
    assert json.loads((tmp_path / "ckpt" / "config.json").read_text())["layer_pattern"] == ["global"]
    assert (tmp_path / "ckpt" / "manifest.json").is_file()


def test_installed_console_script():
    script = Path(sysconfig.get_path("scripts")) / "rattn-ruler"
    assert script.is_file(), f"{script} missing: install the project (make setup, or pip install -e .)"
    proc = subprocess.run([str(script), "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "python -m runners.eval_ruler" in proc.stdout
    proc = subprocess.run([str(script), "evaluate"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "unknown subcommand 'evaluate'" in proc.stderr
