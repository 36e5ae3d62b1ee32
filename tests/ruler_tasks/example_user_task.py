"""A user task in one Python file (the README's worked example): repeat a secret word hidden in noise.

Load it with `RULER_TASKS=path/to/this.py` or `python -m runners.prepare --task-file path/to/this.py`.
"""

import numpy as np

from ruler_tasks import haystacks
from ruler_tasks.base import Context, PromptFrame, Sample, TaskGenerator
from ruler_tasks.length_fit import count_tokens, fit
from ruler_tasks.registry import register_generator
from ruler_tasks.words import random_values


@register_generator("secret_word")
class SecretWord(TaskGenerator):
    version = "1"
    tokens_to_generate = 16

    def __init__(self, *, repeats: int = 1):
        self.repeats = repeats

    def sample(self, ctx: Context, rng: np.random.Generator) -> Sample:
        word = random_values("words", rng, 1)[0]
        needle = f"The secret word is {word}."
        frame = PromptFrame.build(ctx, "Remember the secret word.\n{context}\nWhat is the secret word?", " The secret word is")
        hay = haystacks.noise_lines(ctx.tokenizer, ctx.budget)
        seed = int(rng.integers(2**63))
        needles = [needle] * self.repeats
        fixed = count_tokens(ctx.tokenizer, frame.prompt("")) + self.repeats * count_tokens(ctx.tokenizer, "\n" + needle)
        context = lambda n: hay.join(n, haystacks.line_positions(seed, hay.num_groups(n), self.repeats), needles)  # noqa: E731
        fitted = fit(
            build=lambda n: frame.prompt(context(n)),
            estimate=lambda n: fixed + int(hay.cum[n]),
            n_min=hay.units_for_groups(self.repeats), n_max=len(hay), budget=ctx.budget, tokenizer=ctx.tokenizer,
            what="secret_word",
        )
        return Sample(frame.input(context(fitted.n)), frame.answer_prefix, [word], fitted.tokens + ctx.tokens_to_generate, {})


TASKS = {"secret_word": {"generator": "secret_word", "args": {"repeats": 2}}}
