"""The generator interface every task implements (built-in tasks, QA, and user tasks alike).

A task is a `TaskGenerator` subclass built from its YAML `args` (keyword arguments to `__init__`),
registered under a generator name with `ruler_tasks.registry.register_generator`. It implements

    sample(ctx: Context, rng: np.random.Generator) -> Sample

which draws one sample whose prompt fits `ctx.length` (see `ruler_tasks.length_fit`). The shared
`generate(ctx, rng, count, start_index)` (and `iter_generate`) gives sample `i` its own child of rng's
seed sequence, so sample i does not depend on how many samples are drawn: a file of 10 is the prefix
of a file of 20.
`prepare(ctx)` may cache per-(length, tokenizer) work (token counts of haystack pieces) before sampling.

Prompt layout (RULER's): `input = chat.before + prelude + task_head + context + task_tail + chat.after`,
then `answer_prefix`; the model is prompted with `input + answer_prefix`. `Sample.length` counts the
tokens of exactly that string plus `ctx.tokens_to_generate`, and must be <= `ctx.length`.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Iterator, Mapping

import numpy as np

from common.errors import UserError
from ruler_tasks.chat_templates import ChatTemplate

MIN_FILL = 0.95  # every sample's length is at least this fraction of its target (README, "Length")


@dataclass(frozen=True)
class Context:
    """What a generator needs besides randomness.

    length: the target (prompt tokens + tokens_to_generate must be <= length).
    tokenizer: anything with encode/decode (model_adapters.tokenizers); `encode_batch`/`count` are used
        when present. options: run-time paths and switches (`haystack`, `squad`, `hotpotqa`, ...).
    index: the sample's ordinal, set by `iter_generate` (RULER's QA takes question `index` in file order).
    seed: the run's seed (RULER's --random_seed), for what RULER draws once per run rather than per sample
        (CWE's word order, VT's one-shot example).
    """

    length: int
    tokens_to_generate: int
    tokenizer: Any
    chat: ChatTemplate
    options: Mapping[str, str] = field(default_factory=dict)
    index: int = 0
    seed: int = 42

    @property
    def budget(self) -> int:
        """Tokens available to the prompt (input + answer prefix)."""
        return self.length - self.tokens_to_generate


def require_fill(what: str, ctx: Context, length: int) -> None:
    """Refuses a sample whose `length` (prompt + tokens_to_generate) is under MIN_FILL of the target."""
    if length < MIN_FILL * ctx.length:
        raise UserError(
            f"{what}: a sample fills only {length} of {ctx.length} tokens (< {MIN_FILL:.0%}); "
            f"the task cannot fill this length with this tokenizer"
        )


@dataclass(frozen=True)
class Sample:
    """One generated sample (the runner adds index, task, max_new_tokens and seed)."""

    input: str
    answer_prefix: str
    outputs: list[str]
    length: int
    meta: dict


@dataclass(frozen=True)
class PromptFrame:
    """The fixed text around a sample's context: `head + context + tail`, then `answer_prefix`."""

    head: str
    tail: str
    answer_prefix: str

    @classmethod
    def build(
        cls, ctx: Context, template: str, answer_prefix: str, prelude: str = "", preamble: str = "", **fields
    ) -> PromptFrame:
        """Formats `template` (one `{context}` slot) and `answer_prefix` with `fields`, wrapped in the chat
        template; a one-shot example goes between the chat template and the task text (`prelude`, as
        RULER's VT) or before the chat template (`preamble`, as RULER's CWE)."""
        head, tail = template.split("{context}")
        return cls(
            head=preamble + ctx.chat.before + prelude + head.format(**fields),
            tail=tail.format(**fields) + ctx.chat.after,
            answer_prefix=answer_prefix.format(**fields),
        )

    def input(self, context: str) -> str:
        return self.head + context + self.tail

    def prompt(self, context: str) -> str:
        """The exact text the model is prompted with (and whose tokens are counted)."""
        return self.head + context + self.tail + self.answer_prefix


class TaskGenerator(abc.ABC):
    """Base class of task generators. Class attributes are defaults a YAML entry may override."""

    version: ClassVar[str] = "1"
    tokens_to_generate: ClassVar[int] = 128
    metric: ClassVar[str] = "string_match_all"
    needs_data: ClassVar[bool] = False

    def data_missing(self, options: Mapping[str, str]) -> str | None:
        """None when the generator can run; else one line saying which files are missing and where to
        put them (tasks that need data override this; the runner skips the task with that line)."""
        return None

    def data_id(self, options: Mapping[str, str]) -> str | None:
        """A fingerprint of the external data the samples are drawn from (None: no external data), so
        that the prepare runner detects a changed data file instead of mixing samples from two."""
        return None

    def prepare(self, ctx: Context) -> None:
        """Per-(length, tokenizer) work shared by all samples (default: none)."""

    @abc.abstractmethod
    def sample(self, ctx: Context, rng: np.random.Generator) -> Sample:
        """One sample whose `length` is <= ctx.length (and >= 95% of it where the task allows)."""

    def iter_generate(
        self, ctx: Context, rng: np.random.Generator, count: int, start_index: int = 0
    ) -> Iterator[Sample]:
        """Samples start_index .. start_index + count - 1; sample i uses child i of `rng`'s seed sequence
        (what `rng.spawn` would give, without consuming `rng`: the same rng gives the same samples)."""
        self.prepare(ctx)
        seq = rng.bit_generator.seed_seq
        for i in range(start_index, start_index + count):
            child = np.random.SeedSequence(seq.entropy, spawn_key=tuple(seq.spawn_key) + (i,), pool_size=seq.pool_size)
            yield self.sample(replace(ctx, index=i), np.random.default_rng(child))

    def generate(self, ctx: Context, rng: np.random.Generator, count: int, start_index: int = 0) -> list[Sample]:
        return list(self.iter_generate(ctx, rng, count, start_index))
