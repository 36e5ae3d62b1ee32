"""Needle in a haystack (RULER's niah.py): all eight NIAH tasks are this generator with other args.

Keys and values are drawn (`type_needle_k`, `type_needle_v`: numbers | uuids | words), each key gets
`num_needle_v` values, one needle sentence per (key, value), shuffled; `num_needle_q` keys are asked
for. Haystacks: "essay" (corpus sentences from the start, needles at depths drawn without replacement
from RULER's 40 depths), "noise" (RULER's filler line repeated; "repeat" is its older name) and
"needle" (distractor needles with random keys), needles before random distinct lines for the last
two. The length search is over words (essay; like RULER's, whose first N words end in a cut
sentence) or whole lines (noise, needle; as RULER's). Below `haystacks.CUT_LINES_BELOW` a line
haystack that whole lines cannot fill to 95% ends on a cut line instead (meta `cut_lines`); a cut line
never holds a needle, and a cut distractor's key is never asked for.
When one value is asked for (num_needle_q * num_needle_v == 1), RULER's singular rewrite
(`templates.singular`) applies to the whole template: the chat template, the task text and the
answer prefix (version 3).
meta: haystack kind and size in units (words; lines, or sentences / words when cut), needle depths as
fractions, estimated needle token offsets in the prompt, queried keys, cut_lines (line haystacks).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ruler_tasks import haystacks
from ruler_tasks.base import Context, PromptFrame, Sample, TaskGenerator, require_fill
from ruler_tasks.chat_templates import ChatTemplate
from common.errors import UserError
from ruler_tasks.length_fit import count_pieces, count_tokens, fit
from ruler_tasks.registry import register_generator
from ruler_tasks.templates import NIAH_ANSWER_PREFIX, NIAH_NEEDLE, NIAH_TEMPLATE, singular
from ruler_tasks.words import check_kind, distinct_values

HAYSTACK_KINDS = ("essay", "noise", "repeat", "needle")


@register_generator("niah")
class Niah(TaskGenerator):
    version = "3"
    tokens_to_generate = 128
    metric = "string_match_all"

    def __init__(
        self,
        *,
        type_haystack: str = "essay",
        type_needle_k: str = "words",
        type_needle_v: str = "numbers",
        num_needle_k: int = 1,
        num_needle_v: int = 1,
        num_needle_q: int = 1,
    ):
        if type_haystack not in HAYSTACK_KINDS:
            raise UserError(f"type_haystack: {type_haystack!r} is not one of {', '.join(HAYSTACK_KINDS)}")
        check_kind(type_needle_k, "type_needle_k")
        check_kind(type_needle_v, "type_needle_v")
        for field, v in (("num_needle_k", num_needle_k), ("num_needle_v", num_needle_v), ("num_needle_q", num_needle_q)):
            if not isinstance(v, int) or v < 1:
                raise UserError(f"{field}: must be a positive integer, got {v!r}")
        if type_haystack == "essay" and num_needle_v * max(num_needle_k, num_needle_q) > len(haystacks.DEPTHS):
            raise UserError(f"at most {len(haystacks.DEPTHS)} needles fit RULER's essay depths")
        self.type_haystack = "noise" if type_haystack == "repeat" else type_haystack
        self.type_needle_k = type_needle_k
        self.type_needle_v = type_needle_v
        self.num_needle_k = max(num_needle_k, num_needle_q)  # RULER: every queried key exists
        self.num_needle_v = num_needle_v
        self.num_needle_q = num_needle_q

    def _frame(self, ctx: Context, query: str) -> PromptFrame:
        template, answer_prefix, kind = NIAH_TEMPLATE, NIAH_ANSWER_PREFIX, self.type_needle_v
        if self.num_needle_q * self.num_needle_v == 1:
            template, answer_prefix, kind = singular(template), singular(answer_prefix), kind[:-1]
            chat = ChatTemplate(ctx.chat.name, singular(ctx.chat.before), singular(ctx.chat.after))
            ctx = replace(ctx, chat=chat)
        return PromptFrame.build(ctx, template, answer_prefix, type_needle_v=kind, query=query)

    def sample(self, ctx: Context, rng: np.random.Generator) -> Sample:
        keys = distinct_values(self.type_needle_k, rng, self.num_needle_k)
        values = distinct_values(self.type_needle_v, rng, self.num_needle_k * self.num_needle_v)
        pairs = [(k, values[i * self.num_needle_v + j]) for i, k in enumerate(keys) for j in range(self.num_needle_v)]
        order = rng.permutation(len(pairs))
        needles = [NIAH_NEEDLE.format(type_needle_v=self.type_needle_v, key=pairs[i][0], value=pairs[i][1]) for i in order]
        asked = [int(i) for i in rng.choice(self.num_needle_k, size=self.num_needle_q, replace=False)]
        queries = [keys[i] for i in asked]
        answers = [values[i * self.num_needle_v + j] for i in asked for j in range(self.num_needle_v)]
        query = ", ".join(queries[:-1]) + ", and " + queries[-1] if len(queries) > 1 else queries[0]

        frame = self._frame(ctx, query)
        sep = " " if self.type_haystack == "essay" else "\n"
        needle_counts = count_pieces(ctx.tokenizer, [sep + n for n in needles])
        fixed = count_tokens(ctx.tokenizer, frame.prompt("")) + int(needle_counts.sum())
        what = f"niah ({self.type_haystack} haystack) at length {ctx.length}"
        meta = {"haystack": self.type_haystack}
        if self.type_haystack == "essay":
            fitted, pos, offsets = self._fit_essay(ctx, rng, frame, needles, fixed, needle_counts, what)
        else:
            fitted, pos, offsets, meta["cut_lines"] = self._fit_lines(
                ctx, rng, frame, needles, fixed, needle_counts, keys, what
            )
        head = count_tokens(ctx.tokenizer, frame.head)
        meta |= {
            "haystack_units": fitted.n,
            "needle_depths": pos,
            "needle_token_positions": [head + o for o in offsets],
            "needles": needles,
            "queries": queries,
        }
        prompt = fitted.text
        length = fitted.tokens + ctx.tokens_to_generate
        require_fill(what, ctx, length)
        return Sample(prompt[: len(prompt) - len(frame.answer_prefix)], frame.answer_prefix, answers, length, meta)

    def _fit_essay(self, ctx, rng, frame, needles, fixed, needle_counts, what):
        """Needles between sentences of the first n corpus words, at RULER's depths (n searched)."""
        hay = haystacks.essay(ctx.tokenizer, ctx.budget, ctx.options.get("haystack"))
        depths = sorted(haystacks.DEPTHS[i] for i in rng.choice(len(haystacks.DEPTHS), size=len(needles), replace=False))
        positions = lambda n: [int(hay.num_groups(n) * d / 100) for d in depths]  # noqa: E731
        fitted, pos = self._fit(ctx, hay, positions, 0, frame, needles, fixed, needle_counts, what)
        return fitted, [d / 100 for d in depths], pos

    def _fit_lines(self, ctx, rng, frame, needles, fixed, needle_counts, keys, what):
        """Needles before random distinct lines of the first n lines (n searched; below
        `haystacks.CUT_LINES_BELOW` possibly n sentences or distractor words, the last line cut).
        Returns (fitted, depths, needle token offsets, cut_lines)."""
        if self.type_haystack == "noise":
            stream = haystacks.noise_lines(ctx.tokenizer, ctx.budget)
        else:
            stream = haystacks.needle_lines(
                ctx.tokenizer, ctx.budget, rng, self.type_needle_k, self.type_needle_v, frozenset(keys)
            )
        seed = int(rng.integers(2**63))

        def fit_with(hay):
            positions = lambda n: haystacks.line_positions(seed, hay.num_groups(n), len(needles))  # noqa: E731
            n_min = hay.units_for_groups(len(needles))
            fitted, pos = self._fit(ctx, hay, positions, n_min, frame, needles, fixed, needle_counts, what)
            depths = [round(p / hay.num_groups(fitted.n), 4) for p in positions(fitted.n)]
            return fitted, depths, pos

        (fitted, depths, pos), cut = haystacks.fit_lines(ctx, stream, fit_with)
        return fitted, depths, pos, cut

    @staticmethod
    def _fit(ctx, hay, positions, n_min, frame, needles, fixed, needle_counts, what):
        """The fitted prompt with needles before groups `positions(n)` of the first n units, and each
        needle's estimated token offset in the context (exact for a byte tokenizer)."""
        fitted = fit(
            build=lambda n: frame.prompt(hay.join(n, positions(n), needles)),
            estimate=lambda n: fixed + int(hay.cum[n]),
            n_min=n_min,
            n_max=len(hay),
            budget=ctx.budget,
            tokenizer=ctx.tokenizer,
            what=what,
        )
        offsets = np.concatenate([[0], np.cumsum(needle_counts)[:-1]])
        token_offsets = [int(hay.cum[hay.unit_offset(p)] + o) for p, o in zip(positions(fitted.n), offsets)]
        return fitted, token_offsets
