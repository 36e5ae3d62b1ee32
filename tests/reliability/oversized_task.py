"""A faulty user task: its samples ignore their budget (about 6,000 tokens whatever the target length)."""

import numpy as np

from ruler_tasks.base import Context, Sample, TaskGenerator
from ruler_tasks.registry import register_generator


@register_generator("oversized")
class Oversized(TaskGenerator):
    version = "1"
    tokens_to_generate = 8

    def sample(self, ctx: Context, rng: np.random.Generator) -> Sample:
        word = f"w{int(rng.integers(1000))}"
        return Sample("filler line.\n" * 470 + f"The word is {word}.", " The word is", [word], ctx.length, {})


TASKS = {"oversized": {"generator": "oversized"}}
