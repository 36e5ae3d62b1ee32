"""The one dispatcher: the public ops, each routed to an implementation of its core.

`impl` is "reference" | "xla" | "pallas" | None; "cudnn" is also accepted for full-sequence SWA.
None walks the backend's ordered table below and takes the first implementation that accepts the call
(each declining one logs why). "pallas" means the TPU (Mosaic) kernel on TPU and in TPU interpret mode
on CPU, and the GPU (Triton) kernel on GPU (its generic interpret mode is exercised by the tests). Decode steps have one fused jnp step for every impl but "reference".
"""

from __future__ import annotations

import functools
import logging

import jax
import jax.numpy as jnp

from kernels import decode
from kernels.cache import (
    GlobalCache,
    RAttentionCache,
    SWACache,
    first_valid,
    initial_state_for,
    kv_start_or_zeros,
    ring_from_order,
    ring_in_order,
    ring_write,
)
from kernels.feature_maps import check_feature_map
from kernels.global_attention.blocked import DEFAULT_BLOCK_K, attention_key_blocked, attention_query_blocked
from kernels.global_attention.reference import extend_cache, global_chunk_reference, global_reference
from kernels.linear_attention.chunked import balanced_chunks_per_state, rla_chunked
from kernels.linear_attention.reference import rla_reference
from kernels.sliding_window.chunked import swa_blocked
from kernels.sliding_window.reference import swa_reference

log = logging.getLogger(__name__)

IMPLS = ("reference", "xla", "pallas", "cudnn")
MODEL_IMPLS = ("reference", "xla", "pallas")  # what a whole model accepts: every op has these (cudnn: SWA only)

# Ordered candidates for impl=None, per op and backend (jax.default_backend()).
AUTO = {
    "rla": {"tpu": ("pallas", "xla"), "gpu": ("pallas", "xla"), "cpu": ("xla",)},
    "swa": {"tpu": ("pallas", "xla"), "gpu": ("cudnn", "pallas", "xla"), "cpu": ("xla",)},
    "swa_chunk": {"tpu": ("pallas", "xla"), "gpu": ("pallas", "xla"), "cpu": ("xla",)},
}


def _pallas_module(op: str):
    """The GPU (Triton) kernels on GPU; else the TPU (Mosaic) kernels, which run in TPU interpret mode on CPU."""
    if jax.default_backend() == "gpu":
        if op == "rla":
            from kernels.linear_attention import pallas_gpu as module
        else:
            from kernels.sliding_window import pallas_gpu as module
    elif op == "rla":
        from kernels.linear_attention import pallas_tpu as module
    else:
        from kernels.sliding_window import pallas_tpu as module
    return module


def _decline_reason(op: str, name: str, q, k, kv_start, window: int) -> str | None:
    """Why implementation `name` cannot run this call, or None when it can."""
    if name in ("reference", "xla"):
        return None
    if name == "cudnn":  # full-sequence SWA only: _resolve refuses it for other ops, AUTO lists it for none
        if jax.default_backend() != "gpu":
            return "cuDNN needs a GPU"
        if kv_start is not None:
            return "cuDNN's local window takes no left padding (kv_start)"
        if q.dtype not in (jnp.bfloat16, jnp.float16) or q.shape[-1] % 8 or q.shape[-1] > 128:
            return f"cuDNN needs bf16/f16 and D % 8 == 0, D <= 128 (got {q.dtype}, D={q.shape[-1]})"
        return None
    return _pallas_module(op).decline_reason(q, k, window)


def _resolve(op: str, impl: str | None, q, k, kv_start, window: int) -> str:
    if impl is not None:
        if impl not in IMPLS or (impl == "cudnn" and op != "swa"):
            raise ValueError(f"impl must be one of {IMPLS[:3]} or None (cudnn: full-sequence SWA), got {impl!r}")
        reason = _decline_reason(op, impl, q, k, kv_start, window)
        if reason:
            raise ValueError(f"impl={impl!r} cannot run this call: {reason}")
        return impl
    for name in AUTO[op].get(jax.default_backend(), ("xla",)):
        reason = _decline_reason(op, name, q, k, kv_start, window)
        if reason is None:
            return name
        log.debug("%s: %s declined: %s", op, name, reason)
    raise AssertionError("xla accepts every call")


