"""What turns a batch of samples into predictions: the model (ModelPredictor) or a test double.

A predictor maps samples (dicts as prepared: input, answer_prefix, max_new_tokens, ...) to one
`Prediction` per sample. The model is prompted with `input + answer_prefix` (RULER's own runner once
dropped the prefix; we never do), greedy-decodes up to the task's `max_new_tokens` and stops at EOS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

from common.errors import UserError


@dataclass(frozen=True)
class Prediction:
    """pred: the decoded continuation (EOS excluded); prompt_tokens/pred_tokens: token counts;
    prefill_s/decode_s: this sample's share of its batch's steady-state time (batch time / batch size), so
    that sums over samples give totals and sum(tokens) / sum(seconds) gives throughput; compile_s: its
    share of the compilation its batch triggered."""

    pred: str
    prompt_tokens: int
    pred_tokens: int
    prefill_s: float
    decode_s: float
    compile_s: float = 0.0


class Predictor(Protocol):
    def predict(self, samples: Sequence[dict]) -> list[Prediction]: ...


def prompt_text(sample: dict) -> str:
    """The exact text the model is prompted with: the sample's input, then its answer prefix."""
    return sample["input"] + sample["answer_prefix"]


def prompt_length(config, tokenizer, sample: dict) -> int:
    """The sample's length as RULER counts it: prompt tokens (no BOS; the model's BOS is the one token
    eval adds on top, checked against max_context) plus max_new_tokens."""
    from model_adapters.generation import prompt_ids

    return len(prompt_ids(config, tokenizer, prompt_text(sample), bos=False)) + int(sample["max_new_tokens"])


class ModelPredictor:
    """Greedy generation with a loaded checkpoint; a batch is sharded over `mesh`'s "data" axis if given.

    With a mesh of n devices, a batch is padded to a multiple of n with copies of its first prompt (their
    outputs are dropped), so every device gets the same number of rows.
    """

    def __init__(self, model, tokenizer, *, prefill_chunk: int, impl: str | None = None, mesh=None):
        self.model = model
        self.tokenizer = tokenizer
        self.prefill_chunk = prefill_chunk
        self.impl = impl
        self.mesh = mesh

    def predict(self, samples: Sequence[dict]) -> list[Prediction]:
        from model_adapters.generation import NonFiniteLogitsError, generate_greedy, prompt_ids, stop_id, strip_stop

        config = self.model.config
        eos = stop_id(config, self.tokenizer)
        prompts = [prompt_ids(config, self.tokenizer, prompt_text(s)) for s in samples]
        max_new = max(int(s["max_new_tokens"]) for s in samples)
        rows = len(prompts)
        if self.mesh is not None:
            n_dev = self.mesh.devices.size
            prompts = prompts + [prompts[0]] * (-rows % n_dev)
        try:
            result = generate_greedy(
                self.model, prompts, max_new_tokens=max_new, prefill_chunk=self.prefill_chunk,
                eos_id=eos, impl=self.impl, mesh=self.mesh, vocab_limit=self.tokenizer.vocab_size,
            )
        except NonFiniteLogitsError as e:
            ids = ", ".join(f"{s['task']}@{s['meta'].get('target_length', s['length'])}#{s['index']}" for s in samples)
            raise UserError(f"non-finite logits in the batch of samples {ids}: {e}; check the checkpoint's parameters") from None
        out = []
        for sample, prompt, tokens in zip(samples, prompts[:rows], result.tokens[:rows]):
            tokens = strip_stop(tokens[: int(sample["max_new_tokens"])], eos)
            out.append(Prediction(
                pred=self.tokenizer.decode(tokens),
                prompt_tokens=len(prompt),
                pred_tokens=len(tokens),
                prefill_s=result.prefill_s / rows,
                decode_s=result.decode_s / rows,
                compile_s=result.compile_s / rows,
            ))
        return out


def peak_device_memory() -> int | None:
    """Peak bytes in use on the first local device where the backend reports it (GPU/TPU), else None."""
    import jax

    stats = jax.local_devices()[0].memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    return int(peak) if peak is not None else None
