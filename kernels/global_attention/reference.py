"""The definition of global (full causal) attention: a masked softmax over every key, float32 scores.

Query at position i sees key j iff kv_start[b] <= j <= i, with scale 1/sqrt(D) and softmax in float32; a
query that sees no key (a left pad) outputs 0. The carried form reads a KV cache [B, L, Hkv, D] that holds
position p at index p, extended by the chunk's keys at cache.pos. The reference builds float32 scores of
[B, H, T, S]: fine for tests, 8 GB for one 2048-token chunk at a 64K cache (H = 16).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from kernels.cache import GlobalCache, kv_start_or_zeros
from kernels.sliding_window.reference import masked_softmax_rows

HIGHEST = jax.lax.Precision.HIGHEST


def causal_mask(q_pos, k_pos, kv_start):
    """[B, T, S] bool: query at position q_pos[i] sees key at k_pos[j]. q_pos [T], k_pos [S], kv_start [B]."""
    seen = k_pos[None, :] <= q_pos[:, None]
    return seen[None] & (k_pos[None, None, :] >= kv_start[:, None, None])


def group_queries(q, num_kv_heads: int):
    """q [B,T,Hq,D] -> [B,T,Hkv,G,D]: GQA without repeating k/v."""
    batch, t_len, num_heads, head_dim = q.shape
    return q.reshape(batch, t_len, num_kv_heads, num_heads // num_kv_heads, head_dim)


def attention_reference(q, k, v, mask):
    """q [B,T,Hq,D], k/v [B,S,Hkv,D], mask [B,T,S] bool -> o [B,T,Hq,D] (v's dtype)."""
    q_g = group_queries(q, k.shape[2])
    logits = jnp.einsum("bthgd,bshd->bhgts", q_g, k, precision=HIGHEST, preferred_element_type=jnp.float32)
    p = masked_softmax_rows(logits / jnp.sqrt(jnp.float32(q.shape[-1])), mask[:, None, None])  # [B,Hkv,G,T,S]
    o = jnp.einsum("bhgts,bshd->bthgd", p, v.astype(jnp.float32), precision=HIGHEST)
    return o.reshape(q.shape).astype(v.dtype)


def global_reference(q, k, v, kv_start=None):
    """Whole sequence: q [B,T,Hq,D], k/v [B,T,Hkv,D] -> o [B,T,Hq,D]."""
    pos = jnp.arange(q.shape[1])
    return attention_reference(q, k, v, causal_mask(pos, pos, kv_start_or_zeros(kv_start, q.shape[0])))


def extend_cache(cache: GlobalCache, k, v):
    """Writes k/v [B,T,Hkv,D] at cache.pos -> (k_all, v_all [B,L,Hkv,D], q_pos [T] int32, advanced cache)."""
    t_len = k.shape[1]
    k_all = jax.lax.dynamic_update_slice_in_dim(cache.k, k.astype(cache.k.dtype), cache.pos, axis=1)
    v_all = jax.lax.dynamic_update_slice_in_dim(cache.v, v.astype(cache.v.dtype), cache.pos, axis=1)
    return k_all, v_all, cache.pos + jnp.arange(t_len), GlobalCache(k=k_all, v=v_all, pos=cache.pos + t_len)


def global_chunk_reference(q, k, v, cache: GlobalCache, kv_start=None):
    """The next T positions over the whole cache: -> (o [B,T,Hq,D], cache advanced by T)."""
    k_all, v_all, q_pos, cache = extend_cache(cache, k, v)
    mask = causal_mask(q_pos, jnp.arange(k_all.shape[1]), kv_start_or_zeros(kv_start, q.shape[0]))
    return attention_reference(q, k_all, v_all, mask), cache
