"""Variable tracking (RULER's variable_tracking.py): follow a chain of assignments through noise.

Each chain is `VAR X0 = <5-digit>` then `VAR Xj = VAR Xj-1` (5-letter uppercase names), its lines
inserted in order at random positions among RULER's noise lines (the last line may be cut after one
of its sentences, see `haystacks.noise_lines`); the gold outputs are the chain's names.
A one-shot example precedes the task as RULER builds it: the same task at 500 tokens with 3-letter
names and at most 10 hops, followed by its answer, then its names replaced by fresh random ones.
"""

from __future__ import annotations

import re
import string

import numpy as np

from ruler_tasks import haystacks
from ruler_tasks.base import Context, PromptFrame, Sample, TaskGenerator
from ruler_tasks.chat_templates import resolve_chat_template
from common.errors import UserError
from ruler_tasks.length_fit import count_pieces, count_tokens, fit
from ruler_tasks.registry import register_generator
from ruler_tasks.templates import VT_ANSWER_PREFIX, VT_TEMPLATE

EXAMPLE_LENGTH = 500  # RULER's one-shot example is generated at max_seq_length=500


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


@register_generator("variable_tracking")
class VariableTracking(TaskGenerator):
    version = "2"
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

    def _build(self, ctx: Context, rng: np.random.Generator, letters: int, hops: int, prelude: str):
        """One fitted task: (fitted, frame, gold names, chains)."""
        names = random_names(rng, (hops + 1) * self.num_chains, letters, avoid=frozenset({"VAR"}))
        chains = []
        for c in range(self.num_chains):
            var = names[c * (hops + 1) : (c + 1) * (hops + 1)]
            value = int(rng.integers(10000, 99999))
            chains.append([f"VAR {var[0]} = {value}"] + [f"VAR {var[j + 1]} = VAR {var[j]}" for j in range(hops)])
        query = chains[0][0].split("=")[-1].strip()
        frame = PromptFrame.build(ctx, VT_TEMPLATE, VT_ANSWER_PREFIX, prelude=prelude, query=query, num_v=hops + 1)
        hay = haystacks.noise_lines(ctx.tokenizer, ctx.budget)
        lines = [line for chain in chains for line in chain]
        fixed = count_tokens(ctx.tokenizer, frame.prompt("")) + int(count_pieces(ctx.tokenizer, ["\n" + s for s in lines]).sum())
        seeds = [int(s) for s in rng.integers(2**63, size=self.num_chains)]

        def layout(n: int) -> tuple[list[int], list[str]]:
            placed = [
                (p, c, j)
                for c, seed in enumerate(seeds)
                for j, p in enumerate(haystacks.sorted_positions(seed, hay.num_groups(n), len(chains[c])))
            ]
            placed.sort()
            return [p for p, _, _ in placed], [chains[c][j] for _, c, j in placed]

        fitted = fit(
            build=lambda n: frame.prompt(hay.join(n, *layout(n))),
            estimate=lambda n: fixed + int(hay.cum[n]),
            n_min=0,
            n_max=len(hay),
            budget=ctx.budget,
            tokenizer=ctx.tokenizer,
            what=f"vt at length {ctx.length}",
        )
        context = hay.join(fitted.n, *layout(fitted.n))
        return fitted, frame, context, names[: hops + 1]

    def _example(self, ctx: Context, rng: np.random.Generator) -> str:
        """RULER's one-shot example: the task at 500 tokens without the chat template, answered, renamed."""
        ex_ctx = Context(EXAMPLE_LENGTH, self.tokens_to_generate, ctx.tokenizer, resolve_chat_template("base"))
        _, frame, context, names = self._build(ex_ctx, rng, letters=3, hops=min(10, self.num_hops), prelude="")
        text = frame.prompt(context) + " " + " ".join(names) + "\n\n"
        for old, new in zip(names, random_names(rng, len(names), 3, avoid=frozenset(names) | {"VAR"})):
            text = re.sub(rf"\b{old}\b", new, text)
        return text

    def sample(self, ctx: Context, rng: np.random.Generator) -> Sample:
        prelude = self._example(ctx, rng) + "\n\n"
        fitted, frame, context, gold = self._build(ctx, rng, letters=5, hops=self.num_hops, prelude=prelude)
        meta = {"haystack": "noise", "haystack_units": fitted.n, "num_chains": self.num_chains, "num_hops": self.num_hops}
        return Sample(frame.input(context), frame.answer_prefix, gold, fitted.tokens + ctx.tokens_to_generate, meta)
