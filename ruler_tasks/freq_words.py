"""Frequent words extraction (RULER's freq_words_extraction.py): the three most frequent coded words.

A vocabulary of `(length - tokens_to_generate) // 50` random `coded_wordlen`-letter lowercase words
(RULER's size: `(length - 50) // 50` with its 50 tokens to generate; version 2) is ranked at random;
word k appears floor(N * k^-alpha / zeta(alpha)) times (a Zipf law), rank 1 is replaced by "..." (noise
the prompt says to ignore), so the gold outputs are ranks 2-4. All words are shuffled and joined by
spaces. The length search is over N.
"""

from __future__ import annotations

import string

import numpy as np

from ruler_tasks.base import Context, PromptFrame, Sample, TaskGenerator, require_fill
from common.errors import UserError
from ruler_tasks.length_fit import count_pieces, count_tokens, fit
from ruler_tasks.registry import register_generator
from ruler_tasks.templates import FWE_ANSWER_PREFIX, FWE_TEMPLATE


def zeta(alpha: float, terms: int = 100_000) -> float:
    """Riemann zeta(alpha) for alpha > 1: a partial sum plus the Euler-Maclaurin tail (error < 1e-12)."""
    k = np.arange(1, terms + 1, dtype=np.float64)
    n = float(terms)
    return float(np.sum(k**-alpha) + n ** (1 - alpha) / (alpha - 1) - 0.5 * n**-alpha + alpha / 12 * n ** (-alpha - 1))


@register_generator("freq_words_extraction")
class FreqWords(TaskGenerator):
    version = "2"
    tokens_to_generate = 50
    metric = "string_match_all"

    def __init__(self, *, alpha: float = 2.0, coded_wordlen: int = 6, vocab_size: int = -1):
        if not isinstance(alpha, (int, float)) or alpha <= 1:
            raise UserError(f"alpha: must be a number > 1, got {alpha!r}")
        if not isinstance(coded_wordlen, int) or coded_wordlen < 3:
            raise UserError(f"coded_wordlen: must be an integer >= 3, got {coded_wordlen!r}")
        if not isinstance(vocab_size, int) or (vocab_size != -1 and vocab_size < 4):
            raise UserError(f"vocab_size: must be -1 ((length - tokens_to_generate) // 50) or an integer >= 4, got {vocab_size!r}")
        self.alpha, self.coded_wordlen, self.vocab_size = float(alpha), coded_wordlen, vocab_size
        self._zeta = zeta(self.alpha)

    def _vocab(self, rng: np.random.Generator, size: int) -> list[str]:
        letters = np.array(list(string.ascii_lowercase))
        vocab: set[str] = set()
        while len(vocab) < size:
            draws = rng.choice(letters, size=(size - len(vocab), self.coded_wordlen))
            vocab.update("".join(row) for row in draws)
        ranked = sorted(vocab)
        ranked = [ranked[i] for i in rng.permutation(len(ranked))]
        ranked[0] = "..."  # RULER treats the top rank as noise
        return ranked

    def sample(self, ctx: Context, rng: np.random.Generator) -> Sample:
        size = max(ctx.budget // 50, 4) if self.vocab_size == -1 else self.vocab_size
        vocab = self._vocab(rng, size)
        weights = np.arange(1, size + 1, dtype=np.float64) ** -self.alpha / self._zeta
        word_tokens = count_pieces(ctx.tokenizer, [" " + w for w in vocab])
        frame = PromptFrame.build(ctx, FWE_TEMPLATE, FWE_ANSWER_PREFIX)
        fixed = count_tokens(ctx.tokenizer, frame.prompt(""))
        seed = int(rng.integers(2**63))

        def counts(n: int) -> np.ndarray:
            return (n * weights).astype(np.int64)

        def text(n: int) -> str:
            words = np.repeat(np.arange(size), counts(n))
            order = np.random.default_rng(seed).permutation(len(words))
            return " ".join(vocab[i] for i in words[order])

        fitted = fit(
            build=lambda n: frame.prompt(text(n)),
            estimate=lambda n: fixed + int(counts(n) @ word_tokens),
            n_min=4 * int(np.ceil(self._zeta * 4**self.alpha)),
            n_max=2 * ctx.budget + size,
            budget=ctx.budget,
            tokenizer=ctx.tokenizer,
            what=f"fwe at length {ctx.length}",
        )
        length = fitted.tokens + ctx.tokens_to_generate
        require_fill(f"fwe at length {ctx.length}", ctx, length)
        meta = {"num_words": fitted.n, "vocab_size": size, "alpha": self.alpha}
        return Sample(frame.input(text(fitted.n)), frame.answer_prefix, vocab[1:4], length, meta)
