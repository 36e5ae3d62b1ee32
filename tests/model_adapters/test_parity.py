"""The defining parity: chunked prefill + decode steps == one full-sequence forward, at every position."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from model_adapters.presets import preset_config
from tests.conftest import assert_close
from tests.model_adapters.tiny_models import TINY_PRESETS, full_logits, perturbed_model

# Chunks of these sizes in random orders (so chunk boundaries, ring wrap points and the long chunk's start
# move) compile once per size. 131 > one 128-token block of the local kernels (SWA query block, RLA chunk).
CHUNK_SIZES = (3, 9, 131)
DECODE_STEPS = 3
TOTAL = sum(CHUNK_SIZES) + DECODE_STEPS
CUT_SETS = 3  # random orders per case, seeded by the case
# (relative RMS, max abs relative to max |ref|) of the logits against the float32-or-bf16 reference.
TOLERANCE = {"float32": (1e-5, 1e-5), "bfloat16": (2e-2, 6e-2)}


def _case(preset, impl, dtype):
    return pytest.param(preset, impl, dtype, id=f"{preset}-{impl}-{dtype}")


# Every preset with the reference; both local kinds with xla in f32; RAttention (SWA + RLA) in bf16 with
# xla and in f32 with pallas (the TPU kernels in interpret mode on CPU, the GPU kernels on a GPU).
PARITY_CASES = (
    [_case(preset, "reference", "float32") for preset in TINY_PRESETS]
    + [_case(preset, "xla", "float32") for preset in ("tiny-rattention", "tiny-swa")]
    + [_case("tiny-rattention", "xla", "bfloat16"), _case("tiny-rattention", "pallas", "float32")]
)


def chunk_cuts(rng: np.random.Generator) -> list[int]:
    """CHUNK_SIZES in a random order."""
    return [CHUNK_SIZES[i] for i in rng.permutation(len(CHUNK_SIZES))]


@functools.partial(jax.jit, static_argnames=("graphdef", "impl"))
def _chunk(graphdef, state, tokens, caches, impl):
    logits, caches, nan = nnx.merge(graphdef, state).forward_chunk(tokens, caches, impl=impl)
    return logits, caches, nan


@pytest.mark.parametrize("preset,impl,dtype", PARITY_CASES)
def test_chunked_prefill_then_decode_equals_full_forward(preset, impl, dtype):
    """Chunked prefill with `impl` (CUT_SETS random cuts) + decode steps == the reference full forward."""
    model = perturbed_model(preset, compute_dtype=dtype)
    rng = np.random.default_rng([TOTAL, len(preset), len(impl), len(dtype)])
    tokens = jnp.asarray(rng.integers(0, 256, (2, TOTAL)), jnp.int32)
    graphdef, state = nnx.split(model)
    ref = full_logits(graphdef, state, tokens, impl="reference")
    for _ in range(CUT_SETS):
        sizes = chunk_cuts(rng)
        caches = model.init_caches(2, TOTAL)
        got, start = [], 0
        for size in sizes + [1] * DECODE_STEPS:
            logits, caches, nan = _chunk(graphdef, state, tokens[:, start:start + size], caches, impl)
            assert not np.asarray(nan).any()
            got.append(logits)
            start += size
        assert_close(f"{preset} {impl} {dtype} chunks {sizes} vs full", ref, jnp.concatenate(got, axis=1),
                     *TOLERANCE[dtype])
        assert int(caches[0].pos) == TOTAL


def test_local_layer_state_does_not_grow_with_context():
    model = perturbed_model("tiny-rattention")
    kinds = model.config.layer_kinds
    small, large = model.init_caches(1, 64), model.init_caches(1, 4096)
    for kind, a, b in zip(kinds, small, large):
        size_a = sum(x.size for x in jax.tree.leaves(a))
        size_b = sum(x.size for x in jax.tree.leaves(b))
        assert (size_a == size_b) == (kind != "global"), kind


@pytest.mark.parametrize("dtype", sorted(TOLERANCE))
def test_full_forward_is_the_same_across_impls(dtype):
    """T = 300: the xla paths' full sequence spans three 128-token blocks."""
    model = perturbed_model("tiny-rattention", compute_dtype=dtype)
    tokens = jnp.asarray(np.random.default_rng(2).integers(0, 256, (1, 300)), jnp.int32)
    graphdef, state = nnx.split(model)
    ref = full_logits(graphdef, state, tokens, impl="reference")
    assert_close(f"xla vs reference {dtype}", ref, full_logits(graphdef, state, tokens, impl="xla"),
                 *TOLERANCE[dtype])


@pytest.mark.parametrize("kind", ["global", "rattention"])
@pytest.mark.parametrize("offset", [2**20 + 5, 2**21 - 200, 2**31 - 1000])
def test_a_layer_far_into_the_context_equals_the_same_layer_at_position_0(kind, offset):
    """RoPE is relative: a short sequence at positions just above 2^20 (or near int32's end) must give
    what it gives at 0, to float32 precision (float32 products position * frequency are off by 1e-3-1e-2)."""
    from model_adapters.model import Attention

    cfg = preset_config("bench-1b").replace(d_model=256, num_heads=4, num_kv_heads=2, head_dim=128, window=32,
                                             compute_dtype="float32", param_dtype="float32")
    layer = Attention(cfg, kind, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(offset), (2, 96, cfg.d_model))
    positions = jnp.broadcast_to(jnp.arange(96), (2, 96))
    at_0, far = layer(x, positions), layer(x, offset + positions)
    np.testing.assert_allclose(np.asarray(far), np.asarray(at_0), rtol=0, atol=1e-5 * float(jnp.max(jnp.abs(at_0))))
