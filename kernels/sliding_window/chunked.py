"""SWA core (see reference.py) blocked over queries with lax.scan: the portable plain-JAX path.

A block of Bq queries at key indices a+offset .. a+offset+Bq-1 can only see keys in the contiguous span
[a+offset-W, a+offset+Bq-1] (Bq + W keys), sliced dynamically: cost O(T * (W + Bq)), never O(T^2).
Logits and softmax in float32; the products take the inputs' dtype with float32 accumulation. The
window mask is built here from key indices, not imported from reference.py, so that the tests comparing
the two paths can see a mask bug in either.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from kernels.sliding_window.reference import masked_softmax_rows

DEFAULT_BLOCK = 128


def swa_blocked(q, k, v, first_valid, *, offset: int, window: int, block: int = DEFAULT_BLOCK):
    batch, t_len, num_heads, head_dim = q.shape
    l_len, num_kv_heads = k.shape[1], k.shape[2]
    group = num_heads // num_kv_heads
    bq = min(block, t_len)
    n_blocks = -(-t_len // bq)
    span = bq + window
    q_p = jnp.pad(q, [(0, 0), (0, n_blocks * bq - t_len), (0, 0), (0, 0)])
    q_p = q_p.reshape(batch, n_blocks * bq, num_kv_heads, group, head_dim)
    end_pad = max(0, n_blocks * bq + offset - l_len)
    pads = [(0, 0), (window, end_pad), (0, 0), (0, 0)]
    k_p, v_p = jnp.pad(k, pads), jnp.pad(v, pads)  # index j + window holds key j
    scale = 1.0 / jnp.sqrt(jnp.float32(head_dim))

    def one_block(a):
        qb = jax.lax.dynamic_slice_in_dim(q_p, a, bq, axis=1)  # [B,Bq,Hkv,G,D]
        kb = jax.lax.dynamic_slice_in_dim(k_p, a + offset, span, axis=1)  # [B,S,Hkv,D]
        vb = jax.lax.dynamic_slice_in_dim(v_p, a + offset, span, axis=1)
        k_index = a + offset - window + jnp.arange(span)  # [S]: key index of span slot s
        # Query r sits at key index a + offset + r, i.e. span slot r + window: it sees slots r .. r + W.
        lag = (jnp.arange(bq)[:, None] + window) - jnp.arange(span)[None, :]  # [Bq,S]
        in_window = (lag >= 0) & (lag <= window) & (k_index >= 0) & (k_index < l_len)
        mask = in_window[None] & (k_index[None, None, :] >= first_valid[:, None, None])  # [B,Bq,S]
        logits = jnp.einsum("bihgd,bjhd->bhgij", qb, kb, preferred_element_type=jnp.float32) * scale
        p = masked_softmax_rows(logits, mask[:, None, None])
        return jnp.einsum("bhgij,bjhd->bihgd", p.astype(v.dtype), vb, preferred_element_type=jnp.float32)

    o = jax.lax.map(one_block, jnp.arange(n_blocks) * bq)  # [N,B,Bq,Hkv,G,D]
    o = jnp.moveaxis(o, 0, 1).reshape(batch, n_blocks * bq, num_heads, head_dim)[:, :t_len]
    return o.astype(v.dtype)