def _rla_xla(q, k, v, state, first_valid, *, shift: int, feature_map: str):
    """The chunked RLA core: one scan over the chunks on a CPU; on a GPU/TPU about sqrt(chunks) saved
    states, so that many super-chunks run in parallel (flexible state saving, chunked.py)."""
    per_state = None if jax.default_backend() == "cpu" else balanced_chunks_per_state(q.shape[1])
    return rla_chunked(q, k, v, state, first_valid, shift=shift, feature_map=feature_map, chunks_per_state=per_state)


def _rla_core(name: str):
    if name == "pallas":
        return _pallas_module("rla").rla_pallas
    return {"reference": rla_reference, "xla": _rla_xla}[name]


def _swa_core(name: str):
    if name == "pallas":
        return _pallas_module("swa").swa_pallas
    return {"reference": swa_reference, "xla": swa_blocked}[name]


def _check(q, k, v, window: int) -> None:
    if q.ndim != 4 or k.shape != v.shape or k.ndim != 4:
        raise ValueError(f"expected q [B,T,Hq,D] and k, v [B,T,Hkv,D], got {q.shape}, {k.shape}, {v.shape}")
    if q.shape[0] != k.shape[0] or q.shape[3] != k.shape[3] or q.shape[2] % k.shape[2]:
        raise ValueError(f"q {q.shape} and k {k.shape} disagree on B or D, or Hq is not a multiple of Hkv")
    if not isinstance(window, int) or window < 0:
        raise ValueError(f"window must be an int >= 0, got {window!r}")


@functools.partial(jax.jit, static_argnames=("window", "feature_map", "impl"))
def residual_linear_attention(q, k, v, *, window, feature_map="softmax", initial_state=None, kv_start=None, impl=None):
    """q [B,T,Hq,D], k, v [B,T,Hkv,D] -> (o [B,T,Hq,D] in v's dtype, final_state [B,Hq,2D,D] f32).

    o_t = phi(q_t) (S_0 + sum_{s <= t-W-1} phi(k_s)^T v_s); final_state is the state position T reads.
    """
    _check(q, k, v, window)
    check_feature_map(feature_map)
    batch, _, num_heads, head_dim = q.shape
    state = initial_state_for(batch, num_heads, head_dim, initial_state)
    name = _resolve("rla", impl, q, k, kv_start, window)
    return _rla_core(name)(
        q, k, v, state, first_valid(kv_start, batch, 0), shift=window + 1, feature_map=feature_map
    )


@functools.partial(jax.jit, static_argnames=("window", "impl"))
def sliding_window_attention(q, k, v, *, window, kv_start=None, impl=None):
    """q [B,T,Hq,D], k, v [B,T,Hkv,D] (rotated) -> o [B,T,Hq,D]: query t sees keys t-W .. t."""
    _check(q, k, v, window)
    name = _resolve("swa", impl, q, k, kv_start, window)
    if name == "cudnn":
        return jax.nn.dot_product_attention(
            q, k, v, is_causal=True, local_window_size=(window, 0), implementation="cudnn"
        )
    return _swa_core(name)(q, k, v, first_valid(kv_start, q.shape[0], 0), offset=0, window=window)


def _check_ring(ring, k, window: int) -> None:
    expected = (k.shape[0], window, *k.shape[2:])
    if ring.shape != expected:
        raise ValueError(f"cache ring has shape {ring.shape}, expected {expected} for window={window}")


