"""What the dispatcher picks on a GPU or TPU, checked on the CPU by faking jax.default_backend(): which
Pallas module serves each op, and how many RLA states the xla path saves (one scan on a CPU, about
sqrt(chunks) super-chunks elsewhere). The kernels themselves are compared with the references in the
other files here."""

from __future__ import annotations

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
