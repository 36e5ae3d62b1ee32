"""Greedy generation: bucketed left padding, chunked prefill, then a jitted decode loop.

    generate_greedy(model, prompts, max_new_tokens=..., prefill_chunk=..., eos_id=..., impl=...)

A batch of prompts of different lengths is left-padded to one bucketed length P; `kv_start[b] = P - n_b`
tells every layer which positions are pads (never attended to, never folded into a state), and RoPE
counts from each row's first real token, so a row's logits equal those of the prompt run alone. P is a
multiple of the chunk, so every prefill chunk has one shape; global layers' KV caches have a bucketed
length, so a handful of shapes compile, never one per chunk, prompt or token. Decoding is one
`lax.while_loop` under jit, stopping when every row has emitted EOS or max_new_tokens tokens.

The jitted functions take the model's state as an argument (nnx.split), so a batch sharded over devices
with jax.sharding runs unchanged. Each shape is compiled ahead of time (jit(...).lower().compile()) and the
executable kept, so `compile_s` is reported apart and `prefill_s` / `decode_s` are steady-state times.

The prompt rules live here too: `prompt_ids` (BOS first when the config has bos_id), `stop_id` (the
config's eos_id, else the tokenizer's) and `strip_stop`.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import NamedTuple

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


def prompt_ids(config, tokenizer, text: str, *, bos: bool = True) -> list[int]:
    """The token ids a prompt runs as: the config's bos_id first (if any and `bos`), then the text's.
    BOS comes once: a text that already starts with it (a chat template that writes it) gets no second."""
    ids = list(tokenizer.encode(text))
    add = bos and config.bos_id is not None and ids[:1] != [config.bos_id]
    return ([config.bos_id] if add else []) + ids


def stop_id(config, tokenizer) -> int | None:
    """The token that ends generation: the config's eos_id, else the tokenizer's, else None."""
    return config.eos_id if config.eos_id is not None else getattr(tokenizer, "eos_id", None)


def strip_stop(tokens: list[int], eos: int | None) -> list[int]:
    """The new tokens without the EOS that stopped them."""
    return tokens[:-1] if tokens and eos is not None and tokens[-1] == eos else tokens


class NonFiniteLogitsError(RuntimeError):
    """The model produced NaN or Inf at a real position; the message names the first layer (and its kind)."""


@dataclass(frozen=True)
class GenerationResult:
    tokens: list[list[int]]  # per prompt: the new tokens, the EOS that stopped it included
    logits: list[np.ndarray] | None  # per prompt: float32 [len(tokens), vocab], the distribution each token came from
    prefill_s: float  # steady state: compilation excluded
    decode_s: float
    compile_s: float  # ahead-of-time compilation of shapes first seen in this call (0 once compiled)
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
    logits, caches, nan = model.forward_chunk(tokens, caches, kv_start=kv_start, impl=impl, last_only=True)
    return logits[:, 0], caches, nan


class DecodeState(NamedTuple):
    """The carry of the greedy loop (B rows, N = max_new_tokens, V = vocab)."""

    step: jax.Array  # int32 scalar: tokens emitted so far
    logits: jax.Array  # [B,V] f32: the distribution the next token is chosen from
    caches: tuple  # per-layer caches
    tokens: jax.Array  # [B,N] int32: emitted tokens
    done: jax.Array  # [B] bool: the row emitted EOS
    n_new: jax.Array  # [B] int32: tokens that count (up to and including EOS)
    logits_buf: jax.Array  # [B,N,V] f32 when logits are returned, else [B,0,V]
    nonfinite: jax.Array  # [layers] bool: a layer produced NaN or Inf


@functools.partial(
    jax.jit, static_argnames=("graphdef", "impl", "max_new_tokens", "eos_id", "return_logits", "vocab_limit")
)
def run_decode_loop(graphdef, state, first_logits, caches, kv_start, nan, impl, max_new_tokens, eos_id, return_logits,
                    vocab_limit=None):
    """Greedy loop from the prompt's last logits [B,V], choosing among ids below `vocab_limit` (all V if None).

    Returns (tokens [B,N] int32, n_new [B] int32, logits [B,N,V] f32 or None, nonfinite_per_layer [layers]).
    """
    model = nnx.merge(graphdef, state)
    batch, vocab = first_logits.shape
    eos = -1 if eos_id is None else eos_id

    def cond(s: DecodeState):
        return (s.step < max_new_tokens) & ~jnp.all(s.done)

    def body(s: DecodeState) -> DecodeState:
        token = jnp.argmax(s.logits[:, :vocab_limit], axis=-1).astype(jnp.int32)  # [B]
        logits_buf = s.logits_buf.at[:, s.step].set(s.logits) if return_logits else s.logits_buf
        logits, caches, step_bad = model.forward_chunk(token[:, None], s.caches, kv_start=kv_start, impl=impl)
        return DecodeState(
            step=s.step + 1, logits=logits[:, 0], caches=caches, tokens=s.tokens.at[:, s.step].set(token),
            done=s.done | (token == eos), n_new=jnp.where(s.done, s.n_new, s.step + 1), logits_buf=logits_buf,
            nonfinite=s.nonfinite | step_bad,
        )

    start = DecodeState(
        step=jnp.int32(0), logits=first_logits, caches=caches, tokens=jnp.zeros((batch, max_new_tokens), jnp.int32),
        done=jnp.zeros((batch,), bool), n_new=jnp.zeros((batch,), jnp.int32),
        logits_buf=jnp.zeros((batch, max_new_tokens if return_logits else 0, vocab), jnp.float32), nonfinite=nan,
    )
    end = jax.lax.while_loop(cond, body, start)
    return end.tokens, end.n_new, (end.logits_buf if return_logits else None), end.nonfinite


_EXECUTABLES: dict = {}  # (function, static args, argument shapes/dtypes/shardings) -> compiled executable


def _signature(x):
    return (tuple(np.shape(x)), str(getattr(x, "dtype", type(x))), getattr(x, "sharding", None))


def compiled(fn, statics: dict, args: dict) -> tuple[object, float]:
    """`fn` (a jitted function) compiled ahead of time for these arguments, and the seconds compiling took
    in this call (0.0 when this shape was compiled before). Call the result with the non-static `args`."""
    key = (fn, tuple(sorted(statics.items())), jax.tree.structure(args), tuple(map(_signature, jax.tree.leaves(args))))
    if key in _EXECUTABLES:
        return _EXECUTABLES[key], 0.0
    t0 = time.perf_counter()
    executable = fn.lower(**statics, **args).compile()
    _EXECUTABLES[key] = executable
    return executable, time.perf_counter() - t0


def _check_finite(nonfinite, layer_kinds, phase: str) -> None:
    nonfinite = np.asarray(nonfinite)
    if nonfinite.any():
        first = int(np.argmax(nonfinite))
        kinds = sorted({layer_kinds[i] for i in np.flatnonzero(nonfinite)})
        raise NonFiniteLogitsError(
            f"NaN or Inf during {phase}: first at layer {first} ({layer_kinds[first]}); "
            f"layer kinds with NaN or Inf: {', '.join(kinds)}"
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
    vocab_limit: int | None = None,
) -> GenerationResult:
    """Greedy continuation of each prompt (token ids). Raises UserError for an empty or too-long prompt.

    `vocab_limit` (the tokenizer's id count) keeps the choice among ids the tokenizer can decode, where the
    model's vocab_size is padded past it (axlearn pads to a multiple of 128, say); None allows every id.

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
    chunks = [put_batch(tokens[:, start:start + chunk]) for start in range(0, padded, chunk)]
    prefill, compile_prefill_s = compiled(
        run_prefill_chunk, {"graphdef": graphdef, "impl": impl},
        {"state": state, "tokens": chunks[0], "caches": caches, "kv_start": kv_start},
    )
    t0 = time.perf_counter()
    for chunk_tokens in chunks:
        last_logits, caches, chunk_nan = prefill(state=state, tokens=chunk_tokens, caches=caches, kv_start=kv_start)
        nan = nan | chunk_nan
    jax.block_until_ready(last_logits)
    prefill_s = time.perf_counter() - t0
    _check_finite(nan, config.layer_kinds, "prefill")

    decode, compile_decode_s = compiled(
        run_decode_loop,
        {"graphdef": graphdef, "impl": impl, "max_new_tokens": max_new_tokens, "eos_id": eos_id,
         "return_logits": return_logits, "vocab_limit": vocab_limit},
        {"state": state, "first_logits": last_logits, "caches": caches, "kv_start": kv_start, "nan": nan},
    )
    t0 = time.perf_counter()
    new_tokens, n_new, logits_buf, nan = decode(
        state=state, first_logits=last_logits, caches=caches, kv_start=kv_start, nan=nan
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
        compile_s=compile_prefill_s + compile_decode_s,
        prompt_padded=padded,
        cache_len=cache_len,
    )
