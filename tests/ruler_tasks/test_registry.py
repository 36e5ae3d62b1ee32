"""The registry: RULER's 13 defaults, include, user YAML and .py tasks, and its one-line errors."""

import textwrap
from pathlib import Path

import pytest

from common.errors import UserError
from ruler_tasks.registry import load_registry

RULER_ORDER = [
    "niah_single_1", "niah_single_2", "niah_single_3", "niah_multikey_1", "niah_multikey_2", "niah_multikey_3",
    "niah_multivalue", "niah_multiquery", "vt", "cwe", "fwe", "qa_1", "qa_2",
]
EXAMPLE_PY = Path(__file__).parent / "example_user_task.py"


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_defaults_in_ruler_order_with_ruler_settings():
    reg = load_registry()
    assert reg.names() == RULER_ORDER
    expected = {"niah_single_1": (128, "string_match_all"), "vt": (30, "string_match_all"),
                "cwe": (120, "string_match_all"), "fwe": (50, "string_match_all")}
    for name, (ttg, metric) in expected.items():
        task = reg.get(name)
        assert (task.tokens_to_generate, task.metric, task.needs_data) == (ttg, metric, False)
    mk3 = reg.get("niah_multikey_3")
    assert mk3.args == {"type_haystack": "needle", "type_needle_k": "uuids", "type_needle_v": "uuids",
                        "num_needle_k": 1, "num_needle_v": 1, "num_needle_q": 1}


def test_unknown_task_suggests_the_closest():
    with pytest.raises(UserError, match=r"unknown task 'niah_singel_1'; did you mean 'niah_single_1'\?"):
        load_registry().get("niah_singel_1")


def test_yaml_variant_in_three_lines_via_env(tmp_path, monkeypatch):
    path = write(tmp_path, "mine.yaml", """
        niah_words:
          include: niah_single_2
          args: {type_needle_v: words}
    """)
    monkeypatch.setenv("RULER_TASKS", str(path))
    reg = load_registry()
    assert reg.names() == RULER_ORDER + ["niah_words"]
    task = reg.get("niah_words")
    assert task.args["type_needle_v"] == "words" and task.args["type_haystack"] == "essay"
    assert task.version != reg.get("niah_single_2").version, "other args, other version"


def test_python_file_registers_generator_and_task():
    reg = load_registry(extra=[EXAMPLE_PY])
    task = reg.get("secret_word")
    assert (task.generator_name, task.tokens_to_generate, task.args) == ("secret_word", 16, {"repeats": 2})
    assert load_registry(extra=[EXAMPLE_PY]).get("secret_word").version == task.version, "reloading is allowed"


@pytest.mark.parametrize(
    "text,message",
    [
        ("niah_single_1:\n  generator: niah\n", r"already defined"),
        ("t:\n  generator: nah\n", r"unknown generator 'nah'; did you mean 'niah'\?"),
        ("t:\n  generator: niah\n  args: {num_needle_q: 0}\n", r"num_needle_q: must be a positive integer"),
        ("t:\n  generator: niah\n  args: {colour: red}\n", r"bad args for generator 'niah'"),
        ("t:\n  include: nope\n", r"includes unknown task 'nope'"),
        ("t:\n  generator: niah\n  metric: exact\n", r"unknown metric 'exact'"),
        ("t:\n  generator: niah\n  tokens: 3\n", r"unknown key\(s\) \['tokens'\]"),
        ("t: [unclosed\n", r"bad YAML"),
    ],
    ids=["duplicate", "unknown-generator", "bad-arg-value", "unknown-arg", "bad-include", "bad-metric",
         "unknown-key", "bad-yaml"],
)
def test_bad_task_files_are_one_line_user_errors(tmp_path, text, message):
    path = write(tmp_path, "bad.yaml", text)
    with pytest.raises(UserError, match=message) as info:
        reg = load_registry(extra=[path])
        [reg.get(n) for n in reg.names() if n == "t"]
    assert "\n" not in str(info.value)
