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
    prefill_s/decode_s: this sample's share of its batch's wall time (batch time / batch size), so that
    sums over samples give totals and sum(tokens) / sum(seconds) gives throughput."""

    pred: str
    prompt_tokens: int
    pred_tokens: int
    prefill_s: float
    decode_s: float


class Predictor(Protocol):
    def predict(self, samples: Sequence[dict]) -> list[Prediction]: ...


def prompt_text(sample: dict) -> str:
    """The exact text the model is prompted with: the sample's input, then its answer prefix."""
    return sample["input"] + sample["answer_prefix"]


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
        config = model.config
        self.bos_id = config.bos_id
        self.eos_id = config.eos_id if config.eos_id is not None else getattr(tokenizer, "eos_id", None)

    def encode(self, sample: dict) -> list[int]:
        ids = self.tokenizer.encode(prompt_text(sample))
        return ([self.bos_id] if self.bos_id is not None else []) + list(ids)

    def predict(self, samples: Sequence[dict]) -> list[Prediction]:
        from model_adapters.generation import NonFiniteLogitsError, generate_greedy

        prompts = [self.encode(s) for s in samples]
        max_new = max(int(s["max_new_tokens"]) for s in samples)
        rows = len(prompts)
        if self.mesh is not None:
            n_dev = self.mesh.devices.size
            prompts = prompts + [prompts[0]] * (-rows % n_dev)
        try:
            result = generate_greedy(
                self.model, prompts, max_new_tokens=max_new, prefill_chunk=self.prefill_chunk,
                eos_id=self.eos_id, impl=self.impl, mesh=self.mesh,
            )
        except NonFiniteLogitsError as e:
            ids = ", ".join(f"{s['task']}@{s['length']}#{s['index']}" for s in samples)
            raise UserError(f"NaN logits in the batch of samples {ids}: {e}") from None
        out = []
        for sample, prompt, tokens in zip(samples, prompts[:rows], result.tokens[:rows]):
            tokens = tokens[: int(sample["max_new_tokens"])]
            if tokens and self.eos_id is not None and tokens[-1] == self.eos_id:
                tokens = tokens[:-1]
            out.append(Prediction(
                pred=self.tokenizer.decode(tokens),
                prompt_tokens=len(prompt),
                pred_tokens=len(tokens),
                prefill_s=result.prefill_s / rows,
                decode_s=result.decode_s / rows,
            ))
        return out


def peak_device_memory() -> int | None:
    """Peak bytes in use on the first local device where the backend reports it (GPU/TPU), else None."""
    import jax

    stats = jax.local_devices()[0].memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    return int(peak) if peak is not None else None


def host_peak_rss() -> int:
    """Peak resident memory of this process in bytes (Linux reports ru_maxrss in KiB)."""
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024

