"""make bench-kernels at toy sizes: a row per (op, impl, T), and the whole-layer op is the layer's math."""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np

from runners.bench_kernels import _rattention_layer, main
from tests.conftest import assert_close


def test_rows_cover_every_op_and_length(tmp_path):
    assert main(["--lengths", "128,256", "--heads", "2", "--dim", "16", "--window", "32", "--impls", "xla",
                 "--dtype", "float32", "--skip-full", "--repeats", "1", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "kernels-cpu.json").read_text())
    ops = {(r["op"], r["impl"], r["T"]) for r in result["rows"]}
    for t in (128, 256):
        assert {("rattention_layer", "xla", t), ("rla_prefill", "xla", t), ("swa_prefill", "xla", t),
                ("jax.nn.dpa_local", "xla", t), ("rattention_decode_step", "fused", t)} <= ops
    assert all(r["ms"] > 0 for r in result["rows"])


def test_the_whole_layer_op_equals_its_reference_and_the_sum_of_normalized_branches():
    rng = np.random.default_rng(0)
    q, k, v = (jnp.asarray(rng.standard_normal((1, 200, 2, 16)), jnp.float32) for _ in range(3))
    o, state = _rattention_layer(2, 16, 32, "xla")(q, k, v)
    o_ref, state_ref = _rattention_layer(2, 16, 32, "reference")(q, k, v)
    assert_close("layer", o_ref, o, 1e-5)
    assert_close("state", state_ref, state, 1e-5)
    # Both branches unit-RMS per head, so the sum's RMS per head lies in (0, 2].
    rms = np.sqrt(np.mean(np.asarray(o) ** 2, axis=-1))
    assert o.shape == (1, 200, 2, 16) and np.all((rms > 0) & (rms <= 2 + 1e-5))
