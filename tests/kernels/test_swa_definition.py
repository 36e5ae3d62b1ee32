"""Sliding-window attention against a definition written here, sharing no code with kernels/.

Query t of row b attends with scale 1/sqrt(D) to keys j with max(t - W, kv_start[b]) <= j <= t; a query
with no such key (a left pad) outputs 0; query head h reads kv head h // (Hq / Hkv). Every impl, and the
carried chunk + decode path, is compared with this float64 loop, so a mask shared by an impl and its
reference cannot hide a bug.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import assert_close
from kernel_cases import TOLERANCE, Shape, qkv

import kernels


def swa_by_loop(q, k, v, window: int, kv_start) -> np.ndarray:
    """q [B,T,Hq,D], k, v [B,T,Hkv,D] -> o [B,T,Hq,D] float64, one query at a time."""
    q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
    batch, t_len, heads, dim = q.shape
    group = heads // k.shape[2]
    o = np.zeros_like(q)
    for b in range(batch):
        for t in range(t_len):
            first = max(t - window, kv_start[b], 0)
            if first > t:
                continue
            for h in range(heads):
                keys, values = k[b, first : t + 1, h // group], v[b, first : t + 1, h // group]
                logits = keys @ q[b, t, h] / np.sqrt(dim)
                weights = np.exp(logits - logits.max())
                o[b, t, h] = weights @ values / weights.sum()
    return o


# (shape, kv_start): window 0, window >= T, T over one 128-query block with the window across its
# boundary, GQA and MHA, ragged left padding (one row padded past its window).
DEFINITION_CASES = [
    (Shape(2, 45, 4, 2, 8, 5), (0, 7)),
    (Shape(1, 20, 2, 2, 8, 0), (3,)),
    (Shape(2, 30, 2, 1, 8, 40), (12, 0)),
    (Shape(1, 140, 2, 1, 8, 20), (0,)),
]
IMPL_CASES = [
    pytest.param(shape, kv_start, impl, id=f"{shape.id}-kv{'_'.join(map(str, kv_start))}-{impl}")
    for shape, kv_start in DEFINITION_CASES
    for impl in ("reference", "xla")
] + [pytest.param(Shape(2, 19, 2, 1, 8, 4), (0, 6), "pallas", id="B2-T19-Hq2-Hkv1-D8-W4-kv0_6-pallas")]


@pytest.mark.parametrize("shape,kv_start,impl", IMPL_CASES)
def test_full_sequence_swa_matches_the_loop(shape, kv_start, impl):
    q, k, v = qkv(np.random.default_rng(20), shape, "float32")
    expected = swa_by_loop(q, k, v, shape.window, kv_start)
    o = kernels.sliding_window_attention(
        q, k, v, window=shape.window, kv_start=jnp.asarray(kv_start, jnp.int32), impl=impl
    )
    assert_close(f"swa {impl}", expected, o, *TOLERANCE["float32"])


@pytest.mark.parametrize("impl", ["reference", "xla"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_carried_chunks_and_decode_match_the_loop(dtype, impl):
    """Chunks of 9, 130 (over one query block, ring wrapped) and 4, then 3 decode steps; row 1 padded."""
    shape, kv_start = Shape(2, 146, 4, 2, 8, 7), (0, 11)
    q, k, v = qkv(np.random.default_rng(21), shape, dtype)
    kv = jnp.asarray(kv_start, jnp.int32)
    cache = kernels.swa_cache_init(shape.batch, shape.window, shape.kv_heads, shape.dim, q.dtype)
    outs, start = [], 0
    for size in (9, 130, 4):
        o, cache = kernels.sliding_window_attention_chunk(
            q[:, start : start + size], k[:, start : start + size], v[:, start : start + size], cache,
            window=shape.window, kv_start=kv, impl=impl,
        )
        outs.append(o)
        start += size
    for t in range(start, shape.time):
        o, cache = kernels.sliding_window_decode_step(q[:, t], k[:, t], v[:, t], cache, window=shape.window,
                                                      kv_start=kv, impl=impl)
        outs.append(o[:, None])
    expected = swa_by_loop(q, k, v, shape.window, kv_start)
    assert_close(f"carried swa {impl} {dtype}", expected, jnp.concatenate(outs, axis=1), *TOLERANCE[dtype])


def test_the_loop_is_the_definition_on_a_hand_case():
    """One query, window 1: the loop attends to exactly keys t-1 and t with softmax weights."""
    q = np.zeros((1, 3, 1, 2))
    q[0, 2, 0] = [np.sqrt(2.0) * np.log(3.0), 0.0]  # logit of key j = q . k_j / sqrt(2) = log(3) k_j[0]
    k = np.array([[[[5.0, 0.0]], [[0.0, 0.0]], [[1.0, 0.0]]]])
    v = np.array([[[[100.0, 0.0]], [[1.0, 0.0]], [[2.0, 0.0]]]])
    o = swa_by_loop(q, k, v, window=1, kv_start=(0,))
    np.testing.assert_allclose(o[0, 2, 0], [(1.0 * 1 + 3.0 * 2) / 4, 0.0])  # key 0 is out of the window
    np.testing.assert_allclose(o[0, 0, 0], [100.0, 0.0])
    assert not swa_by_loop(q, k, v, window=1, kv_start=(3,)).any()
