"""Variable tracking (RULER's variable_tracking.py): follow a chain of assignments through noise.

Each chain is `VAR X0 = <5-digit>` then `VAR Xj = VAR Xj-1 ` (5-letter uppercase names; RULER's hop
lines end with a space), inserted in order among RULER's noise lines as RULER does: chain c's lines
go before distinct, ascending positions of the lines placed so far (noise and earlier chains), so two
lines of one chain are never adjacent and no chain line follows the last noise line. The haystack ends
on a whole line (below `haystacks.CUT_LINES_BELOW`, when whole lines cannot fill 95%, on a line cut
after a sentence: meta `cut_lines`). The gold outputs are the first chain's names.
A one-shot example precedes the task as RULER builds it: once per run (from the run's seed), the same
task at 500 tokens (nothing kept for generation) with 3-letter names, at most 10 hops and the value
12345, without the chat template, followed by a space and its answer; then per sample its names are
replaced by fresh random ones and 12345 by a fresh value. One newline ends the example and another
separates it from the task (RULER's two). When 500 tokens cannot hold RULER's minimum of one
noise line per chain line (a byte tokenizer), the example has that minimum, as RULER's search stops
at its lower bound. When the example leaves no room for the task (1K with a byte tokenizer), the task
goes without it: meta `setting` is "no_example" instead of "ruler" (version 4).
"""

from __future__ import annotations

import re
import string
import zlib
from dataclasses import dataclass

import numpy as np

from ruler_tasks import haystacks
from ruler_tasks.base import Context, PromptFrame, Sample, TaskGenerator, require_fill
from ruler_tasks.chat_templates import resolve_chat_template
from common.errors import UserError
from ruler_tasks.length_fit import count_pieces, count_tokens, fit
from ruler_tasks.registry import register_generator
from ruler_tasks.templates import VT_ANSWER_PREFIX, VT_FIRST, VT_HOP, VT_TEMPLATE

EXAMPLE_LENGTH = 500  # RULER's one-shot example is generated at max_seq_length=500, tokens_to_generate=0
EXAMPLE_VALUE = 12345  # the example's value before each sample replaces it (RULER's)
EXAMPLE_SEED_TAG = zlib.crc32(b"variable_tracking/example")


def random_names(rng: np.random.Generator, count: int, letters: int, avoid: frozenset[str] = frozenset()) -> list[str]:
    """`count` distinct uppercase names of `letters` letters, none in `avoid`."""
    alphabet = np.array(list(string.ascii_uppercase))
    names: list[str] = []
    seen = set(avoid)
    while len(names) < count:
        name = "".join(rng.choice(alphabet, size=letters))
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def chain_layout(seeds: list[int], chain_lengths: list[int], n_lines: int) -> tuple[list[int], list[tuple[int, int]]]:
    """Where RULER's insertion puts chain lines among n_lines noise lines: chain c's lines go, in order,
    before k distinct ascending positions of the list built so far (a pure function of (seeds, n_lines)).
    Returns (the noise line each chain line precedes, ascending; (chain, line) of each)."""
    items: list[int | tuple[int, int]] = list(range(n_lines))  # int: a noise line; (c, j): line j of chain c
    for c, (seed, k) in enumerate(zip(seeds, chain_lengths)):
        placed: list[int | tuple[int, int]] = []
        start = 0
        for j, p in enumerate(haystacks.line_positions(seed, len(items), k)):
            placed.extend(items[start:p])
            placed.append((c, j))
            start = p
        items = placed + items[start:]
    positions, which, noise_before = [], [], 0
    for item in items:
        if isinstance(item, int):
            noise_before += 1
        else:
            positions.append(noise_before)
            which.append(item)
    return positions, which


@dataclass(frozen=True)
class _Drawn:
    """One task's random draws: its frame, chains (lines) and the layout seeds."""

    frame: PromptFrame
    chains: list[list[str]]
    names: list[str]
    seeds: list[int]


