"""The carried state of chunked prefill and decode: ring buffers of the last W keys/values + RLA state
(local layers), and the KV cache of global layers.

The ring holds positions pos-W .. pos-1 at slot = position % W. A position is valid (a real token) iff
it is >= max(0, kv_start[b]); slots holding negative positions (the first W steps) are empty. A global
layer's cache is sized once to the bucketed longest sequence and holds position p at index p.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class SWACache(NamedTuple):
    """k, v: [B, W, Hkv, D]; pos: int32 [] = positions consumed so far (pads included)."""

    k: jax.Array
    v: jax.Array
    pos: jax.Array


class RAttentionCache(NamedTuple):
    """k_swa (rotated), k_rla (raw), v: [B, W, Hkv, D]; state: [B, Hq, 2D, D] f32; pos: int32 []."""

    k_swa: jax.Array
    k_rla: jax.Array
    v: jax.Array
    state: jax.Array
    pos: jax.Array


class GlobalCache(NamedTuple):
    """k, v: [B, L, Hkv, D] with position p at index p (pads included); pos: int32 [] positions written."""

    k: jax.Array
    v: jax.Array
    pos: jax.Array


def global_cache_init(batch: int, max_len: int, num_kv_heads: int, head_dim: int, dtype) -> GlobalCache:
    kv = jnp.zeros((batch, max_len, num_kv_heads, head_dim), dtype)
    return GlobalCache(k=kv, v=kv, pos=jnp.zeros((), jnp.int32))


def swa_cache_init(batch: int, window: int, num_kv_heads: int, head_dim: int, dtype) -> SWACache:
    ring = jnp.zeros((batch, window, num_kv_heads, head_dim), dtype)
    return SWACache(k=ring, v=ring, pos=jnp.zeros((), jnp.int32))


def rattention_cache_init(
    batch: int, window: int, num_heads: int, num_kv_heads: int, head_dim: int, dtype, initial_state=None
) -> RAttentionCache:
    """initial_state: None (zeros), [Hq, 2D, D] or [B, Hq, 2D, D] (a learned initial state)."""
    ring = jnp.zeros((batch, window, num_kv_heads, head_dim), dtype)
    state = initial_state_for(batch, num_heads, head_dim, initial_state)
    return RAttentionCache(k_swa=ring, k_rla=ring, v=ring, state=state, pos=jnp.zeros((), jnp.int32))


def initial_state_for(batch: int, num_heads: int, head_dim: int, initial_state) -> jax.Array:
    """None | [Hq, 2D, D] | [B, Hq, 2D, D] -> [B, Hq, 2D, D] float32."""
    shape = (batch, num_heads, 2 * head_dim, head_dim)
    if initial_state is None:
        return jnp.zeros(shape, jnp.float32)
    initial_state = jnp.asarray(initial_state, jnp.float32)
    if initial_state.shape not in (shape, shape[1:]):
        raise ValueError(f"initial_state must have shape {shape} or {shape[1:]}, got {initial_state.shape}")
    return jnp.broadcast_to(initial_state, shape)


def ring_in_order(ring: jax.Array, pos: jax.Array) -> jax.Array:
    """[B, W, ...] by slot -> [B, W, ...] by position pos-W .. pos-1 (oldest first)."""
    window = ring.shape[1]
    return jnp.roll(ring, -(pos % window), axis=1) if window else ring


def ring_from_order(ordered: jax.Array, pos_end: jax.Array) -> jax.Array:
    """[B, W, ...] holding positions pos_end-W .. pos_end-1 in order -> [B, W, ...] by slot."""
    window = ordered.shape[1]
    return jnp.roll(ordered, pos_end % window, axis=1) if window else ordered


def kv_start_or_zeros(kv_start, batch: int) -> jax.Array:
    """[B] int32 first real position per row (None: no padding)."""
    return jnp.zeros((batch,), jnp.int32) if kv_start is None else jnp.asarray(kv_start, jnp.int32)


def first_valid(kv_start, batch: int, key_pos0) -> jax.Array:
    """[B] int32: index of the first valid key in a key sequence whose index 0 is position key_pos0.

    Key j is valid iff j >= first_valid[b], i.e. key_pos0 + j >= max(0, kv_start[b]).
    """
    start = kv_start_or_zeros(kv_start, batch)
    if start.shape != (batch,):
        raise ValueError(f"kv_start must have shape ({batch},), got {start.shape}")
    return jnp.maximum(start, 0) - jnp.asarray(key_pos0, jnp.int32)


def ring_write(ring: jax.Array, x: jax.Array, pos: jax.Array) -> jax.Array:
    """Writes one token x [B, ...] at slot pos % W of ring [B, W, ...] (no-op when W = 0)."""
    window = ring.shape[1]
    if window == 0:
        return ring
    return jax.lax.dynamic_update_slice_in_dim(ring, x[:, None].astype(ring.dtype), pos % window, axis=1)
