"""Blocked global attention (online softmax over key blocks; query blocks for whole sequences) == the
masked-softmax reference, and the dispatched public ops."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import assert_close

from kernels import GlobalCache, global_attention, global_attention_chunk, global_cache_init
from kernels.global_attention.blocked import attention_query_blocked
from kernels.global_attention.reference import attention_reference, causal_mask

BLOCK = 16

# (batch, T, Hq, Hkv, D, cache length, pos, kv_start per row); all but the last cache length are not
# multiples of BLOCK (the last key block is read shifted left).
CASES = {
    "B2-T8-H4-Hkv2-D16-L45-pos13-ragged": (2, 8, 4, 2, 16, 45, 13, (0, 9)),
    "B1-T24-H2-Hkv1-D8-L37-pos0": (1, 24, 2, 1, 8, 37, 0, (0,)),
    "B3-T5-H4-Hkv4-D32-L70-pos64-ragged": (3, 5, 4, 4, 32, 70, 64, (3, 40, 0)),
    "B2-T1-H4-Hkv2-D16-L50-pos37-decode": (2, 1, 4, 2, 16, 50, 37, (0, 20)),
    "B1-T16-H2-Hkv2-D16-L16-pos0-one-block": (1, 16, 2, 2, 16, 16, 0, (0,)),
}
TOLERANCE = {"float32": 1e-5, "bfloat16": 1e-2}


@jax.jit
def _blocked(q, k, v, cache, kv_start):
    return global_attention_chunk(q, k, v, cache, kv_start=kv_start, block_k=BLOCK)


@jax.jit
def _blocked_and_reference(q, k, v, cache, kv_start):
    """One compile per shape for both paths: ((o, cache) blocked, (o, cache) reference)."""
    return _blocked(q, k, v, cache, kv_start), global_attention_chunk(q, k, v, cache, kv_start=kv_start,
                                                                      impl="reference")


def _inputs(case, dtype, seed):
    batch, t_len, heads, kv_heads, dim, cache_len, pos, kv_start = CASES[case]
    keys = jax.random.split(jax.random.key(seed), 5)
    q = jax.random.normal(keys[0], (batch, t_len, heads, dim), dtype)
    k, v = (jax.random.normal(key, (batch, t_len, kv_heads, dim), dtype) for key in keys[1:3])
    cache_k, cache_v = (jax.random.normal(key, (batch, cache_len, kv_heads, dim), dtype) for key in keys[3:])
    cache = GlobalCache(k=cache_k, v=cache_v, pos=jnp.int32(pos))  # stale entries after pos must be ignored
    return q, k, v, cache, jnp.asarray(kv_start, jnp.int32)


@pytest.mark.parametrize("dtype", sorted(TOLERANCE))
@pytest.mark.parametrize("case", CASES)
def test_blocked_chunk_equals_reference(case, dtype):
    q, k, v, cache, kv_start = _inputs(case, jnp.dtype(dtype), seed=len(case))
    (out, out_cache), (ref, ref_cache) = _blocked_and_reference(q, k, v, cache, kv_start)
    assert out.dtype == v.dtype and out.shape == q.shape
    assert_close(f"{case} {dtype}", ref.astype(jnp.float32), out.astype(jnp.float32), rtol=TOLERANCE[dtype])
    # The cache written by hand: the chunk's k/v at positions pos .. pos + T - 1, every other entry kept.
    pos, t_len = int(cache.pos), q.shape[1]
    for name, new_kv in (("k", k), ("v", v)):
        expected = np.array(getattr(cache, name))
        expected[:, pos:pos + t_len] = np.asarray(new_kv)
        np.testing.assert_array_equal(np.asarray(getattr(out_cache, name)), expected, err_msg=f"blocked cache.{name}")
        np.testing.assert_array_equal(np.asarray(getattr(ref_cache, name)), expected, err_msg=f"reference cache.{name}")
    assert int(out_cache.pos) == int(ref_cache.pos) == pos + t_len


def _attention_by_loop(q, keys, values):
    """One query q [D] over keys, values [S, D] (float64): softmax(keys q / sqrt(D)) values."""
    logits = keys @ q / np.sqrt(q.shape[-1])
    weights = np.exp(logits - logits.max())
    return weights @ values / weights.sum()


def test_left_pad_queries_output_zero():
    q, k, v, cache, _ = _inputs("B2-T8-H4-Hkv2-D16-L45-pos13-ragged", jnp.float32, seed=1)
    kv_start = jnp.asarray([0, 18], jnp.int32)  # row 1: queries at 13..17 are pads, 18..20 are real
    out, _ = _blocked(q, k, v, cache, kv_start)
    assert np.all(np.asarray(out[1, :5]) == 0)
    # Real query at position 18 + i sees exactly the chunk's keys 18 .. 18 + i (kv head h // 2).
    q64, k64, v64 = (np.asarray(x, np.float64) for x in (q, k, v))
    expected = np.array([[_attention_by_loop(q64[1, 5 + i, h], k64[1, 5:6 + i, h // 2], v64[1, 5:6 + i, h // 2])
                          for h in range(4)] for i in range(3)])
    assert_close("row 1 real queries", expected, out[1, 5:], rtol=1e-5)


def test_chunks_then_decode_equal_full_sequence():
    batch, total, heads, kv_heads, dim = 2, 41, 4, 2, 16
    keys = jax.random.split(jax.random.key(7), 3)
    q = jax.random.normal(keys[0], (batch, total, heads, dim))
    k, v = (jax.random.normal(key, (batch, total, kv_heads, dim)) for key in keys[1:])
    kv_start = jnp.asarray([0, 11], jnp.int32)
    ref = global_attention(q, k, v, kv_start=kv_start)
    cache = global_cache_init(batch, 45, kv_heads, dim, jnp.float32)
    got, start = [], 0
    for size in (17, 22, 1, 1):
        o, cache = _blocked(q[:, start:start + size], k[:, start:start + size], v[:, start:start + size],
                            cache, kv_start)
        got.append(o)
        start += size
    assert_close("chunks+decode vs full", ref, jnp.concatenate(got, axis=1), rtol=1e-5)


def test_only_blocks_holding_visible_keys_are_read():
    """Keys in blocks before min(kv_start) or after pos + T are never read: NaN there changes nothing."""
    q, k, v, cache, _ = _inputs("B2-T1-H4-Hkv2-D16-L50-pos37-decode", jnp.float32, seed=3)
    kv_start = jnp.asarray([17, 20], jnp.int32)  # block 0 (keys 0..15) holds only pads
    outside = jnp.zeros(50, bool).at[:16].set(True).at[48:].set(True)[None, :, None, None]
    poisoned = GlobalCache(k=jnp.where(outside, jnp.nan, cache.k), v=jnp.where(outside, jnp.nan, cache.v),
                           pos=cache.pos)
    clean, _ = _blocked(q, k, v, cache, kv_start)
    out, _ = _blocked(q, k, v, poisoned, kv_start)
    np.testing.assert_array_equal(np.asarray(clean), np.asarray(out))


# (batch, T, Hq, Hkv, D, block_q, kv_start per row): T not a multiple of the block, one block, ragged rows.
QUERY_BLOCK_CASES = {
    "B2-T37-H4-Hkv2-D16-bq8-ragged": (2, 37, 4, 2, 16, 8, (0, 9)),
    "B1-T16-H2-Hkv1-D8-bq16-one-block": (1, 16, 2, 1, 8, 16, (0,)),
    "B3-T50-H4-Hkv4-D32-bq16-ragged": (3, 50, 4, 4, 32, 16, (3, 49, 0)),
}


@pytest.mark.parametrize("dtype", sorted(TOLERANCE))
@pytest.mark.parametrize("case", QUERY_BLOCK_CASES)
def test_query_blocked_values_and_gradients_equal_reference(case, dtype):
    batch, t_len, heads, kv_heads, dim, block_q, kv_start = QUERY_BLOCK_CASES[case]
    dtype = jnp.dtype(dtype)
    keys = jax.random.split(jax.random.key(len(case)), 4)
    q = jax.random.normal(keys[0], (batch, t_len, heads, dim), dtype)
    k, v = (jax.random.normal(key, (batch, t_len, kv_heads, dim), dtype) for key in keys[1:3])
    cotangent = jax.random.normal(keys[3], q.shape, jnp.float32)
    kv_start = jnp.asarray(kv_start, jnp.int32)
    pos = jnp.arange(t_len)

    def reference(q, k, v):
        return attention_reference(q, k, v, causal_mask(pos, pos, kv_start))

    def blocked(q, k, v):
        return attention_query_blocked(q, k, v, kv_start, block_q=block_q)

    def loss(f):
        return jax.jit(jax.value_and_grad(lambda *a: jnp.sum(f(*a).astype(jnp.float32) * cotangent), (0, 1, 2)))

    out, ref = jax.jit(blocked)(q, k, v), jax.jit(reference)(q, k, v)
    assert out.dtype == dtype and out.shape == q.shape
    assert_close(f"{case} {dtype} values", ref.astype(jnp.float32), out.astype(jnp.float32), rtol=TOLERANCE[dtype.name])
    (_, grads), (_, ref_grads) = loss(blocked)(q, k, v), loss(reference)(q, k, v)
    for name, g, r in zip("qkv", grads, ref_grads):
        assert_close(f"{case} {dtype} d{name}", r.astype(jnp.float32), g.astype(jnp.float32), rtol=TOLERANCE[dtype.name])
    pads = np.arange(t_len)[None, :] < np.asarray(kv_start)[:, None]  # [B,T] queries that see no key
    assert np.all(np.asarray(out)[pads] == 0)


@pytest.mark.parametrize("impl", ["xla", "pallas", None])
def test_every_model_impl_of_the_whole_sequence_equals_the_reference(impl):
    """Global layers have no Pallas kernel: "pallas" (a model-wide choice) runs their blocked path."""
    keys = jax.random.split(jax.random.key(5), 3)
    q = jax.random.normal(keys[0], (2, 150, 4, 16))
    k, v = (jax.random.normal(key, (2, 150, 2, 16)) for key in keys[1:])
    kv_start = jnp.asarray([0, 31], jnp.int32)
    ref = global_attention(q, k, v, kv_start=kv_start, impl="reference")
    assert_close(f"global {impl}", ref, global_attention(q, k, v, kv_start=kv_start, impl=impl), rtol=1e-5)
    with pytest.raises(ValueError, match="impl must be one of"):
        global_attention(q, k, v, impl="cudnn")


@pytest.mark.parametrize("backend,dtype,padded,head_dim,expected", [
    ("gpu", jnp.bfloat16, False, 64, True),
    ("gpu", jnp.float16, False, 128, True),  # cuDNN's largest head
    ("gpu", jnp.bfloat16, False, 136, False),
    ("gpu", jnp.bfloat16, False, 12, False),  # not a multiple of 8
    ("gpu", jnp.bfloat16, True, 64, False),  # cuDNN's causal mask takes no left padding
    ("gpu", jnp.float32, False, 64, False),
    ("cpu", jnp.bfloat16, False, 64, False),
])
def test_cudnn_takes_only_unpadded_half_precision_sequences_on_a_gpu(monkeypatch, backend, dtype, padded, head_dim,
                                                                     expected):
    from kernels import dispatch

    monkeypatch.setattr(dispatch.jax, "default_backend", lambda: backend)
    q = jnp.zeros((1, 200, 2, head_dim), dtype)  # T > 128: a T/D mix-up shows
    assert dispatch._global_uses_cudnn(None, q, jnp.zeros((1,), jnp.int32) if padded else None) == expected
    assert not dispatch._global_uses_cudnn("xla", q, None)
