"""The RLA feature map phi: [B, T, H, D] -> [B, T, H, 2D], always float32."""

from __future__ import annotations

import jax
import jax.numpy as jnp

FEATURE_MAPS = ("softmax", "relu")


def check_feature_map(feature_map: str) -> None:
    if feature_map not in FEATURE_MAPS:
        raise ValueError(f"feature_map must be one of {FEATURE_MAPS}, got {feature_map!r}")


def phi(x: jax.Array, feature_map: str) -> jax.Array:
    """[softmax(x), softmax(-x)] (or [relu(x), relu(-x)]) over the last axis: [..., D] -> [..., 2D] f32."""
    check_feature_map(feature_map)
    x = x.astype(jnp.float32)
    if feature_map == "softmax":
        return jnp.concatenate([jax.nn.softmax(x, axis=-1), jax.nn.softmax(-x, axis=-1)], axis=-1)
    return jnp.concatenate([jax.nn.relu(x), jax.nn.relu(-x)], axis=-1)
