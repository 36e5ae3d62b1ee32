"""Common words extraction (RULER's common_words_extraction.py): find the 10 most repeated words.

The vocabulary is wonderwords' nouns, adjectives and verbs (~8.7K words). A sample takes `num_words`
distinct words: `num_cw` common ones repeated `freq_cw` times, the rest `freq_ucw` times, shuffled as
RULER does, by `random.Random(seed)` with the run's seed (so at one length every sample puts its common
words in the same slots; which words they are is drawn per sample), and numbered "1. w 2. w ...".
When a length needs more words than wonderwords has, the sample draws all its words from a larger
English word list instead, as RULER does (RULER ships its own list; here the `english-words` package's
web2 list, lowercase and alphabetic: ~234K words); meta `vocabulary` says which. A sample that still
fills under 95% of its length is refused (UserError), never written.
The one-shot example is, as RULER writes it, the whole prompt of a task (chat template and answer
prefix included), a space, its numbered answer "1. w 2. w ...", and a newline, before the task's own
chat template (version 4). Settings (`LADDER`), the first that fits is used:
1. RULER's at 4K and above: the configured counts, an example of 40 words (10 and 3 repeats);
2. RULER's below 4K: counts 6 and 1, an example of 20 words (3 and 1);
3. below what RULER generates (1K-2K, or a byte tokenizer, ~1 character a token where RULER's 4K
   threshold assumes ~4): counts 3 and 1 with an example of 12 words (2 and 1);
4. counts 2 and 1 with no example (at 1K a byte tokenizer has no room for one).
The common words still outnumber the others in every setting; meta records which one was used.
The length search is over `num_words`.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass

import numpy as np
from english_words import get_english_words_set

from ruler_tasks.base import Context, PromptFrame, Sample, TaskGenerator, require_fill
from common.errors import UserError
from ruler_tasks.length_fit import count_pieces, count_tokens, fit, prefix_sums
from ruler_tasks.registry import register_generator
from ruler_tasks.templates import CWE_ANSWER_PREFIX, CWE_TEMPLATE
from ruler_tasks.words import wonderwords_list

SMALL_LENGTH = 4096


@dataclass(frozen=True)
class Setting:
    """Repeats of common / other words in the task (None: the configured ones) and the one-shot
    example's (words, common repeats, other repeats), None for no example."""

    name: str
    task: tuple[int, int] | None
    example: tuple[int, int, int] | None


LADDER = (
    Setting("ruler", None, (40, 10, 3)),
    Setting("ruler_small", (6, 1), (20, 3, 1)),
    Setting("smaller", (3, 1), (12, 2, 1)),
    Setting("no_example", (2, 1), None),
)


SMALL_VOCABULARY = "wonderwords"
LARGE_VOCABULARY = "english-words:web2"


@functools.cache
def vocabulary(name: str = SMALL_VOCABULARY) -> tuple[str, ...]:
    """A sorted word list: wonderwords' nouns, adjectives and verbs, or the larger English list."""
    if name == SMALL_VOCABULARY:
        return tuple(sorted({w for kind in ("nouns", "adjectives", "verbs") for w in wonderwords_list(kind)}))
    if name == LARGE_VOCABULARY:
        return tuple(sorted(get_english_words_set(["web2"], lower=True, alpha=True)))
    raise ValueError(f"unknown vocabulary {name!r}")


@functools.lru_cache(maxsize=4)
def _word_counts(tokenizer, name: str) -> np.ndarray:
    """Tokens of each word of vocabulary(name) with a space in front, shape (len(vocabulary(name)),)."""
    return count_pieces(tokenizer, [" " + w for w in vocabulary(name)])


@functools.lru_cache(maxsize=8)
def _label_cum(tokenizer, n: int) -> np.ndarray:
    """cum[m] = tokens of the labels " 1." .. " m.", shape (n + 1,)."""
    return prefix_sums(count_pieces(tokenizer, [f" {i + 1}." for i in range(n)]))


def numbered(words: list[str]) -> str:
    return " ".join(f"{i + 1}. {w}" for i, w in enumerate(words))


