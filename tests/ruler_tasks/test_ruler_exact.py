"""RULER exactness at the pinned revision (ruler_tasks.RULER_REVISION): one test per difference that
issue 15 found, each asserting RULER's exact string or distribution. The expected strings are copied
from NVIDIA/RULER at that revision (scripts/data/synthetic/constants.py, scripts/data/template.py,
scripts/data/synthetic/*.py)."""

import itertools
import random
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from common.errors import UserError
from ruler_tasks import RULER_REVISION, common_words
from ruler_tasks.base import Context
from ruler_tasks.chat_templates import CHAT_TEMPLATES, resolve_chat_template
from ruler_tasks.qa import ruler_shuffle
from ruler_tasks.registry import load_registry
from ruler_tasks.templates import CWE_ANSWER_PREFIX, VT_ANSWER_PREFIX
from ruler_tasks.variable_tracking import chain_layout

REGISTRY = load_registry()
ROOT = Path(__file__).resolve().parents[2]

# scripts/data/template.py at RULER_REVISION, every entry.
RULER_CHAT_TEMPLATES = {
    "base": "{task_template}",
    "meta-chat": "[INST] {task_template} [/INST]",
    "vicuna-chat": "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the user's questions. USER: {task_template} ASSISTANT:",
    "lwm-chat": "You are a helpful assistant. USER: {task_template} ASSISTANT: ",
    "command-r-chat": "<BOS_TOKEN><|START_OF_TURN_TOKEN|><|USER_TOKEN|>{task_template}<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>",
    "chatglm-chat": "[gMASK]sop<|user|> \n {task_template}<|assistant|> \n ",
    "RWKV": "User: hi\n\nAssistant: Hi. I am your assistant and I will provide expert full response in full details. Please feel free to ask any question and I will always answer it\n\nUser: {task_template}\n\nAssistant:",
    "Phi3": "<|user|>\n{task_template}<|end|>\n<|assistant|>\n",
    "meta-llama3": "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n{task_template}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    "jamba": "<|startoftext|><|bom|><|system|> <|eom|><|bom|><|user|> {task_template}<|eom|><|bom|><|assistant|>",
    "nemotron5-instruct": "<SPECIAL_10>System\n\n<SPECIAL_11>User\n{task_template}\n<SPECIAL_11>Assistant\n",
}


class WordTokenizer:
    """One token per whitespace-separated word: the tokenizer under which wonderwords runs out."""

    def encode(self, text):
        return text.split()


def generate(task_name, tokenizer, length, seed=0, count=2, chat="base", run_seed=42):
    task = REGISTRY.get(task_name)
    ctx = Context(length, task.tokens_to_generate, tokenizer, resolve_chat_template(chat), seed=run_seed)
    return task.generator.generate(ctx, np.random.default_rng(seed), count)


def test_revision_is_pinned_in_one_constant_and_named_in_notice_and_templates():
    assert re.fullmatch(r"[0-9a-f]{40}", RULER_REVISION) and RULER_REVISION.startswith("c3f5e3b")
    assert RULER_REVISION in (ROOT / "NOTICE").read_text(encoding="utf-8")
    assert RULER_REVISION in (ROOT / "ruler_tasks" / "templates.py").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(RULER_CHAT_TEMPLATES))
def test_every_ruler_chat_template_is_there_exactly(name):
    assert CHAT_TEMPLATES[name] == RULER_CHAT_TEMPLATES[name]


def test_vt_answer_prefix_says_assigned(tokenizers_by_name):
    assert VT_ANSWER_PREFIX == (
        " Answer: According to the chain(s) of variable assignment in the text above, {num_v} variables are "
        "assigned the value {query}, they are: "
    )
    (s,) = generate("vt", tokenizers_by_name["byte"], 4096, count=1)
    assert re.fullmatch(r" Answer: According to the chain\(s\) of variable assignment in the text above, 5 "
                        r"variables are assigned the value \d{5}, they are: ", s.answer_prefix)


