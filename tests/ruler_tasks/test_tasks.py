"""Every non-QA task: length fit, gold answers in the prompt, determinism, RULER's prompt strings."""

import re

import numpy as np
import pytest

from ruler_tasks.base import Context
from ruler_tasks.chat_templates import resolve_chat_template
from common.files import jsonl_line
from ruler_tasks.length_fit import count_tokens
from ruler_tasks.registry import load_registry
from ruler_tasks.haystacks import CUT_LINES_BELOW
from ruler_tasks.templates import NOISE_LINE

REGISTRY = load_registry()
SYNTHETIC = [n for n in REGISTRY.names() if not REGISTRY.get(n).needs_data]
CASES = (
    [("byte", L, t) for L in (1024, 4096, 16384) for t in SYNTHETIC]
    + [("bpe", L, t) for L in (1024, 4096) for t in SYNTHETIC]
    + [("byte", 131072, t) for t in ("niah_single_2", "niah_multikey_3", "vt", "cwe", "fwe")]
    + [("bpe", 32768, t) for t in ("niah_multiquery", "niah_multikey_2", "cwe")]
    + [(tok, 2048, t) for tok in ("byte", "bpe") for t in ("niah_single_1", "niah_multikey_3", "vt", "cwe")]
)


def generate(task_name, tokenizer, length, seed=0, count=2, chat="base"):
    task = REGISTRY.get(task_name)
    ctx = Context(length, task.tokens_to_generate, tokenizer, resolve_chat_template(chat))
    return task, task.generator.generate(ctx, np.random.default_rng(seed), count)


@pytest.mark.parametrize("tok,length,task_name", CASES, ids=[f"{t}-{k}-{L}" for k, L, t in CASES])
def test_fits_target_and_contains_gold(tokenizers_by_name, tok, length, task_name):
    tokenizer = tokenizers_by_name[tok]
    task, samples = generate(task_name, tokenizer, length)
    for s in samples:
        measured = count_tokens(tokenizer, s.input + s.answer_prefix) + task.tokens_to_generate
        assert s.length == measured, "recorded length must be the tokenized prompt + tokens_to_generate"
        assert 0.95 * length <= s.length <= length, f"fill {s.length / length:.3f}"
        assert s.outputs and all(o in s.input for o in s.outputs)
        assert s.answer_prefix and not s.input.endswith(s.answer_prefix)


@pytest.mark.parametrize("task_name", SYNTHETIC)
def test_same_seed_same_bytes_other_seed_differs(tokenizers_by_name, task_name):
    byte = tokenizers_by_name["byte"]
    lines = lambda seed: [jsonl_line(s.__dict__) for s in generate(task_name, byte, 4096, seed)[1]]  # noqa: E731
    first = lines(1)
    assert first == lines(1)
    assert first != lines(2)
    assert first[0] != first[1], "two samples of one file must differ"


def test_singular_template_and_answer_prefix(tokenizers_by_name):
    _, (s, _) = generate("niah_single_1", tokenizers_by_name["byte"], 4096)
    assert s.input.startswith("A special magic number is hidden within the following text.")
    assert s.answer_prefix.startswith(" The special magic number for ") and s.answer_prefix.endswith(" is")
    _, (m, _) = generate("niah_multivalue", tokenizers_by_name["byte"], 4096)
    assert m.input.startswith("Some special magic numbers are hidden") and m.answer_prefix.endswith(" are")


@pytest.mark.parametrize("task_name", ["niah_single_1", "niah_multikey_1", "niah_multikey_2"])
def test_needle_meta_points_at_needles(tokenizers_by_name, task_name):
    _, samples = generate(task_name, tokenizers_by_name["byte"], 8192)
    for s in samples:
        raw = s.input.encode()
        depths = s.meta["needle_depths"]
        assert all(0.0 <= d <= 1.0 for d in depths) and len(depths) == len(s.meta["needles"])
        for pos in s.meta["needle_token_positions"]:
            assert raw[pos:].startswith(b"One of the special magic numbers for "), "byte offsets are exact"


def test_multikey_answers_only_for_the_queried_key(tokenizers_by_name):
    _, samples = generate("niah_multikey_1", tokenizers_by_name["byte"], 4096)
    for s in samples:
        assert len(s.meta["needles"]) == 4 and len(s.outputs) == 1
        assert f"for {s.meta['queries'][0]} is: {s.outputs[0]}." in s.input