@register_generator("variable_tracking")
class VariableTracking(TaskGenerator):
    version = "4"
    tokens_to_generate = 30
    metric = "string_match_all"

    def __init__(self, *, type_haystack: str = "noise", num_chains: int = 1, num_hops: int = 4):
        if type_haystack not in ("noise", "repeat"):
            raise UserError(f"type_haystack: only 'noise' is supported for variable tracking, got {type_haystack!r}")
        for field, v in (("num_chains", num_chains), ("num_hops", num_hops)):
            if not isinstance(v, int) or v < 1:
                raise UserError(f"{field}: must be a positive integer, got {v!r}")
        self.num_chains = num_chains
        self.num_hops = num_hops

    def _draw(self, ctx: Context, rng: np.random.Generator, letters: int, hops: int, prelude: str,
              value: int | None = None) -> _Drawn:
        """One task's draws; each chain starts at `value`, or at a random 5-digit value when None."""
        names = random_names(rng, (hops + 1) * self.num_chains, letters, avoid=frozenset({"VAR"}))
        chains = []
        for c in range(self.num_chains):
            var = names[c * (hops + 1) : (c + 1) * (hops + 1)]
            start = int(rng.integers(10000, 99999)) if value is None else value
            chains.append(
                [VT_FIRST.format(name=var[0], value=start)]
                + [VT_HOP.format(name=var[j + 1], previous=var[j]) for j in range(hops)]
            )
        query = chains[0][0].split("=")[-1].strip()
        frame = PromptFrame.build(ctx, VT_TEMPLATE, VT_ANSWER_PREFIX, prelude=prelude, query=query, num_v=hops + 1)
        seeds = [int(s) for s in rng.integers(2**63, size=self.num_chains)]
        return _Drawn(frame, chains, names[: hops + 1], seeds)

    @staticmethod
    def _context(drawn: _Drawn, hay: haystacks.Stream, n: int) -> str:
        """The first n units of `hay` with the chains laid out among their lines."""
        positions, which = chain_layout(drawn.seeds, [len(c) for c in drawn.chains], hay.num_groups(n))
        return hay.join(n, positions, [drawn.chains[c][j] for c, j in which])

    @staticmethod
    def _fewest_units(drawn: _Drawn, hay: haystacks.Stream, what: str) -> int:
        """RULER's minimum: as many noise lines as the longest chain has lines (`hay`, sized to the
        budget, may hold fewer: then the length is too small)."""
        lines = max(len(c) for c in drawn.chains)
        if len(hay.starts) < lines:
            raise UserError(f"{what}: the shortest prompt needs {lines} noise lines, more than this length "
                            f"leaves room for; use a longer --lengths value")
        return hay.units_for_groups(lines)

    def _fit(self, ctx: Context, drawn: _Drawn, hay: haystacks.Stream):
        """(fitted, context) of the drawn task in the first n units of `hay` (n searched)."""
        lines = ["\n" + line for chain in drawn.chains for line in chain]
        fixed = count_tokens(ctx.tokenizer, drawn.frame.prompt("")) + int(count_pieces(ctx.tokenizer, lines).sum())
        fitted = fit(
            build=lambda n: drawn.frame.prompt(self._context(drawn, hay, n)),
            estimate=lambda n: fixed + int(hay.cum[n]),
            n_min=self._fewest_units(drawn, hay, f"vt at length {ctx.length}"),
            n_max=len(hay),
            budget=ctx.budget,
            tokenizer=ctx.tokenizer,
            what=f"vt at length {ctx.length}",
        )
        return fitted, self._context(drawn, hay, fitted.n)

    def _run_example(self, ctx: Context) -> tuple[str, list[str]]:
        """(text, names) of the run's one-shot example, a function of the run's seed and the tokenizer:
        the task at 500 tokens without the chat template, valued EXAMPLE_VALUE, answered, ending with a newline."""
        rng = np.random.default_rng([EXAMPLE_SEED_TAG, ctx.seed])
        ex_ctx = Context(EXAMPLE_LENGTH, 0, ctx.tokenizer, resolve_chat_template("base"), seed=ctx.seed)
        drawn = self._draw(ex_ctx, rng, letters=3, hops=min(10, self.num_hops), prelude="", value=EXAMPLE_VALUE)
        hay = haystacks.noise_lines(ctx.tokenizer, EXAMPLE_LENGTH).whole_groups()
        try:
            _, context = self._fit(ex_ctx, drawn, hay)
        except UserError:  # 500 tokens cannot hold RULER's minimum: the example has that minimum
            context = self._context(drawn, hay, self._fewest_units(drawn, hay, "vt example"))
        return drawn.frame.prompt(context) + " " + " ".join(drawn.names) + "\n", drawn.names

    def _example(self, ctx: Context, rng: np.random.Generator) -> str:
        """The run's example as one sample shows it: fresh names (same length) and a fresh value."""
        text, names = self._run_example(ctx)
        fresh = random_names(rng, len(names), 3, avoid=frozenset(names) | {"VAR"})
        for old, new in zip(names, fresh):
            text = re.sub(rf"\b{old}\b", new, text)
        return text.replace(str(EXAMPLE_VALUE), str(int(rng.integers(10000, 99999))))

    def sample(self, ctx: Context, rng: np.random.Generator) -> Sample:
        try:
            return self._sample(ctx, rng, self._example(ctx, rng) + "\n", "ruler")
        except UserError:  # the example leaves no room for the task
            return self._sample(ctx, rng, "", "no_example")

    def _sample(self, ctx: Context, rng: np.random.Generator, prelude: str, setting: str) -> Sample:
        drawn = self._draw(ctx, rng, letters=5, hops=self.num_hops, prelude=prelude)
        stream = haystacks.noise_lines(ctx.tokenizer, ctx.budget)
        (fitted, context), cut = haystacks.fit_lines(ctx, stream, lambda hay: self._fit(ctx, drawn, hay))
        length = fitted.tokens + ctx.tokens_to_generate
        require_fill(f"vt at length {ctx.length}", ctx, length)
        meta = {
            "haystack": "noise",
            "haystack_units": fitted.n,
            "cut_lines": cut,
            "setting": setting,
            "num_chains": self.num_chains,
            "num_hops": self.num_hops,
        }
        return Sample(drawn.frame.input(context), drawn.frame.answer_prefix, drawn.names, length, meta)
