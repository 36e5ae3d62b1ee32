"""RLA core (see reference.py) as a chunked lax.scan: the portable plain-JAX path.

Align keys to the queries that first read them: key j moves to slot u = j + shift, after which query i
reads slots u <= i (plain inclusive causal linear attention over T + 1 slots; slot T feeds only the end
state). Per chunk of C slots: o = tril(phi(q) phi(k)^T) v + phi(q) S, then S += phi(k)^T v. S is kept
per kv head (GQA: query groups read it, nothing repeated); the initial state's share phi(q) S_0 is one
einsum outside the scan. Forward only: no per-chunk states are stored.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from kernels.feature_maps import phi

DEFAULT_CHUNK = 128


def _align(x, shift: int, length: int):
    """[B, L, ...] -> [B, length, ...] with out[u] = x[u - shift] (zeros outside)."""
    pad_front = [(0, 0), (shift, 0)] + [(0, 0)] * (x.ndim - 2)
    x = jnp.pad(x, pad_front)[:, :length]
    pad_end = [(0, 0), (0, length - x.shape[1])] + [(0, 0)] * (x.ndim - 2)
    return jnp.pad(x, pad_end)


def rla_chunked(q, k, v, state, first_valid, *, shift: int, feature_map: str, chunk: int = DEFAULT_CHUNK):
    batch, t_len, num_heads, head_dim = q.shape
    l_len, num_kv_heads = k.shape[1], k.shape[2]
    group = num_heads // num_kv_heads
    slots = t_len + 1
    c = min(chunk, slots)
    n_chunks = -(-slots // c)
    padded = n_chunks * c

    valid = (jnp.arange(l_len)[None, :] >= first_valid[:, None]).astype(jnp.float32)  # [B,L]
    fk = phi(k, feature_map) * valid[:, :, None, None]  # [B,L,Hkv,2D]
    in_range = (jnp.arange(padded) <= t_len).astype(jnp.float32)[None, :, None, None]
    fk = _align(fk, shift, padded) * in_range  # [B,P,Hkv,2D]
    va = _align(v.astype(jnp.float32), shift, padded)  # [B,P,Hkv,D]
    fq = phi(q, feature_map).reshape(batch, t_len, num_kv_heads, group, 2 * head_dim)
    fq_p = jnp.pad(fq, [(0, 0), (0, padded - t_len), (0, 0), (0, 0), (0, 0)])  # [B,P,Hkv,G,2D]

    def chunks(x):  # [B, P, ...] -> [N, B, C, ...]
        return jnp.moveaxis(x.reshape(batch, n_chunks, c, *x.shape[2:]), 1, 0)

    causal = jnp.tril(jnp.ones((c, c), jnp.float32))

    def step(s, xs):  # s: [B,Hkv,2D,D]
        fq_c, fk_c, v_c = xs
        scores = jnp.einsum("bihgf,bjhf->bhgij", fq_c, fk_c) * causal
        o_c = jnp.einsum("bhgij,bjhd->bihgd", scores, v_c) + jnp.einsum("bihgf,bhfd->bihgd", fq_c, s)
        return s + jnp.einsum("bjhf,bjhd->bhfd", fk_c, v_c), o_c

    s0 = jnp.zeros((batch, num_kv_heads, 2 * head_dim, head_dim), jnp.float32)
    s_end, o = jax.lax.scan(step, s0, (chunks(fq_p), chunks(fk), chunks(va)))
    o = jnp.moveaxis(o, 0, 1).reshape(batch, padded, num_kv_heads, group, head_dim)[:, :t_len]
    state_g = state.reshape(batch, num_kv_heads, group, 2 * head_dim, head_dim)
    o = o + jnp.einsum("bihgf,bhgfd->bihgd", fq, state_g)
    state_end = state + jnp.repeat(s_end, group, axis=1)
    return o.reshape(batch, t_len, num_heads, head_dim).astype(v.dtype), state_end
