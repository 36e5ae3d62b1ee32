"""Shared inputs and tolerances for the kernel tests."""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

# (relative RMS, max abs relative to max |ref|) per input dtype.
TOLERANCE = {"float32": (2e-5, 2e-4), "bfloat16": (2e-2, 6e-2)}


class Shape(NamedTuple):
    batch: int
    time: int
    heads: int
    kv_heads: int
    dim: int
    window: int

    @property
    def id(self) -> str:
        return f"B{self.batch}-T{self.time}-Hq{self.heads}-Hkv{self.kv_heads}-D{self.dim}-W{self.window}"


# T not a multiple of any block (37, 100, 131 > one 128 block), window 0, window >= T, GQA and MHA.
SHAPES = [
    Shape(2, 100, 4, 2, 16, 8),
    Shape(1, 37, 2, 2, 8, 0),
    Shape(1, 20, 2, 1, 8, 32),
    Shape(1, 131, 2, 1, 8, 16),
]


def qkv(rng: np.random.Generator, shape: Shape, dtype: str, length: int | None = None):
    """Fresh random q [B,T,Hq,D], k, v [B,T,Hkv,D] in `dtype`."""
    t = shape.time if length is None else length
    q = rng.standard_normal((shape.batch, t, shape.heads, shape.dim))
    k = rng.standard_normal((shape.batch, t, shape.kv_heads, shape.dim))
    v = rng.standard_normal((shape.batch, t, shape.kv_heads, shape.dim))
    return tuple(jnp.asarray(x, dtype) for x in (q, k, v))


def initial_state(rng: np.random.Generator, shape: Shape):
    """A learned-looking initial state [Hq, 2D, D] f32."""
    return jnp.asarray(0.1 * rng.standard_normal((shape.heads, 2 * shape.dim, shape.dim)), jnp.float32)
