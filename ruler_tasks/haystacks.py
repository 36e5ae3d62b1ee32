"""Haystacks as countable streams: essay words in sentences, noise sentences in lines, distractor
needle words in lines.

A `Stream` holds the units a context may use, grouped, and each unit's token count as it appears in
the joined text (separator included), counted once. A context is the first n units, grouped (the last
group possibly cut), with inserts (needles, variable assignments) placed before given groups:
`Stream.join`. Its token count is estimated as `cum[n] + sum(insert counts)`;
`ruler_tasks.length_fit.fit` corrects the estimate.

Line haystacks (noise, distractor needles) end on whole lines, as RULER's do: `fit_lines` fits
`Stream.whole_groups()`. A whole line is ~90 tokens with a byte tokenizer (~120 for a UUID
distractor), ~10% of a 1K budget, so below CUT_LINES_BELOW tokens, and only when whole lines leave a
sample under MIN_FILL, the last line may be cut after a sentence (noise) or a word (distractor): a
recorded setting (the sample's meta says `cut_lines: true`), never used at 4K and above.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from common.errors import UserError
from ruler_tasks import corpus
from ruler_tasks.base import MIN_FILL
from ruler_tasks.length_fit import count_pieces, prefix_sums
from ruler_tasks.templates import NIAH_NEEDLE, NOISE_LINE
from ruler_tasks.words import distinct_values, random_values

CUT_LINES_BELOW = 4096  # below this length a line haystack may end on a cut line (see above)

# RULER's needle depths: 40 evenly spaced integer percentages 0..100.
DEPTHS = tuple(int(d) for d in np.round(np.linspace(0, 100, num=40, endpoint=True)))


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


def _pieces_needed(counts_one_cycle: np.ndarray, budget: int) -> int:
    """How many cycled pieces reach `budget` tokens (at least one full pass)."""
    per_cycle = max(int(counts_one_cycle.sum()), 1)
    return int(len(counts_one_cycle) * (budget // per_cycle + 1)) + 1


@dataclass(frozen=True)
class Stream:
    """Units (words, sentences) in groups (sentences, lines): a context is the first n units, grouped,
    so its last group may be cut. n is the search variable, which gives a fill within one unit.

    RULER's essay haystack is this with words in sentences (it takes the first N words and splits
    them). cum[n] = tokens of the first n units, each counted with its separator in front (the group
    separator before a group's first unit, a space before the others), shape (len + 1,).
    """

    units: Sequence[str]
    starts: np.ndarray  # unit index where each group begins, ascending, starts at 0
    cum: np.ndarray
    sep: str  # between groups

    def __len__(self) -> int:
        return len(self.units)

    def groups(self, n: int) -> list[str]:
        """The first n units as groups (the last one possibly cut), units joined by spaces."""
        k = self.num_groups(n)
        bounds = list(self.starts[:k]) + [n]
        return [" ".join(self.units[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]

    def num_groups(self, n: int) -> int:
        """How many groups the first n units make."""
        return int(np.searchsorted(self.starts, n, side="left"))

    def join(self, n: int, positions: Sequence[int], inserts: Sequence[str]) -> str:
        """The first n units' groups joined by `sep`, with inserts placed before given groups (as in
        `join_with_inserts`)."""
        return join_with_inserts(self.groups(n), positions, inserts, self.sep)

    def unit_offset(self, group: int) -> int:
        """Index of the first unit of group `group` (or the end when past the last)."""
        return int(self.starts[group]) if group < len(self.starts) else len(self.units)

    def units_for_groups(self, k: int) -> int:
        """The fewest units that make k groups (k >= 1)."""
        return int(self.starts[k - 1]) + 1

    def whole_groups(self) -> Stream:
        """The same text with each group as one unit, so that a context ends on a whole group."""
        bounds = np.append(self.starts, len(self.units))
        units = tuple(" ".join(self.units[a:b]) for a, b in zip(bounds[:-1], bounds[1:]))
        return Stream(units, np.arange(len(units), dtype=np.int64), self.cum[bounds], self.sep)


def fit_lines(ctx, stream: Stream, fit_with: Callable[[Stream], tuple]) -> tuple[tuple, bool]:
    """(fit_with(stream of whole lines), False), or below CUT_LINES_BELOW when whole lines leave the
    sample under MIN_FILL (or do not fit at all), (fit_with(stream), True): the last line may be cut.
    `fit_with` returns a tuple whose first item is the `length_fit.Fitted` prompt."""
    if ctx.length >= CUT_LINES_BELOW:
        return fit_with(stream.whole_groups()), False
    try:
        whole = fit_with(stream.whole_groups())
    except UserError:
        return fit_with(stream), True
    if whole[0].tokens + ctx.tokens_to_generate >= MIN_FILL * ctx.length:
        return whole, False
    return fit_with(stream), True


def _group_starts(groups: Sequence[Sequence[str]]) -> np.ndarray:
    return prefix_sums(np.fromiter((len(g) for g in groups), dtype=np.int64, count=len(groups)))[:-1]


def _separated(groups: Sequence[Sequence[str]], group_sep: str) -> list[str]:
    """Each unit with its separator in front, as `Stream.cum` counts it."""
    return [(group_sep if i == 0 else " ") + u for g in groups for i, u in enumerate(g)]


@functools.lru_cache(maxsize=8)
def _essay_words(spec: str | None, tokenizer) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """(words, sentence start indices, per-word token counts) of one pass over the corpus."""
    split = [s.split(" ") for s in corpus.load_sentences(spec)]
    words = tuple(w for ws in split for w in ws)
    return words, _group_starts(split), count_pieces(tokenizer, _separated(split, " "))


def _cycled(units: Sequence[str], starts: np.ndarray, counts: np.ndarray, sep: str, budget: int) -> Stream:
    """One pass of a stream repeated until it exceeds `budget` tokens."""
    reps = _pieces_needed(counts, budget) // len(units) + 1
    all_starts = np.concatenate([starts + r * len(units) for r in range(reps)])
    return Stream(tuple(units) * reps, all_starts, prefix_sums(np.tile(counts, reps)), sep)


def essay(tokenizer, budget: int, spec: str | None = None) -> Stream:
    """The essay haystack: corpus words in sentences (cycling the corpus) past `budget` tokens."""
    return _cycled(*_essay_words(spec, tokenizer), " ", budget)


NOISE_SENTENCES = tuple(s + "." for s in NOISE_LINE.removesuffix(".").split(". "))


@functools.lru_cache(maxsize=8)
def _noise_counts(tokenizer) -> np.ndarray:
    return count_pieces(tokenizer, _separated([NOISE_SENTENCES], "\n"))


def noise_lines(tokenizer, budget: int) -> Stream:
    """RULER's noise line repeated, in sentences, lines joined by newlines (see `fit_lines`)."""
    starts = np.zeros(1, dtype=np.int64)
    return _cycled(NOISE_SENTENCES, starts, _noise_counts(tokenizer), "\n", budget)


