"""Fit a prompt to a token budget by counting pieces once and searching on the counts.

A generator describes its prompt as a function of one integer n (haystack sentences, noise lines,
words...): `build(n) -> str` (pure: all randomness drawn beforehand) and a cheap, nondecreasing
`estimate(n)` of its token count, usually `fixed + cumsum(piece_counts)[n]` from `count_pieces`.
`fit` picks the largest n whose estimate fits, tokenizes that one prompt, rescales the estimate by the
measured ratio (tokens merging across piece boundaries), and repeats a few times at most: it
never tokenizes the whole prompt once per search step. The result always fits; it is the fullest
prompt among those tokenized.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from common.errors import UserError

MAX_ROUNDS = 6


def tolerance(budget: int) -> int:
    """A fitting prompt this close to the budget ends the search (0.2% of it, at least 4 tokens)."""
    return max(4, budget // 500)


def count_tokens(tokenizer, text: str) -> int:
    count = getattr(tokenizer, "count", None)
    return count(text) if count is not None else len(tokenizer.encode(text))


def count_pieces(tokenizer, pieces: Sequence[str]) -> np.ndarray:
    """Token count of each piece (count a piece with its separator in front, " word", as BPE and
    sentencepiece tokenizers attach a space to the word after it), shape (len(pieces),) int64, in one batched call where possible."""
    if not pieces:
        return np.zeros(0, dtype=np.int64)
    batch = getattr(tokenizer, "encode_batch", None)
    ids = batch(list(pieces)) if batch is not None else [tokenizer.encode(p) for p in pieces]
    return np.fromiter((len(i) for i in ids), dtype=np.int64, count=len(pieces))


def prefix_sums(counts: np.ndarray) -> np.ndarray:
    """cum[n] = sum(counts[:n]), shape (len(counts) + 1,)."""
    return np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])


@dataclass(frozen=True)
class Fitted:
    n: int
    text: str
    tokens: int


def largest_fitting(estimate: Callable[[int], int], lo: int, hi: int, budget: int) -> int | None:
    """Largest n in [lo, hi] with estimate(n) <= budget (estimate nondecreasing), or None."""
    if estimate(lo) > budget:
        return None
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if estimate(mid) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


class LengthTooSmall(UserError):
    """Even the shortest prompt (`need` tokens) exceeds the `budget` a target length leaves; the caller,
    who knows the tokens to generate, rewords it as the task's minimum length."""

    def __init__(self, what: str, need: int, budget: int):
        self.need, self.budget = need, budget
        super().__init__(f"{what}: the shortest prompt takes {need} tokens, more than the {max(budget, 0)} this "
                         f"length leaves for it; use a longer --lengths value")


def fit(
    *,
    build: Callable[[int], str],
    estimate: Callable[[int], int],
    n_min: int,
    n_max: int,
    budget: int,
    tokenizer,
    what: str,
) -> Fitted:
    """The fullest prompt `build(n)`, n in [n_min, n_max], whose token count is <= budget.

    Raises UserError (naming `what`) when even n_min does not fit: the target length is too small.
    """
    base = estimate(n_min)
    ratio = 1.0  # measured tokens per estimated token above the base (merges across piece boundaries)

    def predicted(m: int) -> float:
        return base + (estimate(m) - base) * ratio

    best: Fitted | None = None
    tried: set[int] = set()
    n = largest_fitting(predicted, n_min, n_max, budget)
    n = n_min if n is None else n
    for _ in range(MAX_ROUNDS):
        text = build(n)
        tokens = count_tokens(tokenizer, text)
        tried.add(n)
        if tokens <= budget and (best is None or tokens > best.tokens):
            best = Fitted(n, text, tokens)
            if budget - tokens <= tolerance(budget) or n == n_max:
                break
        if estimate(n) > base:
            ratio = max(tokens - base, 1) / (estimate(n) - base)
        nxt = largest_fitting(predicted, n_min, n_max, budget)
        nxt = n_min if nxt is None else nxt
        if nxt in tried and best is None:
            nxt = min(nxt, n) - 1  # still over: step down past what was tried
        if nxt in tried or nxt < n_min:
            break
        n = nxt
    if best is None:
        raise LengthTooSmall(what, count_tokens(tokenizer, build(n_min)), budget)
    return best
