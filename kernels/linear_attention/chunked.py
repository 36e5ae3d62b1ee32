"""RLA core (see reference.py) in chunks, with flexible state saving: the portable plain-JAX path.

Align keys to the queries that first read them: key j moves to slot u = j + shift, after which query i
reads slots u <= i (plain inclusive causal linear attention over T + 1 slots; slot T feeds only the end
state). Per chunk of C slots: o = tril(phi(q) phi(k)^T) v + phi(q) S, then S += phi(k)^T v. S is kept
per kv head (GQA: query groups read it, nothing repeated); the initial state's share phi(q) S_0 is one
einsum outside the chunks. Forward only.

Flexible state saving (RAttention, section 3): the chunks are grouped into super-chunks of
`chunks_per_state` chunks. Each super-chunk's state delta sum phi(k)^T v is computed in parallel, an
exclusive prefix sum over them gives every super-chunk's start state (the only states kept:
[N_super, B, Hkv, 2D, D] float32), then all super-chunks walk their own chunks at once. The sequential
depth is chunks_per_state instead of the number of chunks, which is what an accelerator needs;
chunks_per_state=None is one super-chunk (a plain scan over chunks, no extra pass: the CPU's choice).

Precision: operands in the inputs' dtype (bf16 stays bf16), products accumulated in float32; the state
and its prefix sums are float32.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from kernels.feature_maps import phi

DEFAULT_CHUNK = 128


def balanced_chunks_per_state(t_len: int, chunk: int = DEFAULT_CHUNK) -> int:
    """About sqrt(number of chunks): the sequential depth and the saved states grow alike."""
    n_chunks = -(-(t_len + 1) // min(chunk, t_len + 1))
    return math.isqrt(n_chunks - 1) + 1


def exclusive_prefix_sum(x, axis: int):
    """out[i] = sum of x[:i] along `axis` (zeros first): each super-chunk's share of the states before it."""
    inclusive = jnp.cumsum(x, axis=axis)
    first = jax.lax.slice_in_dim(jnp.zeros_like(inclusive), 0, 1, axis=axis)
    return jnp.concatenate([first, jax.lax.slice_in_dim(inclusive, 0, x.shape[axis] - 1, axis=axis)], axis=axis)


def _align(x, shift: int, length: int):
    """[B, L, ...] -> [B, length, ...] with out[u] = x[u - shift] (zeros outside)."""
    pad_front = [(0, 0), (shift, 0)] + [(0, 0)] * (x.ndim - 2)
    x = jnp.pad(x, pad_front)[:, :length]
    pad_end = [(0, 0), (0, length - x.shape[1])] + [(0, 0)] * (x.ndim - 2)
    return jnp.pad(x, pad_end)


def rla_chunked(q, k, v, state, first_valid, *, shift: int, feature_map: str, chunk: int = DEFAULT_CHUNK,
                chunks_per_state: int | None = None):
    batch, t_len, num_heads, head_dim = q.shape
    l_len, num_kv_heads = k.shape[1], k.shape[2]
    group = num_heads // num_kv_heads
    slots = t_len + 1
    c = min(chunk, slots)
    n_chunks = -(-slots // c)
    per_state = n_chunks if chunks_per_state is None else max(1, min(chunks_per_state, n_chunks))
    n_super = -(-n_chunks // per_state)
    padded = n_super * per_state * c
    dtype = v.dtype
    f32 = dict(preferred_element_type=jnp.float32)

    valid = (jnp.arange(l_len)[None, :] >= first_valid[:, None]).astype(jnp.float32)  # [B,L]
    fk = phi(k, feature_map) * valid[:, :, None, None]  # [B,L,Hkv,2D]
    in_range = (jnp.arange(padded) <= t_len).astype(jnp.float32)[None, :, None, None]
    fk = (_align(fk, shift, padded) * in_range).astype(dtype)  # [B,P,Hkv,2D]
    va = _align(v, shift, padded)  # [B,P,Hkv,D]
    fq = phi(q, feature_map).reshape(batch, t_len, num_kv_heads, group, 2 * head_dim)
    fq_p = jnp.pad(fq, [(0, 0), (0, padded - t_len), (0, 0), (0, 0), (0, 0)]).astype(dtype)  # [B,P,Hkv,G,2D]

    def split(x):  # [B, P, ...] -> [per_state, N_super, B, C, ...]
        x = x.reshape(batch, n_super, per_state, c, *x.shape[2:])
        return jnp.moveaxis(x, (1, 2), (1, 0))

    fq_s, fk_s, v_s = split(fq_p), split(fk), split(va)
    state_shape = (n_super, batch, num_kv_heads, 2 * head_dim, head_dim)
    if n_super == 1:
        starts = jnp.zeros(state_shape, jnp.float32)
    else:
        deltas = jnp.einsum("gsbjhf,gsbjhd->sbhfd", fk_s, v_s, **f32)  # [N_super,B,Hkv,2D,D]
        starts = exclusive_prefix_sum(deltas, axis=0)  # each super-chunk's start state

    causal = jnp.tril(jnp.ones((c, c), dtype))

    def step(s, xs):  # s: [N_super,B,Hkv,2D,D] f32
        fq_c, fk_c, v_c = xs  # [N_super,B,C,...]
        scores = (jnp.einsum("sbihgf,sbjhf->sbhgij", fq_c, fk_c, **f32) * causal).astype(dtype)
        o_c = jnp.einsum("sbhgij,sbjhd->sbihgd", scores, v_c, **f32) + jnp.einsum(
            "sbihgf,sbhfd->sbihgd", fq_c.astype(jnp.float32), s)
        return s + jnp.einsum("sbjhf,sbjhd->sbhfd", fk_c, v_c, **f32), o_c

    s_ends, o = jax.lax.scan(step, starts, (fq_s, fk_s, v_s))  # o [per_state,N_super,B,C,Hkv,G,D]
    o = jnp.moveaxis(o, (0, 1), (2, 1)).reshape(batch, padded, num_kv_heads, group, head_dim)[:, :t_len]
    state_g = state.reshape(batch, num_kv_heads, group, 2 * head_dim, head_dim)
    o = o + jnp.einsum("bihgf,bhgfd->bihgd", fq, state_g)
    state_end = state + jnp.repeat(s_ends[-1], group, axis=1)
    return o.reshape(batch, t_len, num_heads, head_dim).astype(dtype), state_end
