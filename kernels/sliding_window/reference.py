"""The definition of the SWA core: quadratic, float32, obviously correct (tests and small inputs).

Every SWA implementation computes the same core:

    swa(q [B,T,Hq,D], k, v [B,L,Hkv,D], first_valid [B] int32, *, offset, window) -> o [B,T,Hq,D] (v's dtype)

Query i sits at key index i + offset and attends, with scale 1/sqrt(D), to keys j with
0 <= i + offset - j <= window and j >= first_valid. A query with no such key (a left pad) outputs 0.
A full sequence has L = T and offset 0; a carried chunk has the ring's W keys first (offset = W).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

HIGHEST = jax.lax.Precision.HIGHEST


def window_mask(q_index, k_index, first_valid, window: int):
    """[B, Tq, Tk] bool: key index k_index[j] is seen by the query at key index q_index[i]."""
    dist = q_index[:, None] - k_index[None, :]
    seen = (dist >= 0) & (dist <= window)
    return seen[None] & (k_index[None, None, :] >= first_valid[:, None, None])


def masked_softmax_rows(logits, mask):
    """Softmax over the last axis where mask holds; rows with no true entry give zeros (f32)."""
    logits = jnp.where(mask, logits, -jnp.inf)
    row_max = jnp.max(logits, axis=-1, keepdims=True)
    row_max = jnp.where(jnp.isfinite(row_max), row_max, 0.0)
    p = jnp.where(mask, jnp.exp(logits - row_max), 0.0)
    denom = jnp.sum(p, axis=-1, keepdims=True)
    return p / jnp.where(denom > 0, denom, 1.0)


def swa_reference(q, k, v, first_valid, *, offset: int, window: int):
    batch, t_len, num_heads, head_dim = q.shape
    l_len, num_kv_heads = k.shape[1], k.shape[2]
    group = num_heads // num_kv_heads
    q32 = q.astype(jnp.float32).reshape(batch, t_len, num_kv_heads, group, head_dim)
    logits = jnp.einsum("bihgd,bjhd->bhgij", q32, k.astype(jnp.float32), precision=HIGHEST)
    logits = logits / jnp.sqrt(jnp.float32(head_dim))
    mask = window_mask(jnp.arange(t_len) + offset, jnp.arange(l_len), first_valid, window)  # [B,T,L]
    p = masked_softmax_rows(logits, mask[:, None, None])
    o = jnp.einsum("bhgij,bjhd->bihgd", p, v.astype(jnp.float32), precision=HIGHEST)
    return o.reshape(batch, t_len, num_heads, head_dim).astype(v.dtype)