def _swa_on_ring(q, k, v, ring_k, ring_v, pos, kv_start, window: int, impl):
    """SWA of a chunk after the ring: -> (o, ring_k, ring_v) with the rings advanced by T tokens."""
    keys = jnp.concatenate([ring_in_order(ring_k, pos), k.astype(ring_k.dtype)], axis=1)  # [B,W+T,Hkv,D]
    values = jnp.concatenate([ring_in_order(ring_v, pos), v.astype(ring_v.dtype)], axis=1)
    name = _resolve("swa_chunk", impl, q, keys, kv_start, window)
    fv = first_valid(kv_start, q.shape[0], pos - window)
    o = _swa_core(name)(q, keys, values, fv, offset=window, window=window)
    pos_end = pos + q.shape[1]
    return o, ring_from_order(keys[:, keys.shape[1] - window :], pos_end), ring_from_order(
        values[:, values.shape[1] - window :], pos_end
    )


@functools.partial(jax.jit, static_argnames=("window", "impl"))
def sliding_window_attention_chunk(q, k, v, cache: SWACache, *, window, kv_start=None, impl=None):
    """One prefill chunk q [B,T,Hq,D], k, v [B,T,Hkv,D] after `cache` -> (o [B,T,Hq,D], cache)."""
    _check(q, k, v, window)
    _check_ring(cache.k, k, window)
    o, ring_k, ring_v = _swa_on_ring(q, k, v, cache.k, cache.v, cache.pos, kv_start, window, impl)
    return o, SWACache(k=ring_k, v=ring_v, pos=cache.pos + q.shape[1])


@functools.partial(jax.jit, static_argnames=("window", "feature_map", "impl"))
def rattention_chunk(q_swa, k_swa, q_rla, k_rla, v, cache: RAttentionCache, *, window, feature_map="softmax",
                     kv_start=None, impl=None):
    """One prefill chunk ([B,T,Hq,D] queries, [B,T,Hkv,D] keys/values) -> (o_swa, o_rla, cache)."""
    _check(q_swa, k_swa, v, window)
    _check(q_rla, k_rla, v, window)
    check_feature_map(feature_map)
    _check_ring(cache.k_rla, k_rla, window)
    pos = cache.pos
    o_swa, ring_k_swa, ring_v = _swa_on_ring(q_swa, k_swa, v, cache.k_swa, cache.v, pos, kv_start, window, impl)
    keys = jnp.concatenate([ring_in_order(cache.k_rla, pos), k_rla.astype(cache.k_rla.dtype)], axis=1)
    values = jnp.concatenate([ring_in_order(cache.v, pos), v.astype(cache.v.dtype)], axis=1)
    name = _resolve("rla", impl, q_rla, keys, kv_start, window)
    fv = first_valid(kv_start, v.shape[0], pos - window)
    o_rla, state = _rla_core(name)(q_rla, keys, values, cache.state, fv, shift=1, feature_map=feature_map)
    ring_k_rla = ring_from_order(keys[:, keys.shape[1] - window :], pos + v.shape[1])
    return o_swa, o_rla, RAttentionCache(ring_k_swa, ring_k_rla, ring_v, state, pos + v.shape[1])


@functools.partial(jax.jit, static_argnames=("window", "impl"))
def sliding_window_decode_step(q, k, v, cache: SWACache, *, window, kv_start=None, impl=None):
    """One token q [B,Hq,D], k, v [B,Hkv,D] after `cache` -> (o [B,Hq,D], cache)."""
    if impl == "reference":
        o, cache = sliding_window_attention_chunk(
            q[:, None], k[:, None], v[:, None], cache, window=window, kv_start=kv_start, impl=impl
        )
        return o[:, 0], cache
    _check(q[:, None], k[:, None], v[:, None], window)
    _check_ring(cache.k, k[:, None], window)
    o = decode.swa_decode(q, k, v, cache.k, cache.v, cache.pos, kv_start, window=window)
    ring_k, ring_v = ring_write(cache.k, k, cache.pos), ring_write(cache.v, v, cache.pos)
    return o, SWACache(k=ring_k, v=ring_v, pos=cache.pos + 1)


