"""Full causal attention for "global" layers: the full-sequence form and the KV-cached chunk form.

Plain JAX, so it runs on CPU, GPU and TPU (the kernels package covers the local layers only). The KV
cache is sized once to the bucketed longest sequence (prompt + generation) and written at `pos`, so
chunks and decode steps of a given size compile once.

Three implementations of one definition. Query at position i sees key j iff kv_start[b] <= j <= i, with
scale 1/sqrt(D) and softmax in float32; a query that sees no key (a left pad) outputs 0.
- `attention_reference`: the obviously-correct masked softmax over all keys. It builds float32 scores of
  [B, H, T, S]: fine for tests, 8 GB for one 2048-token chunk at a 64K cache (H = 16).
- `attention_query_blocked` (whole sequence, differentiable: training and parity): query blocks that
  skip the keys above the diagonal; 4x faster than the reference fwd+bwd at T = 1024 on CPU.
- `global_attention_chunk` (blocked): an online softmax over key blocks of the cache (running max,
  denominator and accumulator in float32), visiting only the blocks that hold a visible key:
  from min_b kv_start[b] to pos + T. Live memory O(B * H * T * block), cost O(T * (pos + T)), so a
  decode step (T = 1) costs O(pos), not O(cache length).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from kernels.sliding_window.reference import masked_softmax_rows

HIGHEST = jax.lax.Precision.HIGHEST
DEFAULT_BLOCK_K = 1024
DEFAULT_BLOCK_Q = 128


class GlobalCache(NamedTuple):
    """k, v: [B, L, Hkv, D] with position p at index p (pads included); pos: int32 [] positions written."""

    k: jax.Array
    v: jax.Array
    pos: jax.Array


def global_cache_init(batch: int, max_len: int, num_kv_heads: int, head_dim: int, dtype) -> GlobalCache:
    kv = jnp.zeros((batch, max_len, num_kv_heads, head_dim), dtype)
    return GlobalCache(k=kv, v=kv, pos=jnp.zeros((), jnp.int32))


def kv_start_or_zeros(kv_start, batch: int) -> jax.Array:
    """[B] int32 first real position per row (None: no padding)."""
    return jnp.zeros((batch,), jnp.int32) if kv_start is None else jnp.asarray(kv_start, jnp.int32)


def causal_mask(q_pos, k_pos, kv_start):
    """[B, T, S] bool: query at position q_pos[i] sees key at k_pos[j]. q_pos [T], k_pos [S], kv_start [B]."""
    seen = k_pos[None, :] <= q_pos[:, None]
    return seen[None] & (k_pos[None, None, :] >= kv_start[:, None, None])


def _group_queries(q, num_kv_heads: int):
    """q [B,T,Hq,D] -> [B,T,Hkv,G,D]: GQA without repeating k/v."""
    batch, t_len, num_heads, head_dim = q.shape
    return q.reshape(batch, t_len, num_kv_heads, num_heads // num_kv_heads, head_dim)


def attention_reference(q, k, v, mask):
    """The definition. q [B,T,Hq,D], k/v [B,S,Hkv,D], mask [B,T,S] bool -> o [B,T,Hq,D] (v's dtype)."""
    q_g = _group_queries(q, k.shape[2])
    logits = jnp.einsum("bthgd,bshd->bhgts", q_g, k, precision=HIGHEST, preferred_element_type=jnp.float32)
    p = masked_softmax_rows(logits / jnp.sqrt(jnp.float32(q.shape[-1])), mask[:, None, None])  # [B,Hkv,G,T,S]
    o = jnp.einsum("bhgts,bshd->bthgd", p, v.astype(jnp.float32), precision=HIGHEST)
    return o.reshape(q.shape).astype(v.dtype)


def attention_blocked(q, k, v, q_pos, kv_start, key_end, *, block_k: int = DEFAULT_BLOCK_K):
    """The same attention as attention_reference under causal_mask(q_pos, arange(S), kv_start), blocked.

    q [B,T,Hq,D], k/v [B,S,Hkv,D], q_pos [T] int32 (increasing), kv_start [B] int32, key_end: int32 [], no
    visible key at index >= key_end (= q_pos[-1] + 1). Loops over key blocks [j*blk, (j+1)*blk) for the j
    that can hold a visible key; the last block of a cache whose length is not a multiple of blk is read
    shifted left to stay in bounds, with the keys already seen masked. -> o [B,T,Hq,D] (v's dtype).
    """
    batch, t_len, num_heads, head_dim = q.shape
    s_len, num_kv_heads = k.shape[1], k.shape[2]
    blk = min(block_k, s_len)
    q_g = _group_queries(q, num_kv_heads)  # [B,T,Hkv,G,D]
    scale = 1.0 / jnp.sqrt(jnp.float32(head_dim))
    stats_shape = (batch, num_kv_heads, num_heads // num_kv_heads, t_len)

    def one_block(j, carry):
        m, l, acc = carry  # [B,Hkv,G,T], [B,Hkv,G,T], [B,Hkv,G,T,D] float32
        first = j * blk
        start = jnp.minimum(first, s_len - blk)
        kb = jax.lax.dynamic_slice_in_dim(k, start, blk, axis=1)  # [B,blk,Hkv,D]
        vb = jax.lax.dynamic_slice_in_dim(v, start, blk, axis=1)
        k_pos = start + jnp.arange(blk)
        mask = causal_mask(q_pos, k_pos, kv_start) & (k_pos >= first)[None, None, :]  # [B,T,blk]
        logits = jnp.einsum("bthgd,bshd->bhgts", q_g, kb, precision=HIGHEST, preferred_element_type=jnp.float32)
        logits = jnp.where(mask[:, None, None], logits * scale, -jnp.inf)  # [B,Hkv,G,T,blk]
        m_new = jnp.maximum(m, jnp.max(logits, axis=-1))
        m_safe = jnp.where(jnp.isfinite(m_new), m_new, 0.0)  # rows with nothing seen yet stay at 0
        p = jnp.exp(logits - m_safe[..., None])
        alpha = jnp.exp(m - m_safe)
        pv = jnp.einsum("bhgts,bshd->bhgtd", p.astype(v.dtype), vb, precision=HIGHEST,
                        preferred_element_type=jnp.float32)
        return m_new, alpha * l + jnp.sum(p, axis=-1), alpha[..., None] * acc + pv

    init = (jnp.full(stats_shape, -jnp.inf, jnp.float32), jnp.zeros(stats_shape, jnp.float32),
            jnp.zeros((*stats_shape, head_dim), jnp.float32))
    first_block = jnp.min(kv_start) // blk
    last_block = jnp.minimum((key_end + blk - 1) // blk, -(-s_len // blk))
    _, l, acc = jax.lax.fori_loop(first_block, last_block, one_block, init)
    o = acc / jnp.where(l > 0, l, 1.0)[..., None]  # [B,Hkv,G,T,D]
    return jnp.moveaxis(o, 3, 1).reshape(q.shape).astype(v.dtype)


def attention_query_blocked(q, k, v, kv_start, *, block_q: int = DEFAULT_BLOCK_Q):
    """attention_reference under the causal mask of one whole sequence, over query blocks.

    q [B,T,Hq,D], k/v [B,T,Hkv,D], kv_start [B] int32 -> o [B,T,Hq,D] (v's dtype). Query block
    [i, i + block_q) scores only keys [0, i + block_q), so the upper triangle is never computed (about
    (n + 1) / 2n of the dense work for n blocks) and each block's scores are small enough to stay in
    cache. Differentiable (a Python loop of static slices), so it is the training path.
    """
    batch, t_len, num_heads, head_dim = q.shape
    num_kv_heads = k.shape[2]
    scale = 1.0 / jnp.sqrt(jnp.float32(head_dim))
    outs = []
    for first in range(0, t_len, block_q):
        end = min(first + block_q, t_len)
        q_g = _group_queries(q[:, first:end], num_kv_heads)  # [B,bq,Hkv,G,D]
        logits = jnp.einsum("bthgd,bshd->bhgts", q_g, k[:, :end], preferred_element_type=jnp.float32)
        mask = causal_mask(jnp.arange(first, end), jnp.arange(end), kv_start)[:, None, None]  # [B,1,1,bq,end]
        p = jax.nn.softmax(jnp.where(mask, logits * scale, -1e30), axis=-1)
        p = jnp.where(mask, p, 0.0)  # a row that sees no key (a left pad) outputs 0
        o = jnp.einsum("bhgts,bshd->bthgd", p.astype(v.dtype), v[:, :end], preferred_element_type=jnp.float32)
        outs.append(o.reshape(batch, end - first, num_heads, head_dim))
    return jnp.concatenate(outs, axis=1).astype(v.dtype)


def global_attention(q, k, v, *, kv_start=None):
    """Causal attention over a whole sequence. q [B,T,Hq,D] (rotated), k/v [B,T,Hkv,D] -> [B,T,Hq,D].

    The training and parity path (query-blocked). Keys before kv_start[b] (left padding) are never seen.
    """
    return attention_query_blocked(q, k, v, kv_start_or_zeros(kv_start, q.shape[0]))


def _extend(cache: GlobalCache, k, v):
    """Writes k/v [B,T,Hkv,D] at cache.pos -> (k_all, v_all [B,L,Hkv,D], q_pos [T] int32, advanced cache)."""
    t_len = k.shape[1]
    k_all = jax.lax.dynamic_update_slice_in_dim(cache.k, k.astype(cache.k.dtype), cache.pos, axis=1)
    v_all = jax.lax.dynamic_update_slice_in_dim(cache.v, v.astype(cache.v.dtype), cache.pos, axis=1)
    return k_all, v_all, cache.pos + jnp.arange(t_len), GlobalCache(k=k_all, v=v_all, pos=cache.pos + t_len)


def global_attention_chunk(q, k, v, cache: GlobalCache, *, kv_start=None, block_k: int = DEFAULT_BLOCK_K):
    """The next T positions, reading and extending the cache, blocked over keys (memory O(T * block_k)).

    q [B,T,Hq,D], k/v [B,T,Hkv,D] -> (o [B,T,Hq,D], cache advanced by T). The caller guarantees pos + T <= L.
    """
    k_all, v_all, q_pos, cache = _extend(cache, k, v)
    kv_start = kv_start_or_zeros(kv_start, q.shape[0])
    return attention_blocked(q, k_all, v_all, q_pos, kv_start, cache.pos, block_k=block_k), cache


def global_attention_chunk_reference(q, k, v, cache: GlobalCache, *, kv_start=None):
    """global_attention_chunk through attention_reference over the whole cache (tests, measurements)."""
    k_all, v_all, q_pos, cache = _extend(cache, k, v)
    mask = causal_mask(q_pos, jnp.arange(k_all.shape[1]), kv_start_or_zeros(kv_start, q.shape[0]))
    return attention_reference(q, k_all, v_all, mask), cache