def needle_lines(
    tokenizer, budget: int, rng: np.random.Generator, type_needle_k: str, type_needle_v: str, avoid_keys: frozenset[str]
) -> Stream:
    """Distractor needles (random keys never equal to a real key, random values), in words, lines
    joined by newlines (see `fit_lines`; a cut distractor's key is never asked for)."""
    def lines(count: int) -> list[list[str]]:
        keys = distinct_values(type_needle_k, rng, count, avoid=avoid_keys)
        values = random_values(type_needle_v, rng, count)
        return [NIAH_NEEDLE.format(type_needle_v=type_needle_v, key=k, value=v).split(" ") for k, v in zip(keys, values)]

    probe = lines(16)
    probe_counts = count_pieces(tokenizer, _separated(probe, "\n"))
    shortest = min(int(probe_counts[s:s + len(g)].sum()) for s, g in zip(_group_starts(probe), probe))
    # Enough lines for the budget even if every line were as short as the shortest probe.
    more = lines(max(budget // max(shortest, 1) + 1 - len(probe), 0))
    groups = probe + more
    counts = np.concatenate([probe_counts, count_pieces(tokenizer, _separated(more, "\n"))])
    return Stream(tuple(u for g in groups for u in g), _group_starts(groups), prefix_sums(counts), "\n")


def line_positions(seed: int, n: int, k: int) -> list[int]:
    """k distinct group (line) indices in [0, n), ascending: RULER's random line positions, a pure function of
    (seed, n) so that a length search may rebuild the same sample at another n."""
    return sorted(int(p) for p in np.random.default_rng(seed).choice(n, size=k, replace=False))
