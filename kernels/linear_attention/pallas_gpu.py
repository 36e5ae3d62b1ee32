"""RLA core (see reference.py) as a Pallas GPU kernel (Triton lowering); generic interpret mode on CPU.

Grid (B, Hq, D / Bv): one program per query head and tile of Bv value columns (the columns of the state
and of o are independent, so splitting them adds parallelism without any reduction). Inside, a sequential
loop over chunks of C query slots carries the float32 state tile S [2D, Bv] in registers (kept as its
two halves [D, Bv], one per half of phi). Per chunk c (slots cC .. cC+C-1):
    o     = tril(phi(q) phi(k)^T) v + phi(q) S        (then S += phi(k)^T v)
with the feature map computed in the kernel. The window shift is done by indexing: the chunk's keys are
j = u - shift for its slots u, loaded from the unshifted key array at row cC - shift (clamped into the
array; rows that do not belong to the chunk are zeroed by index), so no shifted copy exists. The initial
state is the loop's starting value, so the end state is the loop's result (plus the key of slot T when
T is a multiple of C). GQA: query head h reads kv head h // G through the index map, nothing repeated;
each query head recomputes its group's phi(k)^T v (G-fold state-update work, for G-fold parallelism).
Forward only: no per-chunk states are stored. Layout stays [B, T, H, D] (strided blocks, no transposes).

Precision: float32 inputs use full float32 dots; bf16/f16 inputs use the default precision, which on a
GPU is TF32 (about 1e-3 relative on the products, float32 accumulation and state).

Why Triton and not Mosaic GPU: jax 0.11 prefers Mosaic GPU on Hopper (and warns that the Triton lowering
is deprecated), but a Mosaic GPU kernel can be neither run nor interpreted with jax 0.10.2 on CPU, and the
session that wrote this had no GPU; this kernel is verified in interpret mode and lowered to Triton IR on
CPU (tests/kernels/test_pallas_gpu.py). A Mosaic GPU port would change: q/k/v chunks staged to shared
memory by TMA behind barriers (a multi-stage pipeline over chunks), the four products per chunk as WGMMA
with the state tile as a register accumulator of one warpgroup, and a producer warpgroup for the copies;
the indexing that does the shift, the masks and the loop stay as here.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

from kernels.sliding_window.pallas_gpu import decline_reason

__all__ = ["BlockSizes", "decline_reason", "rla_pallas"]

HIGHEST = jax.lax.Precision.HIGHEST


@dataclasses.dataclass(frozen=True)
class BlockSizes:
    """Chunk length C and value tile Bv (powers of two >= 16; Bv is capped at D) and Triton launch parameters."""

    chunk: int = 64
    block_v: int = 64
    num_warps: int = 4
    num_stages: int = 2

    @classmethod
    def get_default(cls) -> BlockSizes:
        return cls()


def _phi_halves(x, feature_map: str):
    """x [C, D] -> (phi(x)[:, :D], phi(x)[:, D:]) f32: feature_maps.phi kept as two D-wide tiles for tl.dot."""
    x = x.astype(jnp.float32)
    if feature_map == "relu":
        return jnp.maximum(x, 0.0), jnp.maximum(-x, 0.0)
    e_pos = jnp.exp(x - jnp.max(x, axis=1, keepdims=True))
    e_neg = jnp.exp(-x - jnp.max(-x, axis=1, keepdims=True))
    return e_pos / jnp.sum(e_pos, axis=1, keepdims=True), e_neg / jnp.sum(e_neg, axis=1, keepdims=True)


def _rla_kernel(fv_ref, q_ref, k_ref, v_ref, s0_ref, o_ref, s_end_ref, *, chunk, shift, t_len, l_len,
                feature_map, precision):
    """q_ref [Tp, D], k_ref [Lp, D], v_ref [Lp, Bv] (whole time axes); s0_ref, s_end_ref [2D, Bv]; o_ref [Tp, Bv]."""
    fv = fv_ref[pl.program_id(0)]
    head_dim = q_ref.shape[1]
    rows = jax.lax.broadcasted_iota(jnp.int32, (chunk, 1), 0)  # [C, 1]
    cols = jax.lax.broadcasted_iota(jnp.int32, (1, chunk), 1)  # [1, C]

    def dot(a, b, contract):  # f32 [m, n] = a . b over the given (lhs, rhs) dims
        return jax.lax.dot_general(a, b, (contract, ((), ())), precision=precision,
                                   preferred_element_type=jnp.float32)

    def chunk_keys(c):
        """Chunk c's keys j = u - shift: (phi halves [C, D], v [C, Bv]) zeroed off the chunk, and row 0's j."""
        want = c * chunk - shift
        start = jnp.clip(want, 0, l_len - chunk)
        j = start + rows
        ok = (j >= want) & (j < want + chunk) & (j >= fv) & (j + shift <= t_len)
        fk_pos, fk_neg = _phi_halves(k_ref[pl.ds(start, chunk), :], feature_map)
        v = v_ref[pl.ds(start, chunk), :].astype(jnp.float32)
        return jnp.where(ok, fk_pos, 0.0), jnp.where(ok, fk_neg, 0.0), jnp.where(ok, v, 0.0), start

    def fold(s, fk_pos, fk_neg, v):  # S += phi(k)^T v, per half: [D, Bv]
        return s[0] + dot(fk_pos, v, ((0,), (0,))), s[1] + dot(fk_neg, v, ((0,), (0,)))

    def step(c, s):
        fk_pos, fk_neg, v, start = chunk_keys(c)
        q_start = pl.multiple_of(c * chunk, chunk)
        fq_pos, fq_neg = _phi_halves(q_ref[pl.ds(q_start, chunk), :], feature_map)
        scores = dot(fq_pos, fk_pos, ((1,), (1,))) + dot(fq_neg, fk_neg, ((1,), (1,)))  # [C, C]
        causal = q_start + rows >= start + shift + cols  # query slot >= key slot
        o = dot(jnp.where(causal, scores, 0.0), v, ((1,), (0,)))
        o = o + dot(fq_pos, s[0], ((1,), (0,))) + dot(fq_neg, s[1], ((1,), (0,)))  # [C, Bv]
        o_ref[pl.ds(q_start, chunk), :] = o.astype(o_ref.dtype)
        return fold(s, fk_pos, fk_neg, v)

    s0 = (s0_ref[pl.ds(0, head_dim), :], s0_ref[pl.ds(head_dim, head_dim), :])
    n_q = -(-t_len // chunk)
    s = jax.lax.fori_loop(0, n_q, step, s0)
    if t_len % chunk == 0:  # slot T starts a chunk of its own; it only feeds the end state
        fk_pos, fk_neg, v, _ = chunk_keys(n_q)
        s = fold(s, fk_pos, fk_neg, v)
    s_end_ref[pl.ds(0, head_dim), :] = s[0]
    s_end_ref[pl.ds(head_dim, head_dim), :] = s[1]


def _pad_time(x, length: int):
    """[B, T, H, D] -> [B, length, H, D], zeros after T (no copy when T == length)."""
    return jnp.pad(x, [(0, 0), (0, length - x.shape[1]), (0, 0), (0, 0)])


@functools.partial(jax.jit, static_argnames=("shift", "feature_map", "block_sizes", "interpret"))
def rla_pallas(q, k, v, state, first_valid, *, shift: int, feature_map: str, block_sizes: BlockSizes | None = None,
               interpret: bool = False):
    """The RLA core: q [B,T,Hq,D], k, v [B,L,Hkv,D], state [B,Hq,2D,D] f32, first_valid [B] int32
    -> (o [B,T,Hq,D] in v's dtype, state_end [B,Hq,2D,D] f32)."""
    bs = block_sizes or BlockSizes.get_default()
    batch, t_len, num_heads, head_dim = q.shape
    l_len, num_kv_heads = k.shape[1], k.shape[2]
    group = num_heads // num_kv_heads
    c, bv = bs.chunk, min(bs.block_v, head_dim)
    t_pad = -(-t_len // c) * c
    l_pad = max(l_len, c)  # the chunk loads need at least C rows
    q_p = _pad_time(q, t_pad)  # [B,Tp,Hq,D]
    k_p, v_p = _pad_time(k, l_pad), _pad_time(v, l_pad)  # [B,Lp,Hkv,D]
    kernel = functools.partial(
        _rla_kernel, chunk=c, shift=shift, t_len=t_len, l_len=l_pad, feature_map=feature_map,
        precision=HIGHEST if v.dtype == jnp.float32 else None,
    )
    state_tile = pl.BlockSpec((None, None, 2 * head_dim, bv), lambda b, h, t: (b, h, 0, t))
    o, state_end = pl.pallas_call(
        kernel,
        grid=(batch, num_heads, head_dim // bv),
        in_specs=[
            pl.no_block_spec,
            pl.BlockSpec((None, t_pad, None, head_dim), lambda b, h, t: (b, 0, h, 0)),
            pl.BlockSpec((None, l_pad, None, head_dim), lambda b, h, t: (b, 0, h // group, 0)),
            pl.BlockSpec((None, l_pad, None, bv), lambda b, h, t: (b, 0, h // group, t)),
            state_tile,
        ],
        out_specs=[pl.BlockSpec((None, t_pad, None, bv), lambda b, h, t: (b, 0, h, t)), state_tile],
        out_shape=[
            jax.ShapeDtypeStruct((batch, t_pad, num_heads, head_dim), v.dtype),
            jax.ShapeDtypeStruct(state.shape, jnp.float32),
        ],
        compiler_params=plgpu.CompilerParams(num_warps=bs.num_warps, num_stages=bs.num_stages),
        interpret=interpret,
        name="rla_prefill",
    )(first_valid.astype(jnp.int32), q_p, k_p, v_p, state)
    return o[:, :t_len], state_end
