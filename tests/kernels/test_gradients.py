"""Gradients of the differentiable fast paths equal the reference's, w.r.t. every input training learns.

Training differentiates through the ops with impl="xla" (the Pallas kernels define no VJP: jax.grad
raises NotImplementedError for them; cuDNN needs a GPU). A loss that falls is no evidence: a
stop_gradient on the chunk carry still trains. So each case takes d/d(q, k, v, initial state) of
<o, random cotangent> (+ <final state, cotangent> for RLA) from both paths and compares them.
Lengths exceed the 128-slot chunk and query block of the xla paths, so gradients cross the carry.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import assert_close
from kernel_cases import TOLERANCE, Shape, initial_state, qkv

import kernels

DIFFERENTIABLE = ("xla",)
DTYPES = ("float32", "bfloat16")
# T over one and two 128-blocks, not multiples of them; GQA and MHA; window 0; ragged rows;
# bf16 on one shape (the tolerance, not the structure, differs).
GRAD_CASES = [
    (Shape(2, 131, 4, 2, 8, 6), (0, 9), "float32"),
    (Shape(2, 131, 4, 2, 8, 6), (0, 9), "bfloat16"),
    (Shape(1, 270, 2, 2, 16, 40), (0,), "float32"),
    (Shape(2, 150, 2, 1, 8, 0), (17, 0), "float32"),
]
CASES = [
    pytest.param(shape, kv_start, dtype, impl, id=f"{shape.id}-kv{'_'.join(map(str, kv_start))}-{dtype}-{impl}")
    for shape, kv_start, dtype in GRAD_CASES
    for impl in DIFFERENTIABLE
]


def _cotangent(rng, shape_like):
    return jnp.asarray(rng.standard_normal(shape_like.shape), jnp.float32)


def _assert_grads_close(case: str, ref_grads, grads, dtype: str) -> None:
    for name, r, g in zip(("dq", "dk", "dv", "ds0"), ref_grads, grads):
        assert g.dtype == r.dtype, f"{case} {name}: dtype {g.dtype} != reference {r.dtype}"
        assert_close(f"{case} {name}", r.astype(jnp.float32), g.astype(jnp.float32), *TOLERANCE[dtype])


@pytest.mark.parametrize("shape,kv_start,dtype,impl", CASES)
def test_rla_gradients_match_reference(shape, kv_start, dtype, impl):
    rng = np.random.default_rng(10)
    q, k, v = qkv(rng, shape, dtype)
    s0 = initial_state(rng, shape)
    kv = jnp.asarray(kv_start, jnp.int32)
    o_cot = _cotangent(rng, q)
    s_cot = _cotangent(rng, jnp.zeros((shape.batch, shape.heads, 2 * shape.dim, shape.dim)))

    def loss(impl):
        def f(q, k, v, s0):
            o, state = kernels.residual_linear_attention(
                q, k, v, window=shape.window, initial_state=s0, kv_start=kv, impl=impl
            )
            return jnp.sum(o.astype(jnp.float32) * o_cot) + jnp.sum(state * s_cot)

        return jax.jit(jax.grad(f, argnums=(0, 1, 2, 3)))

    _assert_grads_close(f"rla {impl}", loss("reference")(q, k, v, s0), loss(impl)(q, k, v, s0), dtype)


@pytest.mark.parametrize("shape,kv_start,dtype,impl", CASES)
def test_swa_gradients_match_reference(shape, kv_start, dtype, impl):
    rng = np.random.default_rng(11)
    q, k, v = qkv(rng, shape, dtype)
    kv = jnp.asarray(kv_start, jnp.int32)
    o_cot = _cotangent(rng, q)

    def loss(impl):
        def f(q, k, v):
            o = kernels.sliding_window_attention(q, k, v, window=shape.window, kv_start=kv, impl=impl)
            return jnp.sum(o.astype(jnp.float32) * o_cot)

        return jax.jit(jax.grad(f, argnums=(0, 1, 2)))

    _assert_grads_close(f"swa {impl}", loss("reference")(q, k, v), loss(impl)(q, k, v), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("impl", DIFFERENTIABLE)
def test_rattention_chunk_gradients_match_reference(impl, dtype):
    """The fused carried chunk: gradients w.r.t. its five inputs and the carried ring and state."""
    shape = Shape(2, 130, 4, 2, 8, 12)
    rng = np.random.default_rng(12)
    q_swa, k_swa, v = qkv(rng, shape, dtype)
    q_rla, k_rla, _ = qkv(rng, shape, dtype)
    ring = lambda: jnp.asarray(rng.standard_normal((2, 12, 2, 8)), dtype)  # noqa: E731
    state = jnp.asarray(0.1 * rng.standard_normal((2, 4, 16, 8)), jnp.float32)
    carried = (ring(), ring(), ring(), state)
    pos = jnp.int32(29)  # the ring holds positions 17..28; row 1's first real token is 20
    kv = jnp.asarray([0, 20], jnp.int32)
    cots = [_cotangent(rng, q_swa), _cotangent(rng, q_rla), _cotangent(rng, state)]

    def loss(impl):
        def f(inputs, carried):
            cache = kernels.RAttentionCache(*carried, pos)
            o_swa, o_rla, cache = kernels.rattention_chunk(*inputs, cache, window=shape.window, kv_start=kv, impl=impl)
            outs = (o_swa.astype(jnp.float32), o_rla.astype(jnp.float32), cache.state)
            return sum(jnp.sum(o * c) for o, c in zip(outs, cots))

        return jax.jit(jax.grad(f, argnums=(0, 1)))

    inputs = (q_swa, k_swa, q_rla, k_rla, v)
    ref_inputs, ref_carried = loss("reference")(inputs, carried)
    got_inputs, got_carried = loss(impl)(inputs, carried)
    names = ["dq_swa", "dk_swa", "dq_rla", "dk_rla", "dv", "dring_k_swa", "dring_k_rla", "dring_v", "dstate"]
    for name, r, g in zip(names, [*ref_inputs, *ref_carried], [*got_inputs, *got_carried]):
        assert_close(f"rattention_chunk {impl} {name}", r.astype(jnp.float32), g.astype(jnp.float32), *TOLERANCE[dtype])
