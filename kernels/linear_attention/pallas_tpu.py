"""RLA core (see reference.py) as a Pallas TPU (Mosaic) kernel; on CPU it runs in TPU interpret mode.

Grid (B, Hkv, N) over chunks of C query slots, the chunk axis last and sequential ("arbitrary"): the
kv head's state S [2D, D] f32 lives in VMEM scratch across chunks. The feature map is applied in the
kernel. The window shift is done by indexing: with shift = m*C + r, query chunk i reads the keys
j in [iC - shift, iC + C - shift), i.e. the last r rows of key block i-m-1 and the first C-r rows of
block i-m, fetched by two BlockSpecs of the same array (no shifted copy). The G query heads of a kv
head share its k/v blocks (GQA without repeating). Layout inside is [B, H, T, D] so blocks are (C, D).
Forward only: the state is never written per chunk, only the end state.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

from kernels.feature_maps import phi

DEFAULT_CHUNK = 128


def decline_reason(q, k, window: int) -> str | None:
    """Interpret mode (CPU) takes anything; Mosaic needs D a multiple of 128 (lane width)."""
    if jax.default_backend() == "tpu" and q.shape[-1] % 128:
        return f"the TPU kernel needs D % 128 == 0, got D={q.shape[-1]}"
    return None


def _shifted_rows(prev_ref, cur_ref, r: int):
    """[C, D]: the last r rows of the previous key block, then the first C - r rows of the current one."""
    if r == 0:
        return cur_ref[0, 0]
    chunk = cur_ref.shape[2]
    return jnp.concatenate([prev_ref[0, 0, chunk - r :], cur_ref[0, 0, : chunk - r]], axis=0)


def _rla_kernel(fv_ref, q_ref, kp_ref, kc_ref, vp_ref, vc_ref, s0_ref, o_ref, s_end_ref, s_ref, *,
                chunk, shift, t_len, l_len, group, feature_map):
    b, i = pl.program_id(0), pl.program_id(2)

    @pl.when(i == 0)
    def _():
        s_ref[...] = jnp.zeros_like(s_ref)

    k = _shifted_rows(kp_ref, kc_ref, shift % chunk)  # [C, D]
    v = _shifted_rows(vp_ref, vc_ref, shift % chunk).astype(jnp.float32)
    slot = i * chunk + jax.lax.broadcasted_iota(jnp.int32, (chunk, 1), 0)  # [C, 1]
    j = slot - shift
    valid = (j >= 0) & (j >= fv_ref[b]) & (j < l_len) & (slot <= t_len)
    fk = jnp.where(valid, phi(k, feature_map), 0.0)  # [C, 2D]
    v = jnp.where(valid, v, 0.0)
    causal = slot >= slot.reshape(1, chunk)  # [C, C]: query slot a reads key slot c <= a
    s = s_ref[...]
    for g in range(group):
        fq = phi(q_ref[0, g], feature_map)  # [C, 2D]
        scores = jnp.where(causal, jax.lax.dot_general(fq, fk, (((1,), (1,)), ((), ()))), 0.0)
        o = jnp.dot(scores, v) + jnp.dot(fq, s) + jnp.dot(fq, s0_ref[0, g])
        o_ref[0, g] = o.astype(o_ref.dtype)
    s_ref[...] = s + jax.lax.dot_general(fk, v, (((0,), (0,)), ((), ())))

    @pl.when(i == pl.num_programs(2) - 1)
    def _():
        for g in range(group):
            s_end_ref[0, g] = s0_ref[0, g] + s_ref[...]


@functools.partial(jax.jit, static_argnames=("shift", "feature_map", "chunk"))
def rla_pallas(q, k, v, state, first_valid, *, shift: int, feature_map: str, chunk: int = DEFAULT_CHUNK):
    batch, t_len, num_heads, head_dim = q.shape
    l_len, num_kv_heads = k.shape[1], k.shape[2]
    group = num_heads // num_kv_heads
    c = min(chunk, -(-(t_len + 1) // 8) * 8)
    n_chunks = -(-(t_len + 1) // c)
    m = shift // c
    n_kblocks = max(-(-l_len // c), 1)
    q_t = jnp.pad(q, [(0, 0), (0, n_chunks * c - t_len), (0, 0), (0, 0)]).transpose(0, 2, 1, 3)  # [B,Hq,P,D]
    kv_pad = [(0, 0), (0, n_kblocks * c - l_len), (0, 0), (0, 0)]
    k_t = jnp.pad(k, kv_pad).transpose(0, 2, 1, 3)  # [B,Hkv,Lp,D]
    v_t = jnp.pad(v, kv_pad).transpose(0, 2, 1, 3)

    def key_block(offset):
        def index(b, h, i, fv):
            return b, h, jnp.clip(i - m - offset, 0, n_kblocks - 1), 0

        return pl.BlockSpec((1, 1, c, head_dim), index)

    head_block = pl.BlockSpec((1, group, c, head_dim), lambda b, h, i, fv: (b, h, i, 0))
    state_block = pl.BlockSpec((1, group, 2 * head_dim, head_dim), lambda b, h, i, fv: (b, h, 0, 0))
    kernel = functools.partial(
        _rla_kernel, chunk=c, shift=shift, t_len=t_len, l_len=l_len, group=group, feature_map=feature_map
    )
    o, state_end = pl.pallas_call(
        kernel,
        grid_spec=pltpu.PrefetchScalarGridSpec(
            num_scalar_prefetch=1,
            grid=(batch, num_kv_heads, n_chunks),
            in_specs=[head_block, key_block(1), key_block(0), key_block(1), key_block(0), state_block],
            out_specs=[head_block, state_block],
            scratch_shapes=[pltpu.VMEM((2 * head_dim, head_dim), jnp.float32)],
        ),
        out_shape=[
            jax.ShapeDtypeStruct((batch, num_heads, n_chunks * c, head_dim), v.dtype),
            jax.ShapeDtypeStruct(state.shape, jnp.float32),
        ],
        compiler_params=pltpu.CompilerParams(dimension_semantics=("parallel", "parallel", "arbitrary")),
        interpret=pltpu.InterpretParams() if jax.default_backend() == "cpu" else False,
    )(first_valid.astype(jnp.int32), q_t, k_t, k_t, v_t, v_t, state)
    return o.transpose(0, 2, 1, 3)[:, :t_len], state_end
