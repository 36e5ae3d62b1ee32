"""Greedy generation: bucketed left padding, chunked prefill, then a jitted decode loop.

    generate_greedy(model, prompts, max_new_tokens=..., prefill_chunk=..., eos_id=..., impl=...)

A batch of prompts of different lengths is left-padded to one bucketed length P; `kv_start[b] = P - n_b`
tells every layer which positions are pads (never attended to, never folded into a state), and RoPE
counts from each row's first real token, so a row's logits equal those of the prompt run alone. P is a
multiple of the chunk, so every prefill chunk has one shape; global layers' KV caches have a bucketed
length, so a handful of shapes compile, never one per chunk, prompt or token. Decoding is one
`lax.while_loop` under jit, stopping when every row has emitted EOS or max_new_tokens tokens.

The jitted functions take the model's state as an argument (nnx.split), so a batch sharded over devices
with jax.sharding runs unchanged.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from common.errors import UserError

MIN_BUCKET = 16


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def prompt_bucket(longest: int, prefill_chunk: int) -> tuple[int, int]:
    """(padded prompt length P, chunk size) for a batch whose longest prompt has `longest` tokens.

    Short batches (<= prefill_chunk) pad to the next power of two (>= MIN_BUCKET, <= the chunk) and run as one chunk;
    longer ones pad to a multiple of prefill_chunk.
    """
    if longest <= prefill_chunk:
        size = min(max(MIN_BUCKET, 1 << (longest - 1).bit_length()), prefill_chunk)
        return size, size
    return round_up(longest, prefill_chunk), prefill_chunk


def cache_bucket(total: int, chunk: int) -> int:
    """Global layers' KV cache length for `total` = P + max_new_tokens positions: a multiple of the chunk."""
    return round_up(total, chunk)


class NonFiniteLogitsError(RuntimeError):
    """The model produced NaN at a real position; the message names the first layer (and its kind)."""


@dataclass(frozen=True)
class GenerationResult:
    tokens: list[list[int]]  # per prompt: the new tokens, the EOS that stopped it included
    logits: list[np.ndarray] | None  # per prompt: float32 [len(tokens), vocab], the distribution each token came from
    prefill_s: float
    decode_s: float
    prompt_padded: int  # the bucketed prompt length P the batch ran at
    cache_len: int  # global layers' KV cache length


@functools.partial(jax.jit, static_argnames=("graphdef", "batch", "cache_len"))
def init_caches_on_device(graphdef, state, batch, cache_len):
    """Per-layer caches as distinct device buffers (the prefill donates them)."""
    return nnx.merge(graphdef, state).init_caches(batch, cache_len)


@functools.partial(jax.jit, static_argnames=("graphdef", "impl"), donate_argnames=("caches",))
def run_prefill_chunk(graphdef, state, tokens, caches, kv_start, impl):
    """tokens [B,C] -> (logits of the chunk's last position [B,V] f32, caches, nan_per_layer)."""
    model = nnx.merge(graphdef, state)
    logits, caches, nan = model.forward_chunk(tokens, caches, kv_start=kv_start, impl=impl)
    return logits[:, -1], caches, nan


@functools.partial(
    jax.jit, static_argnames=("graphdef", "impl", "max_new_tokens", "eos_id", "return_logits")
)
def run_decode_loop(graphdef, state, first_logits, caches, kv_start, nan, impl, max_new_tokens, eos_id, return_logits):
    """Greedy loop from the prompt's last logits [B,V].

    Returns (tokens [B,N] int32, n_new [B] int32, logits [B,N,V] f32 or None, nan_per_layer [layers]).
    """
    model = nnx.merge(graphdef, state)
    batch, vocab = first_logits.shape
    eos = -1 if eos_id is None else eos_id

    def cond(carry):
        i, _, _, _, done, *_ = carry
        return (i < max_new_tokens) & ~jnp.all(done)

    def body(carry):
        i, logits, caches, tokens, done, n_new, logits_buf, nan = carry
        token = jnp.argmax(logits, axis=-1).astype(jnp.int32)  # [B]
        tokens = tokens.at[:, i].set(token)
        if return_logits:
            logits_buf = logits_buf.at[:, i].set(logits)
        n_new = jnp.where(done, n_new, i + 1)
        done = done | (token == eos)
        logits, caches, step_nan = model.forward_chunk(token[:, None], caches, kv_start=kv_start, impl=impl)
        return i + 1, logits[:, 0], caches, tokens, done, n_new, logits_buf, nan | step_nan

    logits_buf = jnp.zeros((batch, max_new_tokens if return_logits else 0, vocab), jnp.float32)
    carry = (jnp.int32(0), first_logits, caches, jnp.zeros((batch, max_new_tokens), jnp.int32),
             jnp.zeros((batch,), bool), jnp.zeros((batch,), jnp.int32), logits_buf, nan)
    _, _, _, tokens, _, n_new, logits_buf, nan = jax.lax.while_loop(cond, body, carry)
    return tokens, n_new, (logits_buf if return_logits else None), nan


