"""Fused one-token decode steps (plain jnp, one jit-able function each): memory independent of position.

SWA: the query attends to the W ring slots (positions pos-W .. pos-1, masked where empty or padded) and
to itself. RLA: o = phi(q) S; then the token leaving the window (position pos-W, in slot pos % W) is
folded into S and the new token takes its slot. With W = 0 the new token itself is folded in.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from kernels.feature_maps import phi
from kernels.sliding_window.reference import masked_softmax_rows


def _real_from(kv_start, batch: int):
    """[B] int32: the first real (non-pad) position of each row."""
    if kv_start is None:
        return jnp.zeros((batch,), jnp.int32)
    return jnp.maximum(jnp.asarray(kv_start, jnp.int32), 0)


def swa_decode(q, k, v, ring_k, ring_v, pos, kv_start, *, window: int):
    """q [B,Hq,D], k, v [B,Hkv,D], ring_k, ring_v [B,W,Hkv,D] (before this token's write) -> o [B,Hq,D]."""
    batch, num_heads, head_dim = q.shape
    num_kv_heads = k.shape[1]
    real_from = _real_from(kv_start, batch)
    slot = jnp.arange(window)
    slot_pos = pos - window + (slot - pos) % window if window else slot
    keys = jnp.concatenate([ring_k, k[:, None]], axis=1)  # [B,W+1,Hkv,D]
    values = jnp.concatenate([ring_v, v[:, None]], axis=1)
    key_pos = jnp.concatenate([slot_pos, pos[None]])  # [W+1]
    mask = (key_pos[None, :] >= real_from[:, None]) & (key_pos[None, :] >= 0)  # [B,W+1]
    qg = q.reshape(batch, num_kv_heads, num_heads // num_kv_heads, head_dim)
    logits = jnp.einsum("bhgd,bjhd->bhgj", qg, keys, preferred_element_type=jnp.float32)
    p = masked_softmax_rows(logits / jnp.sqrt(jnp.float32(head_dim)), mask[:, None, None])
    o = jnp.einsum("bhgj,bjhd->bhgd", p.astype(v.dtype), values, preferred_element_type=jnp.float32)
    return o.reshape(batch, num_heads, head_dim).astype(v.dtype)


def rla_decode(q, k, v, ring_k, ring_v, state, pos, kv_start, *, window: int, feature_map: str):
    """q [B,Hq,D], k, v [B,Hkv,D], rings [B,W,Hkv,D], state [B,Hq,2D,D] -> (o [B,Hq,D], state).

    Reads the rings before this token's write (the caller writes it afterwards with cache.ring_write).
    """
    batch, num_heads, head_dim = q.shape
    num_kv_heads = k.shape[1]
    group = num_heads // num_kv_heads
    o = jnp.einsum("bhf,bhfd->bhd", phi(q, feature_map), state)
    if window:
        at = pos % window
        k_out = jax.lax.dynamic_index_in_dim(ring_k, at, axis=1, keepdims=False)  # [B,Hkv,D]
        v_out = jax.lax.dynamic_index_in_dim(ring_v, at, axis=1, keepdims=False)
    else:
        k_out, v_out = k, v
    leaving = pos - window
    fold = ((leaving >= _real_from(kv_start, batch)) & (leaving >= 0)).astype(jnp.float32)  # [B]
    delta = jnp.einsum("bhf,bhd->bhfd", phi(k_out, feature_map), v_out.astype(jnp.float32))
    state = state + jnp.repeat(delta * fold[:, None, None, None], group, axis=1)
    return o.astype(v.dtype), state
