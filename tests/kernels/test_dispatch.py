"""impl=None picks a correct path; bad arguments fail with a message naming what arrived."""

from __future__ import annotations

import jax.numpy as jnp
import pytest

import kernels
from kernels.dispatch import _resolve


def test_none_resolves_to_xla_on_cpu():
    q = jnp.zeros((1, 8, 2, 8))
    assert _resolve("rla", None, q, q, None, 4) == "xla"
    assert _resolve("swa", None, q, q, None, 4) == "xla"


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(window=-1), "window must be an int >= 0"),
        (dict(window=2, impl="fast"), "impl must be one of"),
        (dict(window=2, impl="cudnn"), "cuDNN needs a GPU"),
    ],
    ids=["negative-window", "unknown-impl", "cudnn-on-cpu"],
)
def test_bad_arguments_raise(kwargs, match):
    q = jnp.zeros((1, 8, 2, 8))
    with pytest.raises(ValueError, match=match):
        kernels.sliding_window_attention(q, q, q, **kwargs)


def test_gqa_heads_must_divide():
    q, k = jnp.zeros((1, 8, 3, 8)), jnp.zeros((1, 8, 2, 8))
    with pytest.raises(ValueError, match="not a multiple"):
        kernels.residual_linear_attention(q, k, k, window=2)


def test_cache_ring_must_match_window():
    cache = kernels.swa_cache_init(1, 4, 2, 8, jnp.float32)
    q = jnp.zeros((1, 3, 2, 8))
    with pytest.raises(ValueError, match="window=5"):
        kernels.sliding_window_attention_chunk(q, q, q, cache, window=5)


@pytest.mark.parametrize("q_shape,k_shape,v_shape,message", [
    ((8, 2, 8), (1, 8, 2, 8), (1, 8, 2, 8), "expected q [B,T,Hq,D] and k, v [B,T,Hkv,D], got (8, 2, 8), (1, 8, 2, 8), (1, 8, 2, 8)"),
    ((1, 8, 2, 8), (1, 8, 2, 8), (1, 8, 1, 8), "expected q [B,T,Hq,D] and k, v [B,T,Hkv,D], got (1, 8, 2, 8), (1, 8, 2, 8), (1, 8, 1, 8)"),
    ((2, 8, 2, 8), (1, 8, 2, 8), (1, 8, 2, 8), "q (2, 8, 2, 8) and k (1, 8, 2, 8) disagree on B or D, or Hq is not a multiple of Hkv"),
    ((1, 8, 2, 16), (1, 8, 2, 8), (1, 8, 2, 8), "q (1, 8, 2, 16) and k (1, 8, 2, 8) disagree on B or D, or Hq is not a multiple of Hkv"),
], ids=["q-3d", "k-v-differ", "batch-differs", "head-dim-differs"])
def test_shape_errors_name_the_shapes_that_arrived(q_shape, k_shape, v_shape, message):
    q, k, v = jnp.zeros(q_shape), jnp.zeros(k_shape), jnp.zeros(v_shape)
    for call in (kernels.sliding_window_attention, kernels.residual_linear_attention):
        with pytest.raises(ValueError) as e:
            call(q, k, v, window=2)
        assert str(e.value) == message
