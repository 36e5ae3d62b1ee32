"""What the dispatcher picks on a GPU or TPU, checked on the CPU by faking jax.default_backend(): which
Pallas module serves each op, and how many RLA states the xla path saves (one scan on a CPU, about
sqrt(chunks) super-chunks elsewhere). The kernels themselves are compared with the references in the
other files here."""

from __future__ import annotations

import logging

import jax.numpy as jnp
import numpy as np
import pytest
from kernel_cases import Shape, initial_state, qkv

import kernels
from kernels import dispatch
from kernels.linear_attention import pallas_gpu as rla_gpu, pallas_tpu as rla_tpu
from kernels.linear_attention.chunked import balanced_chunks_per_state
from kernels.sliding_window import pallas_gpu as swa_gpu, pallas_tpu as swa_tpu


@pytest.mark.parametrize("backend,op,module", [
    ("gpu", "rla", rla_gpu), ("gpu", "swa", swa_gpu), ("gpu", "swa_chunk", swa_gpu),
    ("tpu", "rla", rla_tpu), ("tpu", "swa", swa_tpu), ("cpu", "rla", rla_tpu), ("cpu", "swa_chunk", swa_tpu),
])
def test_each_op_takes_its_backends_pallas_module(monkeypatch, backend, op, module):
    monkeypatch.setattr(dispatch.jax, "default_backend", lambda: backend)
    assert dispatch._pallas_module(op) is module


@pytest.mark.parametrize("backend", ["cpu", "gpu", "tpu"])
def test_the_xla_rla_path_saves_one_state_on_a_cpu_and_sqrt_chunks_elsewhere(monkeypatch, backend):
    calls = []
    real = dispatch.rla_chunked

    def spy(*args, **kwargs):
        calls.append(kwargs["chunks_per_state"])
        return real(*args, **kwargs)

    monkeypatch.setattr(dispatch.jax, "default_backend", lambda: backend)
    monkeypatch.setattr(dispatch, "rla_chunked", spy)
    shape = Shape(1, {"cpu": 311, "gpu": 313, "tpu": 317}[backend], 2, 1, 8, 5)  # no cached trace is reused
    q, k, v = qkv(np.random.default_rng(4), shape, "float32")
    kernels.residual_linear_attention(q, k, v, window=shape.window, initial_state=initial_state(
        np.random.default_rng(5), shape), impl="xla")
    assert calls == [None if backend == "cpu" else balanced_chunks_per_state(shape.time)]
    assert calls[0] is None or calls[0] != balanced_chunks_per_state(shape.heads), "sized by T, not by a head count"


@pytest.mark.parametrize("name", ["reference", "xla"])
def test_reference_and_xla_run_every_call(monkeypatch, name):
    """Even where the fast kernels decline (a TPU kernel's block rules, a head dim no backend takes)."""
    monkeypatch.setattr(dispatch.jax, "default_backend", lambda: "tpu")
    q, k = np.zeros((1, 7, 3, 5), np.float32), np.zeros((1, 7, 1, 5), np.float32)
    for op in ("rla", "swa", "swa_chunk"):
        assert dispatch._decline_reason(op, name, q, k, None, 3) is None


@pytest.mark.parametrize("dtype,head_dim,kv_start,reason", [
    ("bfloat16", 64, None, None),
    ("float16", 128, None, None),
    ("bfloat16", 64, np.zeros(1, np.int32), "cuDNN's local window takes no left padding (kv_start)"),
    ("float32", 64, None, "cuDNN needs bf16/f16 and D % 8 == 0, D <= 128 (got float32, D=64)"),
    ("bfloat16", 12, None, "cuDNN needs bf16/f16 and D % 8 == 0, D <= 128 (got bfloat16, D=12)"),
    ("bfloat16", 136, None, "cuDNN needs bf16/f16 and D % 8 == 0, D <= 128 (got bfloat16, D=136)"),
], ids=["bf16", "f16-D128", "left-padded", "float32", "D12", "D136"])
def test_cudnn_takes_only_unpadded_half_precision_sequences_of_its_head_dims(monkeypatch, dtype, head_dim, kv_start,
                                                                              reason):
    monkeypatch.setattr(dispatch.jax, "default_backend", lambda: "gpu")
    q = jnp.zeros((1, 7, 2, head_dim), dtype)
    assert dispatch._decline_reason("swa", "cudnn", q, q, kv_start, 3) == reason


@pytest.mark.parametrize("backend", ["cpu", "tpu"])
def test_cudnn_declines_off_a_gpu(monkeypatch, backend):
    monkeypatch.setattr(dispatch.jax, "default_backend", lambda: backend)
    q = jnp.zeros((1, 7, 2, 64), jnp.bfloat16)
    assert dispatch._decline_reason("swa", "cudnn", q, q, None, 3) == "cuDNN needs a GPU"


