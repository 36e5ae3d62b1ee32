"""Haystacks as countable pieces: essay sentences, noise lines, distractor needles.

A `Pieces` holds the first pieces a context may use and each one's token count as it appears in the
joined text (separator included), counted once. A context is `pieces[:n]` joined by `sep`, with
inserts (needles, variable assignments) placed before given piece indices: `assemble`. Its token count
is estimated as `cum[n] + sum(insert counts)`; `ruler_tasks.length_fit.fit` corrects the estimate.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ruler_tasks import corpus
from ruler_tasks.length_fit import count_pieces, count_tokens, prefix_sums
from ruler_tasks.templates import NIAH_NEEDLE, NOISE_LINE
from ruler_tasks.words import distinct_values, random_values

# RULER's needle depths: 40 evenly spaced integer percentages 0..100.
DEPTHS = tuple(int(d) for d in np.round(np.linspace(0, 100, num=40, endpoint=True)))


@dataclass(frozen=True)
class Pieces:
    """texts[i] joined by `sep`; counts[i] = tokens of texts[i] with its separator; cum[n] = sum(counts[:n])."""

    texts: Sequence[str]
    counts: np.ndarray
    sep: str

    @functools.cached_property
    def cum(self) -> np.ndarray:
        return prefix_sums(self.counts)

    def __len__(self) -> int:
        return len(self.texts)


def join_with_inserts(texts: Sequence[str], positions: Sequence[int], inserts: Sequence[str], sep: str) -> str:
    """texts joined by sep, with inserts[j] placed before texts[positions[j]] (positions ascending, each
    in [0, len(texts)]; equal positions keep the inserts' order)."""
    out: list[str] = []
    start = 0
    for pos, text in zip(positions, inserts):
        out.extend(texts[start:pos])
        out.append(text)
        start = pos
    out.extend(texts[start:])
    return sep.join(out)


def assemble(pieces: Pieces, n: int, positions: Sequence[int], inserts: Sequence[str]) -> str:
    """The first n pieces joined by their separator, with inserts placed as in `join_with_inserts`."""
    return join_with_inserts(pieces.texts[:n], positions, inserts, pieces.sep)


def insert_token_offsets(pieces: Pieces, positions: Sequence[int], insert_counts: Sequence[int]) -> list[int]:
    """Estimated token offset of each insert within the context (exact for a byte tokenizer)."""
    before = np.concatenate([[0], np.cumsum(insert_counts, dtype=np.int64)[:-1]]) if len(insert_counts) else []
    return [int(pieces.cum[p] + b) for p, b in zip(positions, before)]


def _pieces_needed(counts_one_cycle: np.ndarray, budget: int) -> int:
    """How many cycled pieces reach `budget` tokens (at least one full pass)."""
    per_cycle = max(int(counts_one_cycle.sum()), 1)
    return int(len(counts_one_cycle) * (budget // per_cycle + 1)) + 1


@dataclass(frozen=True)
class Essay:
    """The corpus as a word stream from its start (repeated when short), in sentences.

    RULER takes the first N words and splits them into sentences, so the last one may be cut; N is
    the search variable, which gives a fill within one word of the budget. cum[n] = tokens of the first
    n words (each counted with a space in front), shape (len + 1,).
    """

    words: Sequence[str]
    sentence_starts: np.ndarray  # word index where each sentence begins, ascending, starts at 0
    cum: np.ndarray

    def __len__(self) -> int:
        return len(self.words)

    def sentences(self, n: int) -> list[str]:
        """The first n words as sentences (the last one possibly cut)."""
        k = int(np.searchsorted(self.sentence_starts, n, side="left"))
        bounds = list(self.sentence_starts[:k]) + [n]
        return [" ".join(self.words[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]

    def word_offset(self, sentence: int) -> int:
        """Index of the first word of sentence `sentence` (or the end when past the last)."""
        return int(self.sentence_starts[sentence]) if sentence < len(self.sentence_starts) else len(self.words)


@functools.lru_cache(maxsize=8)
def _essay_words(spec: str | None, tokenizer) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """(words, sentence start indices, per-word token counts) of one pass over the corpus."""
    sentences = corpus.load_sentences(spec)
    split = [s.split(" ") for s in sentences]
    words = tuple(w for ws in split for w in ws)
    starts = prefix_sums(np.fromiter((len(ws) for ws in split), dtype=np.int64, count=len(split)))[:-1]
    return words, starts, count_pieces(tokenizer, [" " + w for w in words])


def essay(tokenizer, budget: int, spec: str | None = None) -> Essay:
    """The essay haystack with enough words (cycling the corpus) to exceed `budget` tokens."""
    words, starts, counts = _essay_words(spec, tokenizer)
    reps = _pieces_needed(counts, budget) // len(words) + 1
    all_starts = np.concatenate([starts + r * len(words) for r in range(reps)])
    return Essay(words * reps, all_starts, prefix_sums(np.tile(counts, reps)))


def noise_pieces(tokenizer, budget: int) -> Pieces:
    """RULER's noise line repeated, joined by newlines."""
    c = count_tokens(tokenizer, "\n" + NOISE_LINE)
    n = budget // max(c, 1) + 1
    return Pieces([NOISE_LINE] * n, np.full(n, c, dtype=np.int64), "\n")


def needle_pieces(
    tokenizer, budget: int, rng: np.random.Generator, type_needle_k: str, type_needle_v: str, avoid_keys: frozenset[str]
) -> Pieces:
    """Distractor needles (random keys never equal to a real key, random values), joined by newlines."""
    def lines(count: int) -> list[str]:
        keys = distinct_values(type_needle_k, rng, count, avoid=avoid_keys)
        values = random_values(type_needle_v, rng, count)
        return [NIAH_NEEDLE.format(type_needle_v=type_needle_v, key=k, value=v) for k, v in zip(keys, values)]

    texts = lines(16)
    counts = count_pieces(tokenizer, ["\n" + t for t in texts])
    # Enough lines for the budget even if every line were as short as the shortest probe.
    more = lines(max(budget // max(int(counts.min()), 1) + 1 - len(texts), 0))
    texts += more
    counts = np.concatenate([counts, count_pieces(tokenizer, ["\n" + t for t in more])])
    return Pieces(texts, counts, "\n")


def line_positions(seed: int, n: int, k: int) -> list[int]:
    """k distinct piece indices in [0, n), ascending: RULER's random line positions, a pure function of
    (seed, n) so that a length search may rebuild the same sample at another n."""
    return sorted(int(p) for p in np.random.default_rng(seed).choice(n, size=k, replace=False))


def sorted_positions(seed: int, n: int, k: int) -> list[int]:
    """k insert positions in [0, n], ascending, repeats allowed (so any n >= 0 works): a pure function of
    (seed, n)."""
    return sorted(int(p) for p in np.random.default_rng(seed).integers(0, n + 1, size=k))
