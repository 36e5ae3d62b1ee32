"""Tiny RAttention models with every parameter perturbed (so unit scales and zero states still matter)."""

from __future__ import annotations

import functools

import jax
import numpy as np
from flax import nnx

from model_adapters.model import RAttentionLM
from model_adapters.presets import preset_config

TINY_PRESETS = ("tiny-rattention", "tiny-swa", "tiny-full", "tiny-rattention-half-relu")


def perturbed_model(preset: str, seed: int = 0, compute_dtype: str = "float32") -> RAttentionLM:
    """The preset's model (float32 parameters, `compute_dtype` activations) with perturbed parameters."""
    model = RAttentionLM(preset_config(preset).replace(compute_dtype=compute_dtype), rngs=nnx.Rngs(seed))
    rng = np.random.default_rng(seed)
    state = nnx.state(model, nnx.Param)
    pure = jax.tree.map(lambda p: p + 0.2 * rng.standard_normal(p.shape).astype(p.dtype), nnx.to_pure_dict(state))
    nnx.replace_by_pure_dict(state, pure)
    nnx.update(model, state)
    return model


@functools.partial(jax.jit, static_argnames=("graphdef", "impl"))
def full_logits(graphdef, state, tokens, impl="reference"):
    """One whole-sequence forward: tokens [B,T] -> logits [B,T,V] f32."""
    return nnx.merge(graphdef, state)(tokens, impl=impl)
