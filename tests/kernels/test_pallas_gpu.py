"""The GPU (Triton) Pallas kernels: interpreted on CPU against the reference cores, lowered to Triton IR
for CUDA on any machine, and compiled against the reference on a GPU (those skip without one)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import assert_close
from jax import export
from kernel_cases import TOLERANCE, Shape, initial_state, qkv

import kernels
from kernels.dispatch import _resolve
from kernels.linear_attention import pallas_gpu as rla_gpu
from kernels.linear_attention.reference import rla_reference
from kernels.sliding_window import pallas_gpu as swa_gpu
from kernels.sliding_window.reference import swa_reference

# Small tiles so the tiny cases span several chunks, key blocks and value tiles; RLA's default grouping
# (about sqrt(chunks) per saved state) makes 3, 2 and 1 super-chunks of the cases below.
RLA_BLOCKS = rla_gpu.BlockSizes(chunk=16, block_v=16)
SWA_BLOCKS = swa_gpu.BlockSizes(block_q=16, block_k=32)
needs_gpu = pytest.mark.skipif(
    jax.default_backend() != "gpu", reason="needs a CUDA GPU (run pytest with JAX_PLATFORMS=cuda)"
)


class Case(NamedTuple):
    """One core call: a full sequence (L = T) or a carried chunk (the ring's W keys first, L = W + T)."""

    shape: Shape
    dtype: str
    feature_map: str
    carried: bool
    first_valid: tuple[int, ...]

    @property
    def id(self) -> str:
        form = "chunk" if self.carried else "full"
        return f"{self.shape.id}-{self.feature_map}-{self.dtype}-{form}-fv{'_'.join(map(str, self.first_valid))}"

    def inputs(self, seed: int):
        """(q [B,T,Hq,D], k, v [B,L,Hkv,D], first_valid [B]) with fresh random values."""
        w = self.shape.window if self.carried else 0
        q, k, v = qkv(np.random.default_rng(seed), self.shape, self.dtype, length=self.shape.time + w)
        return q[:, : self.shape.time], k, v, jnp.array(self.first_valid, jnp.int32)


# T not a multiple of the tiles (100, 20), T a multiple of the chunk (32: slot T gets its own chunk),
# window 0, window >= T, GQA and MHA, left padding (first_valid > 0) and a part-empty ring (< 0),
# both feature maps, f32 and bf16, two value tiles (D=32, Bv=16).
CASES = [
    Case(Shape(2, 100, 4, 2, 32, 8), "float32", "softmax", False, (0, 5)),
    Case(Shape(1, 32, 2, 2, 16, 0), "bfloat16", "relu", False, (0,)),
    Case(Shape(2, 20, 2, 1, 16, 24), "float32", "softmax", True, (-3, 30)),
]


@pytest.mark.parametrize("case,blocks", [(c, RLA_BLOCKS) for c in CASES] + [
    (CASES[0], rla_gpu.BlockSizes(chunk=16, block_v=16, chunks_per_state=1)),  # 7 super-chunks of one chunk
    (CASES[0], rla_gpu.BlockSizes(chunk=16, block_v=32, chunks_per_state=64)),  # one super-chunk, one value tile
], ids=lambda x: x.id if isinstance(x, Case) else f"per{x.chunks_per_state}-bv{x.block_v}")
def test_rla_interpreted_matches_reference(case, blocks):
    q, k, v, fv = case.inputs(seed=0)
    s0_h = initial_state(np.random.default_rng(1), case.shape)  # [Hq, 2D, D]
    s0 = jnp.broadcast_to(s0_h, (case.shape.batch, *s0_h.shape))
    shift = 1 if case.carried else case.shape.window + 1
    kw = dict(shift=shift, feature_map=case.feature_map)
    o_ref, s_ref = rla_reference(q, k, v, s0, fv, **kw)
    o, s = rla_gpu.rla_pallas(q, k, v, s0, fv, block_sizes=blocks, interpret=True, **kw)
    assert o.dtype == v.dtype and s.dtype == jnp.float32
    assert_close("o", o_ref, o, *TOLERANCE[case.dtype])
    assert_close("state_end", s_ref, s, *TOLERANCE["float32"])


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_swa_interpreted_matches_reference(case):
    q, k, v, fv = case.inputs(seed=2)
    offset = case.shape.window if case.carried else 0
    o_ref = swa_reference(q, k, v, fv, offset=offset, window=case.shape.window)
    o = swa_gpu.swa_pallas(q, k, v, fv, offset=offset, window=case.shape.window, block_sizes=SWA_BLOCKS,
                           interpret=True)
    assert o.dtype == v.dtype
    assert_close("o", o_ref, o, *TOLERANCE[case.dtype])


def _triton_kernels(fn, *args) -> str:
    """Lowers fn for CUDA (no GPU needed) and returns its MLIR text."""
    allow = [export.DisabledSafetyCheck.custom_call("__gpu$xla.gpu.triton")]
    return export.export(jax.jit(fn), platforms=("cuda",), disabled_checks=allow)(*args).mlir_module()


def test_default_tiles_lower_to_triton_for_cuda():
    """Triton's rules (power-of-two tiles, 2-D dots >= 16, supported primitives) hold at the default tiles."""
    q = jax.ShapeDtypeStruct((1, 300, 4, 128), jnp.bfloat16)
    k = jax.ShapeDtypeStruct((1, 300 + 512, 2, 128), jnp.bfloat16)
    state = jax.ShapeDtypeStruct((1, 4, 256, 128), jnp.float32)
    fv = jax.ShapeDtypeStruct((1,), jnp.int32)
    rla = _triton_kernels(lambda *a: rla_gpu.rla_pallas(*a, shift=1, feature_map="softmax"), q, k, k, state, fv)
    swa = _triton_kernels(lambda *a: swa_gpu.swa_pallas(*a, offset=512, window=512), q, k, k, fv)
    assert "custom_call @__gpu$xla.gpu.triton" in rla and 'name = "rla_prefill"' in rla
    assert 'name = "rla_state_deltas"' in rla  # 5 chunks of 64 slots: 2 super-chunks
    assert "custom_call @__gpu$xla.gpu.triton" in swa and 'name = "swa_prefill"' in swa


@pytest.mark.parametrize(
    "dim,dtype,declines",
    [(128, jnp.bfloat16, False), (16, jnp.float32, False), (8, jnp.float32, True), (96, jnp.bfloat16, True)],
    ids=["D128-bf16", "D16-f32", "D8", "D96"],
)
def test_decline_reason_names_the_tile_rule(dim, dtype, declines):
    x = jnp.zeros((1, 4, 2, dim), dtype)
    reason = rla_gpu.decline_reason(x, x, 4)
    assert (reason is not None) == declines
    if declines:
        assert f"D={dim}" in reason


# --- compiled on the GPU, realistic sizes ---------------------------------------------------------------
GPU_SHAPE = Shape(1, 4096, 8, 2, 128, 512)
GPU_STATE_TOL = (5e-3, 2e-2)  # bf16 inputs: the feature-map products run in TF32


@needs_gpu
def test_gpu_impl_none_picks_the_pallas_kernels():
    q = jnp.zeros((1, 256, 4, 128), jnp.bfloat16)
    assert _resolve("rla", None, q, q, None, 64) == "pallas"
    assert _resolve("swa_chunk", None, q, q, None, 64) == "pallas"


@needs_gpu
@pytest.mark.parametrize("feature_map", ["softmax", "relu"])
def test_gpu_compiled_full_sequence_matches_reference(feature_map):
    shape = GPU_SHAPE
    q, k, v = qkv(np.random.default_rng(7), shape, "bfloat16")
    kv_start = jnp.array([100], jnp.int32)
    s0 = initial_state(np.random.default_rng(8), shape)
    kw = dict(window=shape.window, feature_map=feature_map, initial_state=s0, kv_start=kv_start)
    o_ref, s_ref = kernels.residual_linear_attention(q, k, v, impl="reference", **kw)
    o, s = kernels.residual_linear_attention(q, k, v, impl="pallas", **kw)
    assert_close("o_rla", o_ref, o, *TOLERANCE["bfloat16"])
    assert_close("state", s_ref, s, *GPU_STATE_TOL)
    swa_ref = kernels.sliding_window_attention(q, k, v, window=shape.window, kv_start=kv_start, impl="reference")
    swa = kernels.sliding_window_attention(q, k, v, window=shape.window, kv_start=kv_start, impl="pallas")
    assert_close("o_swa", swa_ref, swa, *TOLERANCE["bfloat16"])


@needs_gpu
def test_gpu_compiled_chunks_equal_one_call():
    shape = GPU_SHAPE
    q, k, v = qkv(np.random.default_rng(9), shape, "bfloat16")
    cache = kernels.rattention_cache_init(shape.batch, shape.window, shape.heads, shape.kv_heads, shape.dim,
                                          jnp.bfloat16)
    outs_swa, outs_rla = [], []
    for a, b in ((0, 1500), (1500, 1501), (1501, shape.time)):
        o_swa, o_rla, cache = kernels.rattention_chunk(
            q[:, a:b], k[:, a:b], q[:, a:b], k[:, a:b], v[:, a:b], cache, window=shape.window, impl="pallas"
        )
        outs_swa.append(o_swa)
        outs_rla.append(o_rla)
    ref_rla, ref_state = kernels.residual_linear_attention(q, k, v, window=shape.window, impl="reference")
    ref_swa = kernels.sliding_window_attention(q, k, v, window=shape.window, impl="reference")
    assert_close("o_rla", ref_rla, jnp.concatenate(outs_rla, axis=1), *TOLERANCE["bfloat16"])
    assert_close("o_swa", ref_swa, jnp.concatenate(outs_swa, axis=1), *TOLERANCE["bfloat16"])
    assert_close("state", ref_state, cache.state, *GPU_STATE_TOL)
