"""SWA core (see reference.py) as a flash-style Pallas TPU (Mosaic) kernel; TPU interpret mode on CPU.

Grid (B, Hkv, NQ, NK): query block i of C queries (key indices iC+offset ..) needs only the keys in
[iC + offset - W, iC + offset + C - 1], i.e. NK = (W + C - 1) // C + 2 key blocks starting at block
floor((iC + offset - W) / C); blocks outside the window are never visited, so cost is O(T * (W + C)).
The key axis is last ("arbitrary") with an online softmax in VMEM scratch (m, l, acc per query head of
the group). Index maps clamp out-of-range blocks to a valid block; their keys are masked by index.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

from kernels.linear_attention.pallas_tpu import decline_reason  # same lane-width rule

__all__ = ["decline_reason", "swa_pallas"]

DEFAULT_BLOCK = 128
NEG = -1e30


def _swa_kernel(fv_ref, q_ref, k_ref, v_ref, o_ref, m_ref, l_ref, acc_ref, *, block, offset, window, l_len,
                group, scale):
    b, i, kk = pl.program_id(0), pl.program_id(2), pl.program_id(3)

    @pl.when(kk == 0)
    def _():
        m_ref[...] = jnp.full_like(m_ref, NEG)
        l_ref[...] = jnp.zeros_like(l_ref)
        acc_ref[...] = jnp.zeros_like(acc_ref)

    q_index = i * block + offset + jax.lax.broadcasted_iota(jnp.int32, (block, 1), 0)  # [C, 1]
    first = jnp.floor_divide(i * block + offset - window, block)
    k_index = (first + kk) * block + jax.lax.broadcasted_iota(jnp.int32, (1, block), 1)  # [1, C]
    dist = q_index - k_index
    mask = (dist >= 0) & (dist <= window) & (k_index >= 0) & (k_index >= fv_ref[b]) & (k_index < l_len)
    k, v = k_ref[0, 0], v_ref[0, 0]
    for g in range(group):
        logits = jax.lax.dot_general(q_ref[0, g], k, (((1,), (1,)), ((), ())), preferred_element_type=jnp.float32)
        logits = jnp.where(mask, logits * scale, NEG)
        m_prev = m_ref[g]
        m_new = jnp.maximum(m_prev, jnp.max(logits, axis=1, keepdims=True))
        p = jnp.where(mask, jnp.exp(logits - m_new), 0.0)
        alpha = jnp.exp(m_prev - m_new)
        l_ref[g] = alpha * l_ref[g] + jnp.sum(p, axis=1, keepdims=True)
        acc_ref[g] = alpha * acc_ref[g] + jnp.dot(p.astype(v.dtype), v, preferred_element_type=jnp.float32)
        m_ref[g] = m_new

    @pl.when(kk == pl.num_programs(3) - 1)
    def _():
        for g in range(group):
            denom = l_ref[g]
            o_ref[0, g] = (acc_ref[g] / jnp.where(denom > 0, denom, 1.0)).astype(o_ref.dtype)


@functools.partial(jax.jit, static_argnames=("offset", "window", "block"))
def swa_pallas(q, k, v, first_valid, *, offset: int, window: int, block: int = DEFAULT_BLOCK):
    batch, t_len, num_heads, head_dim = q.shape
    l_len, num_kv_heads = k.shape[1], k.shape[2]
    group = num_heads // num_kv_heads
    c = min(block, -(-t_len // 8) * 8)
    n_q = -(-t_len // c)
    n_k = (window + c - 1) // c + 2
    n_kblocks = max(-(-l_len // c), 1)
    q_t = jnp.pad(q, [(0, 0), (0, n_q * c - t_len), (0, 0), (0, 0)]).transpose(0, 2, 1, 3)  # [B,Hq,P,D]
    kv_pad = [(0, 0), (0, n_kblocks * c - l_len), (0, 0), (0, 0)]
    k_t = jnp.pad(k, kv_pad).transpose(0, 2, 1, 3)  # [B,Hkv,Lp,D]
    v_t = jnp.pad(v, kv_pad).transpose(0, 2, 1, 3)

    def key_index(b, h, i, kk, fv):
        first = jnp.floor_divide(i * c + offset - window, c)
        return b, h, jnp.clip(first + kk, 0, n_kblocks - 1), 0

    head_block = pl.BlockSpec((1, group, c, head_dim), lambda b, h, i, kk, fv: (b, h, i, 0))
    key_block = pl.BlockSpec((1, 1, c, head_dim), key_index)
    kernel = functools.partial(
        _swa_kernel, block=c, offset=offset, window=window, l_len=l_len, group=group,
        scale=1.0 / float(head_dim) ** 0.5,
    )
    o = pl.pallas_call(
        kernel,
        grid_spec=pltpu.PrefetchScalarGridSpec(
            num_scalar_prefetch=1,
            grid=(batch, num_kv_heads, n_q, n_k),
            in_specs=[head_block, key_block, key_block],
            out_specs=head_block,
            scratch_shapes=[
                pltpu.VMEM((group, c, 1), jnp.float32),
                pltpu.VMEM((group, c, 1), jnp.float32),
                pltpu.VMEM((group, c, head_dim), jnp.float32),
            ],
        ),
        out_shape=jax.ShapeDtypeStruct((batch, num_heads, n_q * c, head_dim), v.dtype),
        compiler_params=pltpu.CompilerParams(
            dimension_semantics=("parallel", "parallel", "parallel", "arbitrary")
        ),
        interpret=pltpu.InterpretParams() if jax.default_backend() == "cpu" else False,
    )(first_valid.astype(jnp.int32), q_t, k_t, v_t)
    return o.transpose(0, 2, 1, 3)[:, :t_len]