@functools.partial(jax.jit, static_argnames=("window", "feature_map", "impl"))
def rattention_decode_step(q_swa, k_swa, q_rla, k_rla, v, cache: RAttentionCache, *, window,
                           feature_map="softmax", kv_start=None, impl=None):
    """One token (q_* [B,Hq,D]; k_*, v [B,Hkv,D]) -> (o_swa [B,Hq,D], o_rla [B,Hq,D], cache).

    The token leaving the window is folded into the RLA state; the new token takes its ring slot.
    """
    if impl == "reference":
        o_swa, o_rla, cache = rattention_chunk(
            q_swa[:, None], k_swa[:, None], q_rla[:, None], k_rla[:, None], v[:, None], cache,
            window=window, feature_map=feature_map, kv_start=kv_start, impl=impl,
        )
        return o_swa[:, 0], o_rla[:, 0], cache
    _check(q_swa[:, None], k_swa[:, None], v[:, None], window)
    _check(q_rla[:, None], k_rla[:, None], v[:, None], window)
    check_feature_map(feature_map)
    _check_ring(cache.k_rla, k_rla[:, None], window)
    pos = cache.pos
    o_swa = decode.swa_decode(q_swa, k_swa, v, cache.k_swa, cache.v, pos, kv_start, window=window)
    o_rla, state = decode.rla_decode(
        q_rla, k_rla, v, cache.k_rla, cache.v, cache.state, pos, kv_start, window=window, feature_map=feature_map
    )
    cache = RAttentionCache(
        k_swa=ring_write(cache.k_swa, k_swa, pos),
        k_rla=ring_write(cache.k_rla, k_rla, pos),
        v=ring_write(cache.v, v, pos),
        state=state,
        pos=pos + 1,
    )
    return o_swa, o_rla, cache


def _global_uses_cudnn(impl, q, kv_start) -> bool:
    """impl=None on a GPU takes cuDNN's causal attention for a whole unpadded bf16/f16 sequence."""
    return (impl is None and jax.default_backend() == "gpu" and kv_start is None
            and q.dtype in (jnp.bfloat16, jnp.float16) and q.shape[-1] % 8 == 0 and q.shape[-1] <= 128)


@functools.partial(jax.jit, static_argnames=("impl",))
def global_attention(q, k, v, *, kv_start=None, impl=None):
    """Causal attention over a whole sequence: q [B,T,Hq,D] (rotated), k/v [B,T,Hkv,D] -> [B,T,Hq,D].

    Keys before kv_start[b] (left padding) are never seen. "xla" and "pallas" (global layers have no
    Pallas kernel) take the query-blocked, differentiable path; None on a GPU takes cuDNN where it can.
    """
    _check(q, k, v, 0)
    if impl not in (None, *MODEL_IMPLS):
        raise ValueError(f"impl must be one of {MODEL_IMPLS} or None, got {impl!r}")
    if impl == "reference":
        return global_reference(q, k, v, kv_start)
    if _global_uses_cudnn(impl, q, kv_start):
        return jax.nn.dot_product_attention(q, k, v, is_causal=True, implementation="cudnn")
    return attention_query_blocked(q, k, v, kv_start_or_zeros(kv_start, q.shape[0]))


@functools.partial(jax.jit, static_argnames=("impl", "block_k"))
def global_attention_chunk(q, k, v, cache: GlobalCache, *, kv_start=None, impl=None, block_k: int = DEFAULT_BLOCK_K):
    """The next T positions, reading and extending the cache: q [B,T,Hq,D], k/v [B,T,Hkv,D] ->
    (o [B,T,Hq,D], cache advanced by T). The caller guarantees pos + T <= L. Every impl but "reference"
    runs the key-blocked online softmax (memory O(T * block_k), cost O(T * (pos + T)))."""
    _check(q, k, v, 0)
    if impl not in (None, *MODEL_IMPLS):
        raise ValueError(f"impl must be one of {MODEL_IMPLS} or None, got {impl!r}")
    if impl == "reference":
        return global_chunk_reference(q, k, v, cache, kv_start)
    k_all, v_all, q_pos, cache = extend_cache(cache, k, v)
    kv_start = kv_start_or_zeros(kv_start, q.shape[0])
    return attention_key_blocked(q, k_all, v_all, q_pos, kv_start, cache.pos, block_k=block_k), cache