@pytest.mark.parametrize("impl", ["reference", "xla", "pallas"])
def test_a_chunk_asks_for_its_impl_with_the_ring_and_chunk_as_keys(monkeypatch, impl):
    """The kernel of a prefill chunk reads the ring's W keys then the chunk's T: what may decline it is asked
    about those keys, the caller's impl, kv_start and window."""
    asked = []
    real = dispatch._decline_reason

    def spy(op, name, q, k, kv_start, window):
        asked.append((op, name, q.shape, k.shape, None if kv_start is None else kv_start.shape, window))
        return real(op, name, q, k, kv_start, window)

    monkeypatch.setattr(dispatch, "_decline_reason", spy)
    window, time = 5, {"reference": 9, "xla": 10, "pallas": 11}[impl]  # shapes no cached trace has seen
    q = jnp.zeros((2, time, 2, 8))
    cache = kernels.swa_cache_init(2, window, 1, 8, jnp.float32)
    kernels.sliding_window_attention_chunk(q, q[:, :, :1], q[:, :, :1], cache, window=window,
                                           kv_start=jnp.asarray([0, 3]), impl=impl)
    assert asked == [("swa_chunk", impl, (2, time, 2, 8), (2, window + time, 1, 8), (2,), window)]


def test_cudnn_serves_no_prefill_chunk():
    q = jnp.zeros((1, 8, 2, 8))
    with pytest.raises(ValueError, match="cudnn: full-sequence SWA"):
        kernels.sliding_window_attention_chunk(q, q, q, kernels.swa_cache_init(1, 4, 2, 8, jnp.float32), window=4,
                                               impl="cudnn")


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_prefill_chunks_keep_their_caches_dtype(dtype):
    """A chunk's keys and values join the ring in the cache's dtype, so the cache a chunk returns has the dtype
    it was given (a promoted ring would retrace every later chunk and double its memory)."""
    rng = np.random.default_rng(6)
    shape = Shape(1, 12, 2, 1, 8, 4)
    q, k, v = qkv(rng, shape, dtype)
    swa = kernels.swa_cache_init(1, shape.window, 1, 8, dtype)
    _, swa = kernels.sliding_window_attention_chunk(q, k, v, swa, window=shape.window)
    rat = kernels.rattention_cache_init(1, shape.window, 2, 1, 8, dtype)
    *_, rat = kernels.rattention_chunk(q, k, q, k, v, rat, window=shape.window)
    assert [a.dtype for a in (swa.k, swa.v, rat.k_swa, rat.k_rla, rat.v)] == [jnp.dtype(dtype)] * 5


@pytest.mark.parametrize("backend,op,dtype,head_dim,expected", [
    ("gpu", "swa", "bfloat16", 64, "cudnn"),  # cuDNN first for a whole unpadded half-precision sequence
    ("gpu", "swa", "float32", 64, "pallas"),  # cuDNN declines float32; Triton takes it
    ("gpu", "swa", "float32", 12, "xla"),  # neither takes D=12
    ("gpu", "rla", "bfloat16", 64, "pallas"),
    ("gpu", "swa_chunk", "bfloat16", 64, "pallas"),  # cuDNN serves no chunk
    ("tpu", "rla", "float32", 128, "pallas"),
    ("tpu", "swa", "float32", 64, "xla"),  # Mosaic needs D % 128 == 0
    ("cpu", "rla", "float32", 128, "xla"),
    ("metal", "swa", "bfloat16", 64, "xla"),  # a backend with no fast path
])
def test_impl_none_takes_the_first_candidate_that_accepts_the_call(monkeypatch, backend, op, dtype, head_dim, expected):
    monkeypatch.setattr(dispatch.jax, "default_backend", lambda: backend)
    q = jnp.zeros((1, 7, 2, head_dim), dtype)
    assert dispatch._resolve(op, None, q, q, None, 3) == expected


def test_an_unknown_impl_names_the_choices():
    q = jnp.zeros((1, 7, 2, 8))
    with pytest.raises(ValueError) as e:
        dispatch._resolve("rla", "cudnn", q, q, None, 3)
    assert str(e.value) == ("impl must be one of ('reference', 'xla', 'pallas') or None (cudnn: full-sequence SWA), "
                            "got 'cudnn'")


def test_a_left_padded_call_skips_cudnn(monkeypatch):
    monkeypatch.setattr(dispatch.jax, "default_backend", lambda: "gpu")
    q = jnp.zeros((2, 7, 2, 64), jnp.bfloat16)
    assert dispatch._resolve("swa", None, q, q, jnp.asarray([0, 3]), 3) == "pallas"


def test_each_declined_candidate_is_logged_with_its_reason(monkeypatch, caplog):
    monkeypatch.setattr(dispatch.jax, "default_backend", lambda: "gpu")
    q = jnp.zeros((1, 7, 2, 12))
    with caplog.at_level(logging.DEBUG, logger=dispatch.log.name):
        assert dispatch._resolve("swa", None, q, q, None, 3) == "xla"
    assert caplog.messages == [
        "swa: cudnn declined: cuDNN needs bf16/f16 and D % 8 == 0, D <= 128 (got float32, D=12)",
        "swa: pallas declined: the GPU Pallas kernels need D a power of two in 16..256 (tl.dot tiles), got D=12",
    ]
