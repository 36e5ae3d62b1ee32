"""The definition of the RLA core: quadratic, float32, obviously correct (tests and small inputs).

Every RLA implementation computes the same core:

    rla(q [B,T,Hq,D], k, v [B,L,Hkv,D], state [B,Hq,2D,D] f32, first_valid [B] int32, *, shift, feature_map)
      -> (o [B,T,Hq,D] in v's dtype, state_end [B,Hq,2D,D] f32)

    o_i       = phi(q_i) (state + sum_{first_valid <= j <= i - shift} phi(k_j)^T v_j)
    state_end =            state + sum_{first_valid <= j <= T - shift} phi(k_j)^T v_j

Query i reads key j <= i - shift. A full sequence has L = T and shift = W + 1; a carried chunk has the
ring's W keys before the chunk's T keys (L = W + T) and shift = 1. Query head h reads kv head h // (Hq/Hkv).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from kernels.feature_maps import phi

HIGHEST = jax.lax.Precision.HIGHEST


def rla_reference(q, k, v, state, first_valid, *, shift: int, feature_map: str):
    batch, t_len, num_heads, _ = q.shape
    l_len, num_kv_heads = k.shape[1], k.shape[2]
    group = num_heads // num_kv_heads
    fq = phi(q, feature_map).reshape(batch, t_len, num_kv_heads, group, -1)  # [B,T,Hkv,G,2D]
    j = jnp.arange(l_len)
    valid = (j[None, :] >= first_valid[:, None]).astype(jnp.float32)  # [B,L]
    fk = phi(k, feature_map) * valid[:, :, None, None]  # [B,L,Hkv,2D]
    v32 = v.astype(jnp.float32)
    reads = (j[None, :] <= jnp.arange(t_len)[:, None] - shift).astype(jnp.float32)  # [T,L]
    scores = jnp.einsum("bihgf,bjhf->bhgij", fq, fk, precision=HIGHEST) * reads
    o = jnp.einsum("bhgij,bjhd->bihgd", scores, v32, precision=HIGHEST)
    state_g = state.reshape(batch, num_kv_heads, group, *state.shape[2:])
    o = o + jnp.einsum("bihgf,bhgfd->bihgd", fq, state_g, precision=HIGHEST)
    ends = (j <= t_len - shift).astype(jnp.float32)
    delta = jnp.einsum("bjhf,bjhd->bhfd", fk * ends[None, :, None, None], v32, precision=HIGHEST)
    state_end = state + jnp.repeat(delta, group, axis=1)
    return o.reshape(batch, t_len, num_heads, -1).astype(v.dtype), state_end