def test_chat_template_wraps_input_and_counts(tokenizers_by_name):
    task, (s, _) = generate("vt", tokenizers_by_name["byte"], 4096, chat="meta-chat")
    assert s.input.startswith("[INST] Memorize and track") and s.input.endswith(" [/INST]")
    assert s.input.count("Memorize and track the chain(s)") == 2, "one-shot example, then the task"
    assert s.answer_prefix.startswith(" Answer: According to the chain(s) of variable assignment")


def test_fwe_gold_are_ranks_two_to_four(tokenizers_by_name):
    _, (s,) = generate("fwe", tokenizers_by_name["byte"], 8192, count=1)
    words = s.input.split("coded words. ", 1)[1].split("\nQuestion:")[0].split(" ")
    ranked = sorted(set(words), key=lambda w: -words.count(w))
    assert ranked[0] == "..." and ranked[1:4] == s.outputs


def test_cwe_gold_are_the_ten_common_words(tokenizers_by_name):
    _, (s,) = generate("cwe", tokenizers_by_name["bpe"], 4096, count=1)
    body = s.input.rsplit("Memorize the ones that appear most often.\n", 1)[1].split("\nQuestion:")[0]
    words = [w for i, w in enumerate(body.split(" ")) if i % 2 == 1]
    counts = {w: words.count(w) for w in set(words)}
    assert len(set(s.outputs)) == 10 and set(s.outputs) <= set(counts)
    assert min(counts[w] for w in s.outputs) > max(c for w, c in counts.items() if w not in s.outputs)


@pytest.mark.parametrize("task_name", ["niah_single_1", "niah_multikey_3", "vt"])
@pytest.mark.parametrize("length", [1024, 4096])
def test_line_haystack_ends_on_whole_lines_and_cuts_only_below_4k(tokenizers_by_name, task_name, length):
    _, samples = generate(task_name, tokenizers_by_name["byte"], length, count=3)
    for s in samples:
        lines = s.input.split("\n")[1:-1]  # the context, between the task's first and last line
        if task_name == "vt":
            lines = s.input.rsplit("following text.\n\n", 1)[1].split("\n")[:-1]
            hay = [line for line in lines if not line.startswith("VAR ")]
            assert len(lines) - len(hay) == 5
        else:
            hay = [line for line in lines if line not in s.meta["needles"]]
            assert len(lines) - len(hay) == len(s.meta["needles"]), "every needle is whole, on its own line"
        assert lines[-1] in hay, "nothing follows the last haystack line"
        whole = hay if s.meta["cut_lines"] else hay + [None]  # whole[:-1]: the lines that must be whole
        if task_name in ("niah_single_1", "vt"):
            assert all(line == NOISE_LINE for line in whole[:-1])
            assert NOISE_LINE.startswith(hay[-1]) and hay[-1].endswith("."), "a cut line ends after a sentence"
        else:
            assert all(re.fullmatch(r"One of the special magic uuids for [-0-9a-f]{36} is: [-0-9a-f]{36}\.", line)
                       for line in whole[:-1])
        if length >= CUT_LINES_BELOW:
            assert s.meta["cut_lines"] is False, "whole lines only, as RULER's, at 4K and above"
    if length < CUT_LINES_BELOW and task_name == "niah_multikey_3":
        assert all(s.meta["cut_lines"] for s in samples), "120-byte UUID lines cannot fill 1K to 95% whole"


@pytest.mark.parametrize("tok,length,setting", [("byte", 1024, "no_example"), ("byte", 2048, "ruler_small"),
                                                ("byte", 8192, "ruler")], ids=["byte-1024", "byte-2048", "byte-8192"])
def test_cwe_falls_back_to_smaller_settings_that_fit(tokenizers_by_name, tok, length, setting):
    _, samples = generate("cwe", tokenizers_by_name[tok], length, count=2)
    for s in samples:
        assert s.meta["setting"] == setting
        examples = s.input.count("Question: What are the 10 most common words")
        assert examples == (1 if setting == "no_example" else 2), "the one-shot example is dropped only when needed"
