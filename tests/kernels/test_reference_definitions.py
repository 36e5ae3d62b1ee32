"""The plain-JAX references held to what they promise: global attention against a loop written here
(the blocked path shares the reference's causal mask, so only an independent definition can see a mask
bug), full float32 at HIGHEST precision on every backend (checked in the jaxpr, since on a CPU the
default precision is exact anyway), outputs in v's dtype, and a masked softmax that stays finite."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import assert_close

import kernels
from kernels import GlobalCache
from kernels.global_attention.reference import attention_reference, causal_mask, global_chunk_reference, global_reference
from kernels.linear_attention.reference import rla_reference
from kernels.sliding_window.reference import masked_softmax_rows, swa_reference


def global_by_loop(q, k, v, kv_start) -> np.ndarray:
    """q [B,T,Hq,D], k, v [B,S,Hkv,D] (query i at position S - T + i) -> o float64: query at position p
    sees keys kv_start[b] <= j <= p with scale 1/sqrt(D); a query that sees none outputs 0."""
    q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
    batch, t_len, heads, dim = q.shape
    s_len, group = k.shape[1], heads // k.shape[2]
    o = np.zeros_like(q)
    for b in range(batch):
        for i in range(t_len):
            p = s_len - t_len + i
            keys = range(kv_start[b], p + 1)
            if not keys:
                continue
            for h in range(heads):
                logits = np.array([q[b, i, h] @ k[b, j, h // group] for j in keys]) / np.sqrt(dim)
                w = np.exp(logits - logits.max())
                o[b, i, h] = (w / w.sum()) @ v[b, list(keys), h // group]
    return o


def _qkv(seed, batch, t_len, heads, kv_heads, dim, s_len=None, dtype=jnp.float32):
    keys = jax.random.split(jax.random.key(seed), 3)
    q = jax.random.normal(keys[0], (batch, t_len, heads, dim), dtype)
    k, v = (jax.random.normal(key, (batch, s_len or t_len, kv_heads, dim), dtype) for key in keys[1:])
    return q, k, v


@pytest.mark.parametrize("kv_start", [(0, 3), (5, 0), None], ids=["ragged", "ragged-first", "unpadded"])
@pytest.mark.parametrize("impl", ["reference", "xla"])
def test_global_attention_is_the_definition(kv_start, impl):
    """B=2 and T=7 differ, so a [T]-shaped kv_start cannot pass for a [B]-shaped one."""
    q, k, v = _qkv(0, 2, 7, 4, 2, 8)
    starts = kv_start or (0, 0)
    o = kernels.global_attention(q, k, v, kv_start=None if kv_start is None else jnp.asarray(kv_start), impl=impl)
    assert_close(f"global {impl}", global_by_loop(q, k, v, starts), o, 1e-5)
    assert not np.asarray(o[1, : starts[1]]).any() and not np.asarray(o[0, : starts[0]]).any()


@pytest.mark.parametrize("kv_start", [(0, 9), None], ids=["ragged", "unpadded"])
@pytest.mark.parametrize("impl", ["reference", "xla"])
def test_a_global_chunk_over_a_cache_is_the_definition(kv_start, impl):
    """A chunk of T=3 at position 10 of a 16-entry cache: it reads cache[:10] and itself, never the stale
    entries after it."""
    q, k, v = _qkv(1, 2, 3, 4, 2, 8)
    _, cache_k, cache_v = _qkv(2, 2, 16, 4, 2, 8)
    cache = GlobalCache(k=cache_k, v=cache_v, pos=jnp.int32(10))
    o, advanced = kernels.global_attention_chunk(
        q, k, v, cache, kv_start=None if kv_start is None else jnp.asarray(kv_start), impl=impl)
    keys = np.concatenate([np.asarray(cache_k[:, :10]), np.asarray(k)], axis=1)
    values = np.concatenate([np.asarray(cache_v[:, :10]), np.asarray(v)], axis=1)
    assert_close(f"global chunk {impl}", global_by_loop(q, keys, values, kv_start or (0, 0)), o, 1e-5)
    assert int(advanced.pos) == 13


def test_causal_mask_by_hand():
    mask = causal_mask(jnp.arange(2, 4), jnp.arange(4), jnp.asarray([0, 2]))
    np.testing.assert_array_equal(mask, [[[1, 1, 1, 0], [1, 1, 1, 1]], [[0, 0, 1, 0], [0, 0, 1, 1]]])


def _dots(fn, *args, **kwargs) -> list:
    jaxpr = jax.make_jaxpr(lambda *a: fn(*a, **kwargs))(*args).jaxpr
    return [e for e in jaxpr.eqns if e.primitive.name == "dot_general"]


def _references(dtype):
    """(name, function, args, kwargs, v) for every reference, called on `dtype` inputs."""
    q, k, v = _qkv(3, 1, 6, 4, 2, 8, dtype=dtype)
    first = jnp.zeros((1,), jnp.int32)
    state = jnp.zeros((1, 4, 16, 8), jnp.float32)
    cache = GlobalCache(k=jnp.zeros((1, 8, 2, 8), dtype), v=jnp.zeros((1, 8, 2, 8), dtype), pos=jnp.int32(0))
    mask = causal_mask(jnp.arange(6), jnp.arange(6), first)
    return [
        ("rla", rla_reference, (q, k, v, state, first), dict(shift=3, feature_map="relu"), v),
        ("swa", swa_reference, (q, k, v, first), dict(offset=0, window=2), v),
        ("attention", attention_reference, (q, k, v, mask), {}, v),
        ("global", global_reference, (q, k, v), {}, v),
        ("global_chunk", global_chunk_reference, (q, k, v, cache), {}, v),
    ]


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=["f32", "bf16"])
def test_every_reference_multiplies_in_float32_at_highest_precision(dtype):
    """Each product takes float32 operands (or accumulates into float32) at Precision.HIGHEST, which a
    GPU (TF32) or TPU (bf16 passes) would otherwise not give; the output has v's dtype."""
    for name, fn, args, kwargs, v in _references(dtype):
        dots = _dots(fn, *args, **kwargs)
        assert dots, name
        for eqn in dots:
            assert eqn.params["precision"] == (jax.lax.Precision.HIGHEST,) * 2, f"{name}: {eqn.params['precision']}"
            assert eqn.outvars[0].aval.dtype == jnp.float32, f"{name}: a product in {eqn.outvars[0].aval.dtype}"
        out = fn(*args, **kwargs)
        out = out[0] if isinstance(out, tuple) else out
        assert out.dtype == v.dtype, f"{name}: output {out.dtype}, v {v.dtype}"


def test_masked_softmax_rows_stays_finite_on_large_and_uneven_rows():
    """Rows whose logits sit far apart (0 and 500) or are large (1,000) keep their own softmax; a row with
    no unmasked entry is zeros."""
    logits = jnp.asarray([[0.0, 1.0, 2.0], [500.0, 501.0, 499.0], [1000.0, 1000.0, -7.0], [3.0, 4.0, 5.0]])
    mask = jnp.asarray([[1, 1, 1], [1, 1, 0], [1, 1, 1], [0, 0, 0]], bool)
    p = np.asarray(masked_softmax_rows(logits, mask))
    base = np.exp([0.0, 1.0, 2.0]) / np.exp([0.0, 1.0, 2.0]).sum()
    np.testing.assert_allclose(p[0], base, rtol=1e-6)
    np.testing.assert_allclose(p[1], [1 / (1 + np.e), np.e / (1 + np.e), 0.0], rtol=1e-6)
    np.testing.assert_allclose(p[2], [0.5, 0.5, 0.0], atol=1e-7)
    np.testing.assert_array_equal(p[3], [0.0, 0.0, 0.0])