def test_vt_hop_lines_end_with_a_space_and_example_is_two_newlines_before_the_task(tokenizers_by_name):
    for chat in ("base", "meta-chat"):
        (s,) = generate("vt", tokenizers_by_name["byte"], 4096, count=1, chat=chat)
        assert s.meta["setting"] == "ruler"
        before = resolve_chat_template(chat).before
        example, task = re.fullmatch(
            re.escape(before) + r"(Memorize .*they are:  [A-Z]{3}(?: [A-Z]{3}){4})\n\n(Memorize .*)", s.input, re.S
        ).groups()
        for text, letters in ((example, 3), (task, 5)):
            chain = [line for line in text.split("\n") if line.startswith("VAR ")]
            assert re.fullmatch(rf"VAR [A-Z]{{{letters}}} = \d{{5}}", chain[0])
            assert all(re.fullmatch(rf"VAR [A-Z]{{{letters}}} = VAR [A-Z]{{{letters}}} ", line) for line in chain[1:])
            assert len(chain) == 5


def test_vt_chain_lines_are_never_adjacent_and_follow_rulers_sampling(tokenizers_by_name):
    for s in generate("vt", tokenizers_by_name["bpe"], 2048, count=8):
        task = s.input.rsplit("following text.\n\n", 1)[1].split("\nQuestion:")[0].split("\n")
        is_var = [line.startswith("VAR ") for line in task]
        assert sum(is_var) == 5 and not is_var[-1]
        assert not any(a and b for a, b in zip(is_var, is_var[1:])), "RULER's positions are distinct"
    # One chain: its k lines precede k distinct noise lines, uniform over the k-subsets (random.sample).
    n, k, draws = 6, 3, 6000
    subsets = Counter(tuple(chain_layout([seed], [k], n)[0]) for seed in range(draws))
    assert set(subsets) == set(itertools.combinations(range(n), k))
    expected = draws / len(subsets)
    assert all(abs(c - expected) < 0.25 * expected for c in subsets.values())
    # Two chains: the second is placed among noise and the first chain's lines, never next to its own.
    positions, which = chain_layout([1, 2], [5, 5], 6)
    assert sorted(which) == [(c, j) for c in range(2) for j in range(5)]
    assert [j for c, j in which if c == 1] == list(range(5)) and max(positions) < 6


def test_cwe_example_answer_has_rulers_space_and_newline(tokenizers_by_name):
    (s,) = generate("cwe", tokenizers_by_name["byte"], 8192, count=1)
    assert s.meta["setting"] == "ruler"
    m = re.fullmatch(r"Below is .*?" + re.escape(CWE_ANSWER_PREFIX) + r" (1\. \S+(?: \d+\. \S+)*)\nBelow is .*",
                     s.input, re.S)
    assert m is not None
    assert [w.split(". ")[0] for w in re.findall(r"\d+\. \S+", m.group(1))] == [str(i) for i in range(1, 11)]


def test_cwe_example_is_wrapped_in_its_own_chat_template(tokenizers_by_name):
    (s,) = generate("cwe", tokenizers_by_name["byte"], 8192, count=1, chat="meta-chat")
    example, task = s.input.split("\n[INST] ", 1)
    assert example.startswith("[INST] Below is a numbered list of words.")
    assert re.search(r"\? \[/INST\]" + re.escape(CWE_ANSWER_PREFIX) + r" 1\. \S+ 2\. ", example)
    assert task.startswith("Below is a numbered list of words.") and task.endswith(" [/INST]")


def cwe_task_words(s) -> list[str]:
    """The task's numbered words, in order (the one-shot example's list is before the last "Below is")."""
    return re.findall(r"\d+\. (\S+)", s.input.rsplit("Below is a numbered list of words.", 1)[1].split("\nQuestion:")[0])


def test_cwe_order_is_rulers_fixed_shuffle_of_the_run_seed():
    """RULER shuffles each word list with random.Random(random_seed): at one length every sample puts its
    common words in the same slots (the words themselves are drawn per sample); the run's seed moves them.
    One token per word, so every sample has the same number of words."""
    samples = generate("cwe", WordTokenizer(), 8192, count=3)
    other_seed = generate("cwe", WordTokenizer(), 8192, count=1, run_seed=7)
    layouts = []
    for s, run_seed in [(s, 42) for s in samples] + [(other_seed[0], 7)]:
        words, common = cwe_task_words(s), s.outputs
        num_words, freq_cw, freq_ucw = s.meta["num_words"], s.meta["freq_cw"], s.meta["freq_ucw"]
        rare = set(words) - set(common)
        assert len(rare) == num_words - 10 and len(words) == 10 * freq_cw + len(rare) * freq_ucw
        # RULER's shuffle permutes item slots (common words first); slot i holds a common word iff the
        # seeded permutation sends it an item from the first 10 * freq_cw
        order = list(range(len(words)))
        random.Random(run_seed).shuffle(order)
        is_common = [w in common for w in words]
        assert [i < 10 * freq_cw for i in order] == is_common
        layouts.append((num_words, tuple(is_common)))
    assert len(set(layouts[:3])) == 1 and layouts[3][0] == layouts[0][0]
    assert layouts[3] != layouts[0], "another run seed, another fixed order"
    assert len({tuple(s.outputs) for s in samples}) == 3, "which words are common is drawn per sample"


