"""The defining parity: chunked prefill + decode steps == one full-sequence forward, at every position."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tests.conftest import assert_close
from tests.model_adapters.tiny_models import TINY_PRESETS, full_logits, perturbed_model

CHUNKS = (7, 20, 7)  # window 16: chunks end inside windows and span them; two shapes compile
DECODE_STEPS = 3


@functools.partial(jax.jit, static_argnames=("graphdef", "impl"))
def _chunk(graphdef, state, tokens, caches, impl):
    logits, caches, nan = nnx.merge(graphdef, state).forward_chunk(tokens, caches, impl=impl)
    return logits, caches, nan


@pytest.mark.parametrize("preset", TINY_PRESETS)
def test_chunked_prefill_then_decode_equals_full_forward(preset):
    model = perturbed_model(preset)
    total = sum(CHUNKS) + DECODE_STEPS
    tokens = jnp.asarray(np.random.default_rng(1).integers(0, 256, (2, total)), jnp.int32)
    graphdef, state = nnx.split(model)
    ref = full_logits(graphdef, state, tokens)
    caches = model.init_caches(2, total)
    got, start = [], 0
    for size in list(CHUNKS) + [1] * DECODE_STEPS:
        logits, caches, nan = _chunk(graphdef, state, tokens[:, start:start + size], caches, "reference")
        assert not np.asarray(nan).any()
        got.append(logits)
        start += size
    assert_close(f"{preset} chunked vs full", ref, jnp.concatenate(got, axis=1), rtol=1e-5)
    assert int(caches[0].pos) == total


def test_local_layer_state_does_not_grow_with_context():
    model = perturbed_model("tiny-rattention")
    kinds = model.config.layer_kinds
    small, large = model.init_caches(1, 64), model.init_caches(1, 4096)
    for kind, a, b in zip(kinds, small, large):
        size_a = sum(x.size for x in jax.tree.leaves(a))
        size_b = sum(x.size for x in jax.tree.leaves(b))
        assert (size_a == size_b) == (kind != "global"), kind


def test_full_forward_is_the_same_across_impls():
    model = perturbed_model("tiny-rattention")
    tokens = jnp.asarray(np.random.default_rng(2).integers(0, 256, (1, 40)), jnp.int32)
    graphdef, state = nnx.split(model)
    ref = full_logits(graphdef, state, tokens, impl="reference")
    assert_close("xla vs reference", ref, full_logits(graphdef, state, tokens, impl="xla"), rtol=1e-5)
