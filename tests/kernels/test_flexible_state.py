"""Flexible state saving in the xla RLA core: any grouping of chunks into super-chunks (start states from
an exclusive prefix over super-chunk deltas, then every super-chunk walks its chunks at once) gives the
reference's outputs, end state and gradients."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import assert_close
from kernel_cases import SHAPES, TOLERANCE, Shape, qkv

from kernels import dispatch
from kernels.linear_attention.chunked import balanced_chunks_per_state, rla_chunked
from kernels.linear_attention.reference import rla_reference

CHUNK = 8  # small chunks, so these lengths make 3 to 17 of them
# (chunks per saved state, dtype); None: one super-chunk (the plain scan); bf16 on one grouping.
GROUPINGS = [(1, "float32"), (3, "float32"), (None, "float32"), (3, "bfloat16")]


def _inputs(rng, shape: Shape, dtype: str, ring: int):
    """q [B,T,Hq,D]; k, v [B,ring+T,Hkv,D]; state [B,Hq,2D,D]; first_valid [B] (ragged rows)."""
    q, _, _ = qkv(rng, shape, dtype)
    _, k, v = qkv(rng, shape, dtype, length=ring + shape.time)
    state = jnp.asarray(0.1 * rng.standard_normal((shape.batch, shape.heads, 2 * shape.dim, shape.dim)), jnp.float32)
    first_valid = jnp.asarray(rng.integers(0, 6, shape.batch), jnp.int32)
    return q, k, v, state, first_valid


@pytest.mark.parametrize("per_state,dtype", GROUPINGS, ids=[f"per{g}-{d}" for g, d in GROUPINGS])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: s.id)
@pytest.mark.parametrize("carried", [False, True], ids=["full", "carried"])
def test_any_grouping_of_chunks_equals_the_reference(shape, dtype, per_state, carried):
    """Full sequence (L = T, shift = W + 1) and carried chunk (W ring keys first, shift = 1)."""
    rng = np.random.default_rng([shape.time, shape.window, len(dtype), carried])
    ring = shape.window if carried else 0
    q, k, v, state, first_valid = _inputs(rng, shape, dtype, ring)
    kw = dict(shift=1 if carried else shape.window + 1, feature_map="softmax")
    o_ref, s_ref = rla_reference(q, k, v, state, first_valid, **kw)
    o, s = rla_chunked(q, k, v, state, first_valid, chunk=CHUNK, chunks_per_state=per_state, **kw)
    assert o.dtype == v.dtype and s.dtype == jnp.float32
    assert_close(f"o per_state={per_state}", o_ref, o, *TOLERANCE[dtype])
    assert_close(f"state per_state={per_state}", s_ref, s, *TOLERANCE[dtype])


@pytest.mark.parametrize("per_state", [3, None], ids=lambda g: f"per{g}")
def test_gradients_through_the_prefix_equal_the_reference(per_state):
    shape = Shape(2, 61, 4, 2, 8, 5)
    rng = np.random.default_rng(4)
    q, k, v, state, first_valid = _inputs(rng, shape, "float32", 0)
    o_cot = jnp.asarray(rng.standard_normal(q.shape), jnp.float32)
    s_cot = jnp.asarray(rng.standard_normal(state.shape), jnp.float32)

    def grads(core, **extra):
        def loss(q, k, v, state):
            o, s = core(q, k, v, state, first_valid, shift=shape.window + 1, feature_map="relu", **extra)
            return jnp.sum(o * o_cot) + jnp.sum(s * s_cot)
        return jax.grad(loss, argnums=(0, 1, 2, 3))(q, k, v, state)

    ref = grads(rla_reference)
    got = grads(rla_chunked, chunk=CHUNK, chunks_per_state=per_state)
    for name, r, g in zip(("dq", "dk", "dv", "dstate"), ref, got):
        assert_close(f"{name} per_state={per_state}", r, g, *TOLERANCE["float32"])


@pytest.mark.parametrize("t_len,expected", [(0, 1), (127, 1), (128, 2), (1000, 3), (4096, 6), (65536, 23)])
def test_balanced_grouping_is_about_the_square_root_of_the_chunks(t_len, expected):
    assert balanced_chunks_per_state(t_len) == expected


@pytest.mark.parametrize("backend,expected", [("cpu", None), ("gpu", 3), ("tpu", 3)])
def test_xla_path_saves_states_on_accelerators_only(monkeypatch, backend, expected):
    """The xla RLA core walks one scan on a CPU and sqrt(chunks) super-chunks in parallel elsewhere."""
    seen = {}
    monkeypatch.setattr(dispatch.jax, "default_backend", lambda: backend)
    monkeypatch.setattr(dispatch, "rla_chunked", lambda *a, **kw: seen.update(kw))
    shape = Shape(1, 1000, 2, 1, 8, 4)
    q, k, v, state, first_valid = _inputs(np.random.default_rng(0), shape, "float32", 0)
    dispatch._rla_core("xla")(q, k, v, state, first_valid, shift=5, feature_map="softmax")
    assert seen["chunks_per_state"] == expected
