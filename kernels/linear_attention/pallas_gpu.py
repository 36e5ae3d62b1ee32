"""RLA core (see reference.py) as Pallas GPU kernels (Triton lowering); generic interpret mode on CPU.

Flexible state saving (as in chunked.py): the T + 1 query slots are cut into chunks of C slots, and the
chunks into N super-chunks of `chunks_per_state` chunks (default about sqrt(chunks): 23 super-chunks of
23 chunks at 64K with C = 128), so the work has N-fold parallelism along the sequence:
1. `_delta_kernel`, grid (B * N, Hkv, D / Bv): each super-chunk's state delta sum phi(k)^T v, once per
   KV head (query heads of a group share it).
2. XLA: an exclusive prefix sum over the deltas plus the initial state gives every super-chunk's start
   state per query head ([B, N, Hq, 2D, D] float32, the only states kept). Skipped when N = 1.
3. `_rla_kernel`, grid (B * N, Hq, D / Bv): one program per super-chunk, query head and tile of Bv value
   columns (the columns of the state and of o are independent). A loop over the super-chunk's chunks
   carries the float32 state tile S [2D, Bv] in registers (as two halves [D, Bv], one per half of phi):
       o = tril(phi(q) phi(k)^T) v + phi(q) S        (then S += phi(k)^T v)
   The last super-chunk's final S is the end state (the chunk holding slot T folds that slot's key).
The window shift is done by indexing: a chunk's keys are j = u - shift for its slots u, loaded from the
unshifted key array at row cC - shift (clamped into the array; rows that do not belong to the chunk are
zeroed by index), so no shifted copy exists. GQA: query head h reads kv head h // G through the index
map, nothing repeated. Forward only. Layout stays [B, T, H, D] (strided blocks, no transposes).

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

from kernels.linear_attention.chunked import balanced_chunks_per_state, exclusive_prefix_sum
from kernels.sliding_window.pallas_gpu import decline_reason

__all__ = ["BlockSizes", "decline_reason", "rla_pallas"]

HIGHEST = jax.lax.Precision.HIGHEST


@dataclasses.dataclass(frozen=True)
class BlockSizes:
    """Chunk length C and value tile Bv (powers of two >= 16; Bv is capped at D), chunks per saved state
    (None: balanced_chunks_per_state) and Triton launch parameters."""

    chunk: int = 64
    block_v: int = 64
    chunks_per_state: int | None = None
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


@dataclasses.dataclass(frozen=True)
class _Walk:
    """What both kernels know about the chunk walk: chunk C, key shift, T, padded key rows, feature map,
    dot precision, chunks per super-chunk and super-chunks N."""

    chunk: int
    shift: int
    t_len: int
    l_len: int
    feature_map: str
    precision: object
    per_state: int
    n_super: int

    def dot(self, a, b, contract):  # f32 [m, n] = a . b over the given (lhs, rhs) dims
        return jax.lax.dot_general(a, b, (contract, ((), ())), precision=self.precision,
                                   preferred_element_type=jnp.float32)

    def batch_and_first_chunk(self, fv_ref):
        """(first_valid of this program's row, index of its super-chunk's first chunk)."""
        row, sup = pl.program_id(0) // self.n_super, pl.program_id(0) % self.n_super
        return fv_ref[row], sup * self.per_state

    def chunk_keys(self, k_ref, v_ref, c, fv):
        """Chunk c's keys j = u - shift: (phi halves [C, D], v [C, Bv]) zeroed off the chunk, and row 0's j."""
        rows = jax.lax.broadcasted_iota(jnp.int32, (self.chunk, 1), 0)  # [C, 1]
        want = c * self.chunk - self.shift
        start = jnp.clip(want, 0, self.l_len - self.chunk)
        j = start + rows
        ok = (j >= want) & (j < want + self.chunk) & (j >= fv) & (j + self.shift <= self.t_len)
        fk_pos, fk_neg = _phi_halves(k_ref[pl.ds(start, self.chunk), :], self.feature_map)
        v = v_ref[pl.ds(start, self.chunk), :].astype(jnp.float32)
        return jnp.where(ok, fk_pos, 0.0), jnp.where(ok, fk_neg, 0.0), jnp.where(ok, v, 0.0), start

    def fold(self, s, fk_pos, fk_neg, v):  # S += phi(k)^T v, per half: [D, Bv]
        return s[0] + self.dot(fk_pos, v, ((0,), (0,))), s[1] + self.dot(fk_neg, v, ((0,), (0,)))


def _delta_kernel(fv_ref, k_ref, v_ref, delta_ref, *, walk: _Walk):
    """k_ref [Lp, D], v_ref [Lp, Bv]; delta_ref [2D, Bv]: the super-chunk's sum of phi(k)^T v."""
    fv, first = walk.batch_and_first_chunk(fv_ref)
    head_dim = k_ref.shape[1]

    def step(i, s):
        fk_pos, fk_neg, v, _ = walk.chunk_keys(k_ref, v_ref, first + i, fv)
        return walk.fold(s, fk_pos, fk_neg, v)

    zeros = jnp.zeros((head_dim, delta_ref.shape[1]), jnp.float32)
    s = jax.lax.fori_loop(0, walk.per_state, step, (zeros, zeros))
    delta_ref[pl.ds(0, head_dim), :] = s[0]
    delta_ref[pl.ds(head_dim, head_dim), :] = s[1]


