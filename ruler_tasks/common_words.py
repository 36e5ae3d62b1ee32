"""Common words extraction (RULER's common_words_extraction.py): find the 10 most repeated words.

The vocabulary is wonderwords' nouns, adjectives and verbs. A sample takes `num_words` distinct words:
`num_cw` common ones repeated `freq_cw` times, the rest `freq_ucw` times, shuffled and numbered
"1. w 2. w ...". The example is the task with its answer appended directly after the answer prefix,
as RULER writes it, followed by a newline. Settings (`LADDER`), the first that fits is used:
1. RULER's at 4K and above: the configured counts, an example of 40 words (10 and 3 repeats);
2. RULER's below 4K: counts 6 and 1, an example of 20 words (3 and 1);
3. below what RULER generates (1K-2K, or a byte tokenizer, ~1 character a token where RULER's 4K
   threshold assumes ~4): counts 3 and 1 with an example of 12 words (2 and 1);
4. counts 2 and 1 with no example (at 1K a byte tokenizer has no room for one).
The common words still outnumber the others in every setting; meta records which one was used.
The length search is over `num_words`, capped by the vocabulary (about 8.7K words), as in RULER.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ruler_tasks.base import Context, PromptFrame, Sample, TaskGenerator
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


@functools.cache
def vocabulary() -> tuple[str, ...]:
    return tuple(sorted(set(wonderwords_list("nouns")) | set(wonderwords_list("adjectives")) | set(wonderwords_list("verbs"))))


@functools.lru_cache(maxsize=4)
def _word_counts(tokenizer) -> np.ndarray:
    """Tokens of each vocabulary word with a space in front, shape (len(vocabulary()),)."""
    return count_pieces(tokenizer, [" " + w for w in vocabulary()])


@functools.lru_cache(maxsize=8)
def _label_cum(tokenizer, n: int) -> np.ndarray:
    """cum[m] = tokens of the labels " 1." .. " m.", shape (n + 1,)."""
    return prefix_sums(count_pieces(tokenizer, [f" {i + 1}." for i in range(n)]))


def numbered(words: list[str]) -> str:
    return " ".join(f"{i + 1}. {w}" for i, w in enumerate(words))


@register_generator("common_words_extraction")
class CommonWords(TaskGenerator):
    version = "2"
    tokens_to_generate = 120
    metric = "string_match_all"

    def __init__(self, *, freq_cw: int = 30, freq_ucw: int = 3, num_cw: int = 10):
        for field, v in (("freq_cw", freq_cw), ("freq_ucw", freq_ucw), ("num_cw", num_cw)):
            if not isinstance(v, int) or v < 1:
                raise UserError(f"{field}: must be a positive integer, got {v!r}")
        self.freq_cw, self.freq_ucw, self.num_cw = freq_cw, freq_ucw, num_cw

    def _word_list(self, words: list[str], freq_cw: int, freq_ucw: int, seed: int) -> list[str]:
        items = words[: self.num_cw] * freq_cw + words[self.num_cw :] * freq_ucw
        order = np.random.default_rng(seed).permutation(len(items))
        return [items[i] for i in order]

    def sample(self, ctx: Context, rng: np.random.Generator) -> Sample:
        ladder = LADDER if ctx.length >= SMALL_LENGTH else LADDER[1:]
        for setting in ladder[:-1]:
            try:
                return self._sample(ctx, rng, setting)
            except UserError:
                pass  # too long for this length: the next, smaller setting
        return self._sample(ctx, rng, ladder[-1])

    def _prelude(self, rng: np.random.Generator, example: tuple[int, int, int] | None) -> str:
        """The one-shot example: a task with its answer (empty for none)."""
        if example is None:
            return ""
        vocab = vocabulary()
        ex_words, ex_cw, ex_ucw = example
        ex = [vocab[i] for i in rng.choice(len(vocab), size=ex_words, replace=False)]
        ex_list = self._word_list(ex, ex_cw, ex_ucw, int(rng.integers(2**63)))
        head, tail = CWE_TEMPLATE.split("{context}")
        return head + numbered(ex_list) + tail + CWE_ANSWER_PREFIX + numbered(ex[: self.num_cw]) + "\n"

    def _sample(self, ctx: Context, rng: np.random.Generator, setting: Setting) -> Sample:
        vocab = vocabulary()
        freq_cw, freq_ucw = setting.task or (self.freq_cw, self.freq_ucw)
        frame = PromptFrame.build(ctx, CWE_TEMPLATE, CWE_ANSWER_PREFIX, prelude=self._prelude(rng, setting.example))

        perm = rng.permutation(len(vocab))
        words = [vocab[i] for i in perm]
        word_cum = prefix_sums(_word_counts(ctx.tokenizer)[perm])
        n_items = lambda n: self.num_cw * freq_cw + (n - self.num_cw) * freq_ucw  # noqa: E731
        labels = _label_cum(ctx.tokenizer, min(n_items(len(vocab)), ctx.budget))
        fixed = count_tokens(ctx.tokenizer, frame.prompt(""))
        seed = int(rng.integers(2**63))

        def estimate(n: int) -> int:
            items = n_items(n)
            label = int(labels[items]) if items < len(labels) else ctx.budget + items
            common = int(word_cum[self.num_cw]) * freq_cw
            return fixed + label + common + (int(word_cum[n]) - int(word_cum[self.num_cw])) * freq_ucw

        fitted = fit(
            build=lambda n: frame.prompt(numbered(self._word_list(words[:n], freq_cw, freq_ucw, seed))),
            estimate=estimate,
            n_min=self.num_cw,
            n_max=len(vocab),
            budget=ctx.budget,
            tokenizer=ctx.tokenizer,
            what=f"cwe at length {ctx.length}",
        )
        context = numbered(self._word_list(words[: fitted.n], freq_cw, freq_ucw, seed))
        meta = {"num_words": fitted.n, "freq_cw": freq_cw, "freq_ucw": freq_ucw, "setting": setting.name}
        return Sample(frame.input(context), frame.answer_prefix, words[: self.num_cw], fitted.tokens + ctx.tokens_to_generate, meta)
