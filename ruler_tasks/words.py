"""Random needle keys/values and word vocabularies, all drawn from an explicit np.random.Generator.

Value kinds (RULER's): "numbers" are 7-digit integers, "uuids" are UUID4 strings, "words" are
adjective-noun pairs from wonderwords' lists (uniform over the pairs, as RULER's full cross product,
without building its 6M-entry list).
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.resources
import uuid

import numpy as np

from common.errors import UserError

VALUE_KINDS = ("numbers", "uuids", "words")


WORD_LIST_PACKAGES = ("wonderwords", "english-words")


def word_list_versions() -> dict[str, str]:
    """{package: installed version} of the packages whose word lists the generators draw from (their
    lists, and so the samples, can change between versions)."""
    return {name: importlib.metadata.version(name) for name in WORD_LIST_PACKAGES}


@functools.cache
def wonderwords_list(kind: str) -> tuple[str, ...]:
    """wonderwords' "nouns", "adjectives" or "verbs", deduplicated and sorted (stable across installs)."""
    text = (importlib.resources.files("wonderwords.assets") / f"{kind[:-1]}list.txt").read_text(encoding="utf-8")
    return tuple(sorted({w.strip() for w in text.splitlines() if w.strip()}))


def check_kind(kind: str, field: str) -> None:
    if kind not in VALUE_KINDS:
        raise UserError(f"{field}: {kind!r} is not one of {', '.join(VALUE_KINDS)}")


def random_values(kind: str, rng: np.random.Generator, n: int) -> list[str]:
    """n random values of `kind` (duplicates possible, as in RULER; callers dedupe where it matters)."""
    if kind == "numbers":
        return [str(v) for v in rng.integers(10**6, 10**7, size=n)]
    if kind == "uuids":
        hi_lo = rng.integers(0, 2**64, size=(n, 2), dtype=np.uint64)
        return [str(uuid.UUID(int=(int(h) << 64) | int(lo), version=4)) for h, lo in hi_lo]
    if kind == "words":
        adjs, nouns = wonderwords_list("adjectives"), wonderwords_list("nouns")
        a = rng.integers(0, len(adjs), size=n)
        b = rng.integers(0, len(nouns), size=n)
        return [f"{adjs[i]}-{nouns[j]}" for i, j in zip(a, b)]
    raise ValueError(f"unknown value kind {kind!r}")


def distinct_values(kind: str, rng: np.random.Generator, n: int, avoid: frozenset[str] = frozenset()) -> list[str]:
    """n distinct random values of `kind`, none in `avoid` (redraws the rare collisions)."""
    out: list[str] = []
    seen = set(avoid)
    while len(out) < n:
        for v in random_values(kind, rng, n - len(out)):
            if v not in seen:
                seen.add(v)
                out.append(v)
    return out
