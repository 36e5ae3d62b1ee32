"""Full causal attention for "global" layers: the full-sequence form and the KV-cached chunk form.

Plain JAX (the kernels package covers the local layers only). Logits and softmax in float32. The KV
cache is sized once to the bucketed longest sequence (prompt + generation) and written at `pos`, so
chunks and decode steps of a given size compile once.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

HIGHEST = jax.lax.Precision.HIGHEST
_MASKED = -1e30  # finite, so a row with no visible key (a left pad) stays finite


class GlobalCache(NamedTuple):
    """k, v: [B, L, Hkv, D] with position p at index p (pads included); pos: int32 [] positions written."""

    k: jax.Array
    v: jax.Array
    pos: jax.Array


def global_cache_init(batch: int, max_len: int, num_kv_heads: int, head_dim: int, dtype) -> GlobalCache:
    kv = jnp.zeros((batch, max_len, num_kv_heads, head_dim), dtype)
    return GlobalCache(k=kv, v=kv, pos=jnp.zeros((), jnp.int32))


def _attend(q, k, v, mask):
    """q [B,T,Hq,D], k/v [B,S,Hkv,D], mask [B,T,S] bool -> o [B,T,Hq,D] (v's dtype); GQA without repeats."""
    batch, t_len, num_heads, head_dim = q.shape
    num_kv_heads = k.shape[2]
    q_g = q.reshape(batch, t_len, num_kv_heads, num_heads // num_kv_heads, head_dim)  # [B,T,Hkv,G,D]
    logits = jnp.einsum("bthgd,bshd->bhgts", q_g, k, precision=HIGHEST, preferred_element_type=jnp.float32)
    logits = jnp.where(mask[:, None, None], logits / jnp.sqrt(jnp.float32(head_dim)), _MASKED)
    p = jax.nn.softmax(logits, axis=-1)  # [B,Hkv,G,T,S]
    o = jnp.einsum("bhgts,bshd->bthgd", p, v.astype(jnp.float32), precision=HIGHEST)
    return o.reshape(batch, t_len, num_heads, head_dim).astype(v.dtype)


def kv_start_or_zeros(kv_start, batch: int) -> jax.Array:
    """[B] int32 first real position per row (None: no padding)."""
    return jnp.zeros((batch,), jnp.int32) if kv_start is None else jnp.asarray(kv_start, jnp.int32)


def global_attention(q, k, v, *, kv_start=None):
    """Causal attention over a whole sequence. q [B,T,Hq,D] (rotated), k/v [B,T,Hkv,D] -> [B,T,Hq,D].

    Keys before kv_start[b] (left padding) are never seen.
    """
    batch, t_len = q.shape[:2]
    i = jnp.arange(t_len)
    mask = (i[None, :] <= i[:, None])[None] & (i[None, None, :] >= kv_start_or_zeros(kv_start, batch)[:, None, None])
    return _attend(q, k, v, mask)


def global_attention_chunk(q, k, v, cache: GlobalCache, *, kv_start=None):
    """The next T positions, reading and extending the cache. q [B,T,Hq,D], k/v [B,T,Hkv,D].

    Returns (o [B,T,Hq,D], cache advanced by T). The caller guarantees pos + T <= L.
    """
    batch, t_len = q.shape[:2]
    k_all = jax.lax.dynamic_update_slice_in_dim(cache.k, k.astype(cache.k.dtype), cache.pos, axis=1)
    v_all = jax.lax.dynamic_update_slice_in_dim(cache.v, v.astype(cache.v.dtype), cache.pos, axis=1)
    q_pos = cache.pos + jnp.arange(t_len)  # [T]
    k_pos = jnp.arange(cache.k.shape[1])  # [L]
    mask = (k_pos[None, :] <= q_pos[:, None])[None] & (
        k_pos[None, None, :] >= kv_start_or_zeros(kv_start, batch)[:, None, None]
    )
    o = _attend(q, k_all, v_all, mask)
    return o, GlobalCache(k=k_all, v=v_all, pos=cache.pos + t_len)
