"""SWA core (see reference.py) as a flash-style Pallas GPU kernel (Triton lowering); generic interpret on CPU.

Grid (B, Hq, NQ): one program per block of Bq queries of one query head. Query block i (key indices
iBq + offset ..) sees only the keys in [iBq + offset - W, iBq + offset + Bq - 1], so its loop over key
blocks of Bk runs from the first block touching that span (or first_valid, whichever is later) to the
last: cost O(T * (W + Bq + Bk)), never O(T^2). Online softmax (running max m, sum l, accumulator acc, all
float32) in registers across the loop. Layout stays [B, T, H, D] (strided blocks, no transposes); GQA
through the k/v index map (query head h reads kv head h // G), nothing repeated. The logits and p @ v
take the inputs' dtype with float32 accumulation (float32 inputs: full-precision dots, not TF32).

Why Triton and not Mosaic GPU: jax 0.11 prefers Mosaic GPU on Hopper (and warns that the Triton
lowering is deprecated), but a Mosaic GPU kernel can be neither run nor interpreted with jax 0.10.2 on
CPU, and the session that wrote this had no GPU; this kernel is verified in interpret mode and lowered to
Triton IR on CPU (tests/kernels/test_pallas_gpu.py). A Mosaic GPU port would change: k/v blocks copied
to shared memory by TMA with a multi-stage barrier pipeline (instead of Triton's implicit pipelining),
the two products as WGMMA on a warpgroup with the accumulator in registers, and warp specialization
(producer warpgroup for TMA, consumer warpgroups for math); the masking and loop bounds stay as here.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

NEG = -1e30
HIGHEST = jax.lax.Precision.HIGHEST


@dataclasses.dataclass(frozen=True)
class BlockSizes:
    """Tile sizes (powers of two >= 16) and Triton launch parameters."""

    block_q: int = 64
    block_k: int = 64
    num_warps: int = 4
    num_stages: int = 2

    @classmethod
    def get_default(cls) -> BlockSizes:
        return cls()


def decline_reason(q, k, window: int) -> str | None:
    """Triton tiles are powers of two and tl.dot needs every dimension >= 16: D must be one of 16..256."""
    head_dim = q.shape[-1]
    if head_dim < 16 or head_dim > 256 or head_dim & (head_dim - 1):
        return f"the GPU Pallas kernels need D a power of two in 16..256 (tl.dot tiles), got D={head_dim}"
    if q.dtype != k.dtype or q.dtype not in (jnp.float32, jnp.bfloat16, jnp.float16):
        return f"the GPU Pallas kernels need q, k, v all float32, bfloat16 or float16, got {q.dtype}, {k.dtype}"
    return None


def _swa_kernel(fv_ref, q_ref, k_ref, v_ref, o_ref, *, block_q, block_k, offset, window, l_len, n_kblocks,
                scale):
    """One query block: q_ref [Bq, D]; k_ref, v_ref [Lp, D] (the whole key axis); o_ref [Bq, D]."""
    b, i = pl.program_id(0), pl.program_id(2)
    fv = fv_ref[b]
    q = q_ref[...]
    q_first = i * block_q + offset  # key index of this block's first query
    q_index = q_first + jax.lax.broadcasted_iota(jnp.int32, (block_q, 1), 0)  # [Bq, 1]
    lo = jnp.maximum(jnp.maximum(q_first - window, fv), 0) // block_k
    hi = jnp.minimum((q_first + block_q + block_k - 1) // block_k, n_kblocks)

    def step(kb, carry):
        m, l, acc = carry  # [Bq], [Bq], [Bq, D] f32
        start = pl.multiple_of(kb * block_k, block_k)
        k = k_ref[pl.ds(start, block_k), :]
        v = v_ref[pl.ds(start, block_k), :]
        logits = jax.lax.dot_general(
            q, k, (((1,), (1,)), ((), ())), precision=HIGHEST, preferred_element_type=jnp.float32
        ) * scale  # [Bq, Bk]
        k_index = start + jax.lax.broadcasted_iota(jnp.int32, (1, block_k), 1)  # [1, Bk]
        dist = q_index - k_index
        mask = (dist >= 0) & (dist <= window) & (k_index >= fv) & (k_index < l_len)
        logits = jnp.where(mask, logits, NEG)
        m_new = jnp.maximum(m, jnp.max(logits, axis=1))
        p = jnp.where(mask, jnp.exp(logits - m_new[:, None]), 0.0)
        alpha = jnp.exp(m - m_new)
        pv = jnp.dot(p.astype(v.dtype), v, precision=HIGHEST, preferred_element_type=jnp.float32)
        return m_new, alpha * l + jnp.sum(p, axis=1), alpha[:, None] * acc + pv

    init = (
        jnp.full((block_q,), NEG, jnp.float32),
        jnp.zeros((block_q,), jnp.float32),
        jnp.zeros((block_q, q.shape[1]), jnp.float32),
    )
    _, l, acc = jax.lax.fori_loop(lo, hi, step, init)
    o_ref[...] = (acc / jnp.where(l > 0, l, 1.0)[:, None]).astype(o_ref.dtype)


def _pad_time(x, length: int):
    """[B, T, H, D] -> [B, length, H, D], zeros after T (no copy when T == length)."""
    return jnp.pad(x, [(0, 0), (0, length - x.shape[1]), (0, 0), (0, 0)])


@functools.partial(jax.jit, static_argnames=("offset", "window", "block_sizes", "interpret"))
def swa_pallas(q, k, v, first_valid, *, offset: int, window: int, block_sizes: BlockSizes | None = None,
               interpret: bool = False):
    """The SWA core: q [B,T,Hq,D], k, v [B,L,Hkv,D], first_valid [B] int32 -> o [B,T,Hq,D] in v's dtype."""
    bs = block_sizes or BlockSizes.get_default()
    batch, t_len, num_heads, head_dim = q.shape
    l_len, num_kv_heads = k.shape[1], k.shape[2]
    group = num_heads // num_kv_heads
    n_q = -(-t_len // bs.block_q)
    n_kblocks = max(-(-l_len // bs.block_k), 1)
    q_p = _pad_time(q, n_q * bs.block_q)  # [B,Tp,Hq,D]
    k_p, v_p = _pad_time(k, n_kblocks * bs.block_k), _pad_time(v, n_kblocks * bs.block_k)  # [B,Lp,Hkv,D]
    kernel = functools.partial(
        _swa_kernel, block_q=bs.block_q, block_k=bs.block_k, offset=offset, window=window, l_len=l_len,
        n_kblocks=n_kblocks, scale=1.0 / float(head_dim) ** 0.5,
    )
    query_block = pl.BlockSpec((None, bs.block_q, None, head_dim), lambda b, h, i: (b, i, h, 0))
    key_axis = pl.BlockSpec((None, n_kblocks * bs.block_k, None, head_dim), lambda b, h, i: (b, 0, h // group, 0))
    o = pl.pallas_call(
        kernel,
        grid=(batch, num_heads, n_q),
        in_specs=[pl.no_block_spec, query_block, key_axis, key_axis],
        out_specs=query_block,
        out_shape=jax.ShapeDtypeStruct(q_p.shape, v.dtype),
        compiler_params=plgpu.CompilerParams(num_warps=bs.num_warps, num_stages=bs.num_stages),
        interpret=interpret,
        name="swa_prefill",
    )(first_valid.astype(jnp.int32), q_p, k_p, v_p)
    return o[:, :t_len]
