"""An RAttention layer's output: o_proj of its branch mix, GroupRMSNorm on both branches (axlearn's) or,
with swa_branch_norm false, on the RLA branch only, added to the raw SWA output."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import kernels
from tests.conftest import assert_close
from tests.model_adapters.tiny_models import perturbed_model


def group_rms(o, scale):
    """o [B,T,H,D] RMS-normalized over D, times scale [H,D]."""
    return o / jnp.sqrt(jnp.mean(o * o, axis=-1, keepdims=True) + 1e-8) * scale


@pytest.mark.parametrize("preset", ["tiny-rattention", "tiny-rattention-half-relu"])
def test_rattention_output_is_o_proj_of_its_branch_mix(preset):
    model = perturbed_model(preset)
    c = model.config
    attn = model.blocks[0].attn
    assert attn.kind == "rattention" and hasattr(attn, "swa_norm") == c.swa_branch_norm
    batch, t_len = 2, 3 * c.window + 5
    x = jax.random.normal(jax.random.key(t_len), (batch, t_len, c.d_model), jnp.float32)
    positions = jnp.broadcast_to(jnp.arange(t_len, dtype=jnp.int32), (batch, t_len))
    q, k, v, q_rot, k_rot = attn._project(x, positions)
    o_swa = kernels.sliding_window_attention(q_rot, k_rot, v, window=c.window, impl="reference")
    q_rla, k_rla = attn._rla_qk(q, k)
    init = attn._initial_state()
    o_rla, _ = kernels.residual_linear_attention(
        q_rla, k_rla, v, window=c.window, feature_map=c.feature_map, impl="reference",
        initial_state=None if init is None else jnp.broadcast_to(init, (batch, *init.shape)),
    )
    swa = group_rms(o_swa, attn.swa_norm.scale[...]) if c.swa_branch_norm else o_swa
    mix = swa + group_rms(o_rla, attn.rla_norm.scale[...])
    want = mix.reshape(batch, t_len, -1) @ attn.o_proj.kernel[...]
    got = attn(x, positions, impl="reference")
    assert_close(f"{preset} attention output", want, got, 1e-5)
    other = (o_swa if c.swa_branch_norm else group_rms(o_swa, 1.0)) + group_rms(o_rla, attn.rla_norm.scale[...])
    assert not np.allclose(other.reshape(batch, t_len, -1) @ attn.o_proj.kernel[...], got, rtol=1e-2)  # the flag matters