@register_generator("common_words_extraction")
class CommonWords(TaskGenerator):
    version = "4"
    tokens_to_generate = 120
    metric = "string_match_all"

    def __init__(self, *, freq_cw: int = 30, freq_ucw: int = 3, num_cw: int = 10):
        for field, v in (("freq_cw", freq_cw), ("freq_ucw", freq_ucw), ("num_cw", num_cw)):
            if not isinstance(v, int) or v < 1:
                raise UserError(f"{field}: must be a positive integer, got {v!r}")
        self.freq_cw, self.freq_ucw, self.num_cw = freq_cw, freq_ucw, num_cw

    def _word_list(self, words: list[str], freq_cw: int, freq_ucw: int, seed: int) -> list[str]:
        """The first num_cw words freq_cw times each, the rest freq_ucw times, in RULER's order:
        random.Random(seed).shuffle, a permutation that depends only on the list's length and the seed."""
        items = words[: self.num_cw] * freq_cw + words[self.num_cw :] * freq_ucw
        random.Random(seed).shuffle(items)
        return items

    def sample(self, ctx: Context, rng: np.random.Generator) -> Sample:
        ladder = LADDER if ctx.length >= SMALL_LENGTH else LADDER[1:]
        for setting in ladder[:-1]:
            try:
                out = self._sample(ctx, rng, setting)
                break
            except UserError:
                pass  # too long for this length: the next, smaller setting
        else:
            out = self._sample(ctx, rng, ladder[-1])
        require_fill(f"cwe at length {ctx.length}", ctx, out.length)
        return out

    def _preamble(self, ctx: Context, rng: np.random.Generator, example: tuple[int, int, int] | None) -> str:
        """The one-shot example: a whole prompt with its answer, then a newline (empty for none)."""
        if example is None:
            return ""
        vocab = vocabulary()
        ex_words, ex_cw, ex_ucw = example
        ex = [vocab[i] for i in rng.choice(len(vocab), size=ex_words, replace=False)]
        ex_list = self._word_list(ex, ex_cw, ex_ucw, ctx.seed)
        ex_frame = PromptFrame.build(ctx, CWE_TEMPLATE, CWE_ANSWER_PREFIX)
        return ex_frame.prompt(numbered(ex_list)) + " " + numbered(ex[: self.num_cw]) + "\n"

    def _sample(self, ctx: Context, rng: np.random.Generator, setting: Setting) -> Sample:
        freq_cw, freq_ucw = setting.task or (self.freq_cw, self.freq_ucw)
        preamble = self._preamble(ctx, rng, setting.example)
        frame = PromptFrame.build(ctx, CWE_TEMPLATE, CWE_ANSWER_PREFIX, preamble=preamble)
        fitted, words = self._fit(ctx, rng, frame, freq_cw, freq_ucw, SMALL_VOCABULARY)
        name = SMALL_VOCABULARY
        if fitted.n == len(words):  # every wonderwords word fits: RULER switches to its larger list
            fitted, words = self._fit(ctx, rng, frame, freq_cw, freq_ucw, LARGE_VOCABULARY)
            name = LARGE_VOCABULARY
        prompt = fitted.text  # = frame.head + context + frame.tail + frame.answer_prefix
        context = prompt[len(frame.head) : len(prompt) - len(frame.tail) - len(frame.answer_prefix)]
        length = fitted.tokens + ctx.tokens_to_generate
        meta = {"num_words": fitted.n, "freq_cw": freq_cw, "freq_ucw": freq_ucw, "setting": setting.name,
                "vocabulary": name}
        return Sample(frame.input(context), frame.answer_prefix, words[: self.num_cw], length, meta)

    def _fit(self, ctx: Context, rng: np.random.Generator, frame: PromptFrame, freq_cw: int, freq_ucw: int,
             name: str):
        """(fitted, the words in drawn order): the fullest list of words drawn from vocabulary(name)."""
        vocab = vocabulary(name)
        perm = rng.permutation(len(vocab))
        words = [vocab[i] for i in perm]
        word_cum = prefix_sums(_word_counts(ctx.tokenizer, name)[perm])
        n_items = lambda n: self.num_cw * freq_cw + (n - self.num_cw) * freq_ucw  # noqa: E731
        labels = _label_cum(ctx.tokenizer, min(n_items(len(vocab)), ctx.budget))
        fixed = count_tokens(ctx.tokenizer, frame.prompt(""))

        def estimate(n: int) -> int:
            items = n_items(n)
            label = int(labels[items]) if items < len(labels) else ctx.budget + items
            common = int(word_cum[self.num_cw]) * freq_cw
            return fixed + label + common + (int(word_cum[n]) - int(word_cum[self.num_cw])) * freq_ucw

        fitted = fit(
            build=lambda n: frame.prompt(numbered(self._word_list(words[:n], freq_cw, freq_ucw, ctx.seed))),
            estimate=estimate,
            n_min=self.num_cw,
            n_max=len(vocab),
            budget=ctx.budget,
            tokenizer=ctx.tokenizer,
            what=f"cwe at length {ctx.length}",
        )
        return fitted, words