def _check_finite(nan, layer_kinds, phase: str) -> None:
    nan = np.asarray(nan)
    if nan.any():
        first = int(np.argmax(nan))
        kinds = sorted({layer_kinds[i] for i in np.flatnonzero(nan)})
        raise NonFiniteLogitsError(
            f"NaN during {phase}: first at layer {first} ({layer_kinds[first]}); layer kinds with NaN: {', '.join(kinds)}"
        )


def generate_greedy(
    model,
    prompts: list[list[int]],
    *,
    max_new_tokens: int,
    prefill_chunk: int = 2048,
    eos_id: int | None = None,
    impl: str | None = None,
    return_logits: bool = False,
    mesh: jax.sharding.Mesh | None = None,
) -> GenerationResult:
    """Greedy continuation of each prompt (token ids). Raises UserError for an empty or too-long prompt.

    With `mesh` (a mesh with a "data" axis whose size divides the batch), the batch axis of the tokens,
    kv_start and every cache is sharded over "data" and the parameters are replicated: data parallel.
    """
    config = model.config
    if not prompts:
        raise UserError("no prompts given; pass at least one prompt")
    if max_new_tokens < 1:
        raise UserError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if prefill_chunk < 1:
        raise UserError(f"prefill chunk must be >= 1, got {prefill_chunk}")
    for i, p in enumerate(prompts):
        if not p:
            raise UserError(f"prompt {i} is empty; give at least one token")
        if len(p) + max_new_tokens > config.max_context:
            raise UserError(
                f"prompt {i} has {len(p)} tokens + {max_new_tokens} new > max_context {config.max_context} of this "
                f"model; shorten the prompt or lower max_new_tokens"
            )
    padded, chunk = prompt_bucket(max(len(p) for p in prompts), prefill_chunk)
    cache_len = cache_bucket(padded + max_new_tokens, chunk)
    batch = len(prompts)
    tokens = np.zeros((batch, padded), np.int32)
    for b, p in enumerate(prompts):
        tokens[b, padded - len(p):] = p
    kv_start = np.asarray([padded - len(p) for p in prompts], np.int32)

    graphdef, state = nnx.split(model)
    put_batch = jnp.asarray
    if mesh is not None:
        if batch % mesh.shape["data"]:
            raise ValueError(f"{batch=} must be a multiple of the mesh's data axis ({mesh.shape['data']})")
        replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
        by_row = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
        state = jax.device_put(state, replicated)

        def put_batch(x):
            return jax.device_put(x, by_row if np.ndim(x) else replicated)

    kv_start = put_batch(kv_start)
    caches = jax.tree.map(put_batch, init_caches_on_device(graphdef, state, batch, cache_len))
    nan = jnp.zeros((config.num_layers,), bool)
    t0 = time.perf_counter()
    for start in range(0, padded, chunk):
        last_logits, caches, chunk_nan = run_prefill_chunk(
            graphdef, state, put_batch(tokens[:, start:start + chunk]), caches, kv_start, impl
        )
        nan = nan | chunk_nan
    jax.block_until_ready(last_logits)
    prefill_s = time.perf_counter() - t0
    _check_finite(nan, config.layer_kinds, "prefill")

    t0 = time.perf_counter()
    new_tokens, n_new, logits_buf, nan = run_decode_loop(
        graphdef, state, last_logits, caches, kv_start, nan, impl, max_new_tokens, eos_id, return_logits
    )
    new_tokens, n_new = np.asarray(new_tokens), np.asarray(n_new)
    decode_s = time.perf_counter() - t0
    _check_finite(nan, config.layer_kinds, "decode")
    logits = None if logits_buf is None else np.asarray(logits_buf)
    return GenerationResult(
        tokens=[new_tokens[b, : n_new[b]].tolist() for b in range(batch)],
        logits=None if logits is None else [logits[b, : n_new[b]] for b in range(batch)],
        prefill_s=prefill_s,
        decode_s=decode_s,
        prompt_padded=padded,
        cache_len=cache_len,
    )
