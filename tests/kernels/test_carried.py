"""Chunked prefill and decode steps continue exactly where one full-sequence call would be."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import assert_close
from kernel_cases import SHAPES, TOLERANCE, Shape, initial_state, qkv

import kernels

TOL = TOLERANCE["float32"]


def split_points(rng: np.random.Generator, length: int, decode_steps: int) -> list[int]:
    """One random chunk boundary over the first length - decode_steps positions."""
    prefill = length - decode_steps
    cuts = sorted(set(rng.choice(np.arange(1, prefill), size=1, replace=False).tolist()))
    return [0, *cuts, prefill]


def run_carried(q, k, v, shape: Shape, bounds, s0, kv_start, impl, feature_map="softmax"):
    """Chunks over bounds, then one decode step per remaining position -> (o_swa, o_rla, cache)."""
    cache = kernels.rattention_cache_init(
        shape.batch, shape.window, shape.heads, shape.kv_heads, shape.dim, q.dtype, initial_state=s0
    )
    kw = dict(window=shape.window, feature_map=feature_map, kv_start=kv_start, impl=impl)
    outs_swa, outs_rla = [], []
    for a, b in zip(bounds[:-1], bounds[1:]):
        o_swa, o_rla, cache = kernels.rattention_chunk(q[:, a:b], k[:, a:b], q[:, a:b], k[:, a:b], v[:, a:b], cache, **kw)
        outs_swa.append(o_swa)
        outs_rla.append(o_rla)
    for t in range(bounds[-1], q.shape[1]):
        o_swa, o_rla, cache = kernels.rattention_decode_step(q[:, t], k[:, t], q[:, t], k[:, t], v[:, t], cache, **kw)
        outs_swa.append(o_swa[:, None])
        outs_rla.append(o_rla[:, None])
    return jnp.concatenate(outs_swa, axis=1), jnp.concatenate(outs_rla, axis=1), cache


CARRIED = [
    pytest.param(shape, impl, id=f"{shape.id}-{impl}")
    for shape in SHAPES[:3]
    for impl in ("reference", "xla")
] + [pytest.param(Shape(1, 19, 2, 1, 8, 4), "pallas", id="B1-T19-Hq2-Hkv1-D8-W4-pallas")]


@pytest.mark.parametrize("shape,impl", CARRIED)
def test_chunks_then_decode_equal_one_call(shape, impl):
    rng = np.random.default_rng(4)
    q, k, v = qkv(rng, shape, "float32")
    s0 = initial_state(rng, shape)
    decode_steps = 3
    bounds = split_points(rng, shape.time, decode_steps) if impl != "pallas" else [0, 7, shape.time - 3]
    o_swa, o_rla, cache = run_carried(q, k, v, shape, bounds, s0, None, impl)
    ref_rla, ref_state = kernels.residual_linear_attention(
        q, k, v, window=shape.window, initial_state=s0, impl="reference"
    )
    ref_swa = kernels.sliding_window_attention(q, k, v, window=shape.window, impl="reference")
    assert_close(f"o_rla (splits {bounds})", ref_rla, o_rla, *TOL)
    assert_close(f"o_swa (splits {bounds})", ref_swa, o_swa, *TOL)
    assert_close("state", ref_state, cache.state, *TOL)
    assert int(cache.pos) == shape.time


@pytest.mark.parametrize("impl", ["reference", "xla"])
def test_decode_from_empty_cache_with_left_padding(impl):
    """Decode only, from position 0 (empty ring slots), with row 0 left-padded by 3 garbage tokens."""
    shape, pads = Shape(2, 12, 2, 1, 8, 4), 3
    rng = np.random.default_rng(5)
    q, k, v = qkv(rng, shape, "float32")
    kv_start = jnp.array([pads, 0], jnp.int32)
    o_swa, o_rla, cache = run_carried(q, k, v, shape, [0], None, kv_start, impl, feature_map="relu")
    ref_rla, ref_state = kernels.residual_linear_attention(
        q, k, v, window=shape.window, feature_map="relu", kv_start=kv_start, impl="reference"
    )
    ref_swa = kernels.sliding_window_attention(q, k, v, window=shape.window, kv_start=kv_start, impl="reference")
    assert_close("o_rla", ref_rla[:, pads:], o_rla[:, pads:], *TOL)
    assert_close("o_swa", ref_swa[:, pads:], o_swa[:, pads:], *TOL)
    assert_close("state", ref_state, cache.state, *TOL)


def test_sliding_window_chunk_and_decode_equal_one_call():
    shape = Shape(1, 25, 4, 2, 8, 5)
    q, k, v = qkv(np.random.default_rng(6), shape, "bfloat16")
    cache = kernels.swa_cache_init(shape.batch, shape.window, shape.kv_heads, shape.dim, jnp.bfloat16)
    o1, cache = kernels.sliding_window_attention_chunk(q[:, :11], k[:, :11], v[:, :11], cache, window=shape.window)
    outs = [o1]
    for t in range(11, shape.time):
        o, cache = kernels.sliding_window_decode_step(q[:, t], k[:, t], v[:, t], cache, window=shape.window)
        outs.append(o[:, None])
    ref = kernels.sliding_window_attention(q, k, v, window=shape.window, impl="reference")
    assert_close("o", ref, jnp.concatenate(outs, axis=1), *TOLERANCE["bfloat16"])
    assert cache.k.dtype == jnp.bfloat16 and int(cache.pos) == shape.time