def _rla_kernel(fv_ref, q_ref, k_ref, v_ref, start_ref, o_ref, end_ref, *, walk: _Walk):
    """q_ref [Tp, D], k_ref [Lp, D], v_ref [Lp, Bv] (whole time axes); start_ref, end_ref [2D, Bv] (this
    super-chunk's first and final state); o_ref [Tp, Bv] (this super-chunk's rows are written)."""
    fv, first = walk.batch_and_first_chunk(fv_ref)
    head_dim, chunk = q_ref.shape[1], walk.chunk
    rows = jax.lax.broadcasted_iota(jnp.int32, (chunk, 1), 0)  # [C, 1]
    cols = jax.lax.broadcasted_iota(jnp.int32, (1, chunk), 1)  # [1, C]

    def step(i, s):
        c = first + i
        fk_pos, fk_neg, v, start = walk.chunk_keys(k_ref, v_ref, c, fv)
        q_start = pl.multiple_of(c * chunk, chunk)
        fq_pos, fq_neg = _phi_halves(q_ref[pl.ds(q_start, chunk), :], walk.feature_map)
        scores = walk.dot(fq_pos, fk_pos, ((1,), (1,))) + walk.dot(fq_neg, fk_neg, ((1,), (1,)))  # [C, C]
        causal = q_start + rows >= start + walk.shift + cols  # query slot >= key slot
        o = walk.dot(jnp.where(causal, scores, 0.0), v, ((1,), (0,)))
        o = o + walk.dot(fq_pos, s[0], ((1,), (0,))) + walk.dot(fq_neg, s[1], ((1,), (0,)))  # [C, Bv]
        o_ref[pl.ds(q_start, chunk), :] = o.astype(o_ref.dtype)
        return walk.fold(s, fk_pos, fk_neg, v)

    s0 = (start_ref[pl.ds(0, head_dim), :], start_ref[pl.ds(head_dim, head_dim), :])
    s = jax.lax.fori_loop(0, walk.per_state, step, s0)
    end_ref[pl.ds(0, head_dim), :] = s[0]
    end_ref[pl.ds(head_dim, head_dim), :] = s[1]


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
    n_chunks = -(-(t_len + 1) // c)  # slot T (the end state's last key) included
    per_state = min(bs.chunks_per_state or balanced_chunks_per_state(t_len, c), n_chunks)
    n_super = -(-n_chunks // per_state)
    t_pad = n_super * per_state * c
    l_pad = max(l_len, c)  # the chunk loads need at least C rows
    q_p = _pad_time(q, t_pad)  # [B,Tp,Hq,D]
    k_p, v_p = _pad_time(k, l_pad), _pad_time(v, l_pad)  # [B,Lp,Hkv,D]
    walk = _Walk(c, shift, t_len, l_pad, feature_map, HIGHEST if v.dtype == jnp.float32 else None,
                 per_state, n_super)
    params = dict(compiler_params=plgpu.CompilerParams(num_warps=bs.num_warps, num_stages=bs.num_stages),
                  interpret=interpret)
    fv = first_valid.astype(jnp.int32)
    keys = pl.BlockSpec((None, l_pad, None, head_dim), lambda bn, h, t: (bn // n_super, 0, h // group, 0))
    values = pl.BlockSpec((None, l_pad, None, bv), lambda bn, h, t: (bn // n_super, 0, h // group, t))
    tile = pl.BlockSpec((None, None, None, 2 * head_dim, bv), lambda bn, h, t: (bn // n_super, bn % n_super, h, 0, t))

    starts = state[:, None]  # [B,N,Hq,2D,D]: the initial state, plus the deltas before each super-chunk
    if n_super > 1:
        deltas = pl.pallas_call(
            functools.partial(_delta_kernel, walk=walk),
            grid=(batch * n_super, num_kv_heads, head_dim // bv),
            in_specs=[pl.no_block_spec,
                      pl.BlockSpec((None, l_pad, None, head_dim), lambda bn, h, t: (bn // n_super, 0, h, 0)),
                      pl.BlockSpec((None, l_pad, None, bv), lambda bn, h, t: (bn // n_super, 0, h, t))],
            out_specs=tile,
            out_shape=jax.ShapeDtypeStruct((batch, n_super, num_kv_heads, 2 * head_dim, head_dim), jnp.float32),
            name="rla_state_deltas", **params,
        )(fv, k_p, v_p)
        starts = starts + jnp.repeat(exclusive_prefix_sum(deltas, axis=1), group, axis=2)

    o, ends = pl.pallas_call(
        functools.partial(_rla_kernel, walk=walk),
        grid=(batch * n_super, num_heads, head_dim // bv),
        in_specs=[
            pl.no_block_spec,
            pl.BlockSpec((None, t_pad, None, head_dim), lambda bn, h, t: (bn // n_super, 0, h, 0)),
            keys, values, tile,
        ],
        out_specs=[pl.BlockSpec((None, t_pad, None, bv), lambda bn, h, t: (bn // n_super, 0, h, t)), tile],
        out_shape=[
            jax.ShapeDtypeStruct((batch, t_pad, num_heads, head_dim), v.dtype),
            jax.ShapeDtypeStruct((batch, n_super, num_heads, 2 * head_dim, head_dim), jnp.float32),
        ],
        name="rla_prefill", **params,
    )(fv, q_p, k_p, v_p, jnp.broadcast_to(starts, (batch, n_super, num_heads, 2 * head_dim, head_dim)))
    return o[:, :t_len], ends[:, -1]