def test_vt_example_is_drawn_once_per_run_and_renamed_and_revalued_per_sample(tokenizers_by_name):
    """RULER generates the one-shot example once (value 12345) and per sample replaces its names and value."""
    def example(s):
        return s.input.split("\n\nMemorize")[0]

    samples = generate("vt", tokenizers_by_name["bpe"], 4096, count=3)
    masked = {re.sub(r"\d{5}", "#", re.sub(r"\b[A-Z]{3}\b", "X", example(s).replace("VAR ", "V "))) for s in samples}
    assert len(masked) == 1, "one layout of noise and chain lines for the whole run"
    values = {re.search(r"VAR [A-Z]{3} = (\d{5})", example(s)).group(1) for s in samples}
    names = {tuple(example(s).rsplit("they are:  ", 1)[1].split()) for s in samples}
    assert len(values) == 3 and "12345" not in values and len(names) == 3
    (other,) = generate("vt", tokenizers_by_name["bpe"], 4096, count=1, run_seed=7)
    assert re.sub(r"\d{5}", "#", re.sub(r"\b[A-Z]{3}\b", "X", example(other).replace("VAR ", "V "))) not in masked


def test_cwe_switches_to_a_larger_word_list_when_wonderwords_runs_out():
    tok = WordTokenizer()
    (small,) = generate("cwe", tok, 32768, count=1)
    (large,) = generate("cwe", tok, 65536, count=1)
    (largest,) = generate("cwe", tok, 131072, count=1)
    assert small.meta["vocabulary"] == "wonderwords"
    assert large.meta["vocabulary"] == largest.meta["vocabulary"] == "english-words:web2"
    assert large.meta["num_words"] > len(common_words.vocabulary())
    assert largest.length >= 0.999 * 131072, "README: cwe still fills >= 99.9% at 128K"
    for s, length in ((small, 32768), (large, 65536), (largest, 131072)):
        assert 0.95 * length <= s.length <= length
        assert s.length == len(tok.encode(s.input + s.answer_prefix)) + 120


def test_cwe_refuses_a_sample_under_95_percent(monkeypatch):
    few = tuple(f"w{i}" for i in range(40))
    monkeypatch.setattr(common_words, "vocabulary", lambda name=common_words.SMALL_VOCABULARY: few)
    with pytest.raises(UserError, match=r"cwe at length 65536: a sample fills only \d+ of 65536 tokens"):
        generate("cwe", WordTokenizer(), 65536, count=1)


@pytest.mark.parametrize("length", [4096, 16384])
def test_fwe_vocabulary_size_is_rulers(tokenizers_by_name, length):
    (s,) = generate("fwe", tokenizers_by_name["byte"], length, count=1)
    assert s.meta["vocab_size"] == (length - 50) // 50


@pytest.mark.parametrize("chat,phrase", [
    ("lwm-chat", "You is a helpful assistant. USER: A special magic number is hidden"),
    ("vicuna-chat", "and polite answer to the user's questions. USER: A special magic number is hidden"),
])
def test_niah_singular_rewrite_covers_the_whole_template(tokenizers_by_name, chat, phrase):
    (s,) = generate("niah_single_1", tokenizers_by_name["byte"], 4096, count=1, chat=chat)
    assert phrase in s.input and s.answer_prefix.endswith(" is")
    (m,) = generate("niah_multivalue", tokenizers_by_name["byte"], 4096, count=1, chat=chat)
    assert RULER_CHAT_TEMPLATES[chat].split("{task_template}")[0] in m.input, "plural: untouched"


def test_qa_document_shuffle_is_rulers_fixed_permutation():
    for n in (1, 10, 25):
        order = list(range(n))
        random.Random(42).shuffle(order)
        assert ruler_shuffle(n).tolist() == order
    assert ruler_shuffle(10).tolist() == [7, 3, 2, 8, 5, 6, 9, 4, 0, 1]
