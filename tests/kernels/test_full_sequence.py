"""Every implementation of the full-sequence ops against the reference, and left padding."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import assert_close
from kernel_cases import SHAPES, TOLERANCE, Shape, initial_state, qkv

import kernels

IMPLS = ["xla", "pallas"]
DTYPES = ["float32", "bfloat16"]
# "pallas" runs in TPU interpret mode on CPU (about 10 s a call): a few cases cover its paths
# (GQA, window 0, window >= T, a shift that is and one that is not a multiple of the chunk, bf16).
PALLAS_RLA = [(SHAPES[0], "softmax", "float32"), (SHAPES[1], "relu", "bfloat16"), (SHAPES[2], "softmax", "float32")]
PALLAS_SWA = [(SHAPES[0], "float32"), (SHAPES[2], "bfloat16")]


def _rla_cases():
    for shape in SHAPES:
        for feature_map in ("softmax", "relu"):
            for dtype in DTYPES:
                yield pytest.param(shape, feature_map, dtype, "xla", id=f"{shape.id}-{feature_map}-{dtype}-xla")
    for shape, feature_map, dtype in PALLAS_RLA:
        yield pytest.param(shape, feature_map, dtype, "pallas", id=f"{shape.id}-{feature_map}-{dtype}-pallas")


def _swa_cases():
    for shape in SHAPES:
        for dtype in DTYPES:
            yield pytest.param(shape, dtype, "xla", id=f"{shape.id}-{dtype}-xla")
    for shape, dtype in PALLAS_SWA:
        yield pytest.param(shape, dtype, "pallas", id=f"{shape.id}-{dtype}-pallas")


@pytest.mark.parametrize("shape,feature_map,dtype,impl", list(_rla_cases()))
def test_rla_matches_reference(shape, feature_map, dtype, impl):
    rng = np.random.default_rng(0)
    q, k, v = qkv(rng, shape, dtype)
    s0 = initial_state(rng, shape)
    kw = dict(window=shape.window, feature_map=feature_map, initial_state=s0)
    o_ref, state_ref = kernels.residual_linear_attention(q, k, v, impl="reference", **kw)
    o, state = kernels.residual_linear_attention(q, k, v, impl=impl, **kw)
    assert o.dtype == v.dtype and state.dtype == jnp.float32
    assert state.shape == (shape.batch, shape.heads, 2 * shape.dim, shape.dim)
    assert_close("o", o_ref, o, *TOLERANCE[dtype])
    # bf16 inputs: the state sums bf16 phi(k)^T v products (float32 accumulation), as the tensor cores do
    assert_close("final_state", state_ref, state, *TOLERANCE[dtype])


@pytest.mark.parametrize("shape,dtype,impl", list(_swa_cases()))
def test_swa_matches_reference(shape, dtype, impl):
    q, k, v = qkv(np.random.default_rng(1), shape, dtype)
    o_ref = kernels.sliding_window_attention(q, k, v, window=shape.window, impl="reference")
    o = kernels.sliding_window_attention(q, k, v, window=shape.window, impl=impl)
    assert o.dtype == v.dtype
    assert_close("o", o_ref, o, *TOLERANCE[dtype])


def test_reference_rla_is_the_definition():
    """The reference against a per-position loop over the math of README.md (window 2, relu)."""
    shape = Shape(1, 9, 2, 1, 4, 2)
    rng = np.random.default_rng(2)
    q, k, v = (np.asarray(x, np.float64) for x in qkv(rng, shape, "float32"))
    s0 = np.asarray(initial_state(rng, shape), np.float64)
    phi = lambda x: np.concatenate([np.maximum(x, 0), np.maximum(-x, 0)], axis=-1)  # noqa: E731
    expected = np.zeros_like(q)
    for t in range(shape.time):
        for h in range(shape.heads):
            s = s0[h] + sum((np.outer(phi(k[0, j, 0]), v[0, j, 0]) for j in range(t - shape.window)), 0.0)
            expected[0, t, h] = phi(q[0, t, h]) @ s
    o, _ = kernels.residual_linear_attention(
        *(jnp.asarray(x, jnp.float32) for x in (q, k, v)), window=shape.window, feature_map="relu",
        initial_state=jnp.asarray(s0, jnp.float32), impl="reference",
    )
    assert_close("o", expected, o, 1e-5)


@pytest.mark.parametrize("impl", ["reference", "xla"])
def test_left_padding_gives_the_unpadded_outputs(impl):
    """Row 0 carries 5 garbage pads (kv_start=5); its real rows equal the unpadded call; row 1 is unpadded."""
    shape, pads = Shape(2, 30, 4, 2, 8, 6), 5
    rng = np.random.default_rng(3)
    q, k, v = qkv(rng, shape, "float32", length=shape.time + pads)
    kv_start = jnp.array([pads, 0], jnp.int32)
    s0 = initial_state(rng, shape)
    o_rla, state = kernels.residual_linear_attention(
        q, k, v, window=shape.window, initial_state=s0, kv_start=kv_start, impl=impl
    )
    o_swa = kernels.sliding_window_attention(q, k, v, window=shape.window, kv_start=kv_start, impl=impl)
    for row, start in ((0, pads), (1, 0)):
        qr, kr, vr = (x[row : row + 1, start:] for x in (q, k, v))
        ref_rla, ref_state = kernels.residual_linear_attention(
            qr, kr, vr, window=shape.window, initial_state=s0, impl="reference"
        )
        ref_swa = kernels.sliding_window_attention(qr, kr, vr, window=shape.window, impl="reference")
        assert_close(f"o_rla[{row}]", ref_rla, o_rla[row : row + 1, start:], *TOLERANCE["float32"])
        assert_close(f"state[{row}]", ref_state, state[row : row + 1], *TOLERANCE["float32"])
        assert_close(f"o_swa[{row}]", ref_swa, o_swa[row : row + 1, start:], *TOLERANCE["float32"])
    assert not np.asarray(o_swa[0, :pads]).any(), "pad queries see no key and must output 0"
