"""The RAttention LM in Flax NNX (docs/ARCHITECTURE.md section 5): one full-sequence forward and one carried forward.

    tokens [B,T] -> embed -> N x Block -> RMSNorm -> LM head (tied or not) -> logits [B,T,V] float32
    Block: x + Attention(RMSNorm(x)), then x + SwiGLU(RMSNorm(x))

Attention kinds (`config.layer_pattern`, cycled): "rattention" = SWA on RoPE'd q/k + RLA on raw q/k
(times learned scales if configured), each through its GroupRMSNorm, summed, then o_proj; "swa" = the
SWA branch alone; "global" = full causal attention with RoPE.

`__call__` runs a whole sequence (training, parity); `forward_chunk` runs T >= 1 new positions from a
tuple of per-layer caches (chunked prefill; T == 1 is a decode step and uses the kernels' decode step).
Left padding: positions < kv_start[b] are pads; RoPE positions count from each row's first real token.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import kernels
from kernels import kv_start_or_zeros
from model_adapters.config import ModelConfig

GROUP_NORM_EPS = 1e-8


def rope_inv_freq(head_dim: int, theta: float, scaling=None) -> np.ndarray:
    """[D/2] float64 rotation frequencies theta^(-2i/D), with Llama-3's scaling (a RopeScaling) if given:
    wavelengths above original_context / low_freq_factor are divided by `factor`, those below
    original_context / high_freq_factor kept, and the band between interpolated linearly in
    original_context / wavelength. Computed on the host: they depend only on the config."""
    inv_freq = float(theta) ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    if scaling is None:
        return inv_freq
    wavelen = 2 * np.pi / inv_freq
    smooth = (scaling.original_context / wavelen - scaling.low_freq_factor) / (scaling.high_freq_factor - scaling.low_freq_factor)
    blended = (1 - smooth) * inv_freq / scaling.factor + smooth * inv_freq
    long_waves = wavelen > scaling.original_context / scaling.low_freq_factor
    short_waves = wavelen < scaling.original_context / scaling.high_freq_factor
    return np.where(long_waves, inv_freq / scaling.factor, np.where(short_waves, inv_freq, blended))


ANGLE_DIGIT_BITS = 4


def rope_angles(positions, inv_freq: np.ndarray):
    """[B,T] int32 positions -> [B,T,D/2] float32 angles position * inv_freq, reduced mod 2 pi.

    A float32 product position * inv_freq is off by up to half an ulp of the product: 0.004 rad at
    position 65,536 and 0.03 rad at 2^20 for the fastest frequency, enough to break RoPE's relative
    invariance at long context. Instead the position is split into 4-bit digits d_j and the angle is the
    sum of table entries (d_j * 16^j * inv_freq mod 2 pi), each computed in float64 on the host: eight
    float32 terms below 2 pi, so the angle is exact to ~1e-5 rad at every int32 position.
    """
    digits = 32 // ANGLE_DIGIT_BITS
    radix = 1 << ANGLE_DIGIT_BITS
    scale = np.float64(radix) ** np.arange(digits)[:, None, None] * np.arange(radix)[None, :, None]  # [J,16,1]
    table = jnp.asarray(np.mod(scale * inv_freq[None, None, :], 2 * np.pi), jnp.float32)  # [J,16,D/2]
    positions = positions.astype(jnp.int32)
    angle = jnp.zeros((*positions.shape, inv_freq.shape[0]), jnp.float32)
    for j in range(digits):
        digit = (positions >> (ANGLE_DIGIT_BITS * j)) & (radix - 1)
        angle = angle + table[j][digit]
    return angle


def rope(x, positions, theta: float, style: str, scaling=None):
    """Rotary embedding. x [B,T,H,D], positions [B,T] int -> [B,T,H,D] (x's dtype, float32 math).

    "interleaved" rotates pairs (x[2i], x[2i+1]) (axlearn); "half" rotates (x[i], x[i + D/2]) (Llama).
    `scaling`: Llama-3's frequency scaling (config.RopeScaling) or None. Angles: `rope_angles`.
    """
    head_dim = x.shape[-1]
    angle = rope_angles(positions, rope_inv_freq(head_dim, theta, scaling))[:, :, None, :]  # [B,T,1,D/2]
    sin, cos = jnp.sin(angle), jnp.cos(angle)
    x32 = x.astype(jnp.float32)
    if style == "interleaved":
        x1, x2 = x32[..., 0::2], x32[..., 1::2]
        out = jnp.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1).reshape(x.shape)
    else:
        x1, x2 = x32[..., : head_dim // 2], x32[..., head_dim // 2 :]
        out = jnp.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)
    return out.astype(x.dtype)


class RMSNorm(nnx.Module):
    """x [..., dim] -> x / rms(x) * scale, float32 math, x's dtype out."""

    def __init__(self, dim: int, eps: float, param_dtype):
        self.eps = eps
        self.scale = nnx.Param(jnp.ones((dim,), param_dtype))

    def __call__(self, x):
        x32 = x.astype(jnp.float32)
        y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
        return (y * self.scale[...].astype(jnp.float32)).astype(x.dtype)


class GroupRMSNorm(nnx.Module):
    """Per-head RMS norm of an attention branch: o [B,T,H,D] -> float32 [B,T,H,D], scale [H, D]."""

    def __init__(self, num_heads: int, head_dim: int, param_dtype):
        self.scale = nnx.Param(jnp.ones((num_heads, head_dim), param_dtype))

    def __call__(self, o):
        o32 = o.astype(jnp.float32)
        y = o32 * jax.lax.rsqrt(jnp.mean(o32 * o32, axis=-1, keepdims=True) + GROUP_NORM_EPS)
        return y * self.scale[...].astype(jnp.float32)


class SwiGLU(nnx.Module):
    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
        dims = dict(use_bias=False, dtype=jnp.dtype(config.compute_dtype),
                    param_dtype=jnp.dtype(config.param_dtype), rngs=rngs)
        self.gate_proj = nnx.Linear(config.d_model, config.mlp_dim, **dims)
        self.up_proj = nnx.Linear(config.d_model, config.mlp_dim, **dims)
        self.down_proj = nnx.Linear(config.mlp_dim, config.d_model, **dims)

    def __call__(self, x):
        """x [B,T,d_model] -> [B,T,d_model]."""
        return self.down_proj(jax.nn.silu(self.gate_proj(x)) * self.up_proj(x))


class Attention(nnx.Module):
    """One attention layer of kind "rattention" | "swa" | "global" (docs/ARCHITECTURE.md section 5)."""

    def __init__(self, config: ModelConfig, kind: str, *, rngs: nnx.Rngs):
        self.config = config
        self.kind = kind
        c = config
        dims = dict(use_bias=False, dtype=jnp.dtype(c.compute_dtype), param_dtype=jnp.dtype(c.param_dtype), rngs=rngs)
        qkv_dims = {**dims, "use_bias": c.qkv_bias}
        self.q_proj = nnx.Linear(c.d_model, c.num_heads * c.head_dim, **qkv_dims)
        self.k_proj = nnx.Linear(c.d_model, c.num_kv_heads * c.head_dim, **qkv_dims)
        self.v_proj = nnx.Linear(c.d_model, c.num_kv_heads * c.head_dim, **qkv_dims)
        self.o_proj = nnx.Linear(c.num_heads * c.head_dim, c.d_model, **dims)
        if kind == "rattention":
            pdt = jnp.dtype(c.param_dtype)
            if c.swa_branch_norm:
                self.swa_norm = GroupRMSNorm(c.num_heads, c.head_dim, pdt)
            self.rla_norm = GroupRMSNorm(c.num_heads, c.head_dim, pdt)
            if c.learned_qk_scale:
                self.q_scale = nnx.Param(jnp.ones((c.num_heads, c.head_dim), pdt))
                self.k_scale = nnx.Param(jnp.ones((c.num_kv_heads, c.head_dim), pdt))
            if c.learned_initial_state:
                state_shape = (c.num_heads, 2 * c.head_dim, c.head_dim)
                self.initial_state = nnx.Param(0.02 * jax.random.normal(rngs.params(), state_shape, jnp.float32))

    def _project(self, x, positions):
        """x [B,T,d_model] -> (q [B,T,Hq,D], k, v [B,T,Hkv,D]) raw, and RoPE'd q, k."""
        c = self.config
        batch, t_len = x.shape[:2]
        q = self.q_proj(x).reshape(batch, t_len, c.num_heads, c.head_dim)
        k = self.k_proj(x).reshape(batch, t_len, c.num_kv_heads, c.head_dim)
        v = self.v_proj(x).reshape(batch, t_len, c.num_kv_heads, c.head_dim)
        theta = c.rope_theta_of(self.kind)
        rotate = lambda x: rope(x, positions, theta, c.rope_style, c.rope_scaling)
        return q, k, v, rotate(q), rotate(k)

    def _rla_qk(self, q, k):
        """The RLA branch's inputs: raw q, k, times the learned per-head per-dim scales if configured."""
        if not self.config.learned_qk_scale:
            return q, k
        return (q * self.q_scale[...].astype(q.dtype), k * self.k_scale[...].astype(k.dtype))

    def _initial_state(self):
        """[Hq, 2D, D] float32 or None (zeros)."""
        return self.initial_state[...] if self.config.learned_initial_state else None

    def _output(self, o_swa, o_rla=None):
        """Branch outputs [B,T,Hq,D] -> [B,T,d_model]: for rattention, the SWA output (GroupRMSNorm'd if
        config.swa_branch_norm) plus the GroupRMSNorm'd RLA output; then o_proj."""
        o = o_swa
        if o_rla is not None:
            o = self.swa_norm(o_swa) if self.config.swa_branch_norm else o_swa.astype(jnp.float32)
            o = o + self.rla_norm(o_rla)
        batch, t_len = o.shape[:2]
        return self.o_proj(o.astype(jnp.dtype(self.config.compute_dtype)).reshape(batch, t_len, -1))

    def __call__(self, x, positions, *, kv_start=None, impl=None):
        """Whole sequence: x [B,T,d_model], positions [B,T] -> [B,T,d_model]."""
        c = self.config
        q, k, v, q_rot, k_rot = self._project(x, positions)
        if self.kind == "global":
            return self._output(kernels.global_attention(q_rot, k_rot, v, kv_start=kv_start, impl=impl))
        o_swa = kernels.sliding_window_attention(q_rot, k_rot, v, window=c.window, kv_start=kv_start, impl=impl)
        if self.kind == "swa":
            return self._output(o_swa)
        q_rla, k_rla = self._rla_qk(q, k)
        init = self._initial_state()
        if init is not None:
            init = jnp.broadcast_to(init, (x.shape[0], *init.shape))
        o_rla, _ = kernels.residual_linear_attention(
            q_rla, k_rla, v, window=c.window, feature_map=c.feature_map, initial_state=init,
            kv_start=kv_start, impl=impl,
        )
        return self._output(o_swa, o_rla)

    def init_cache(self, batch: int, max_len: int):
        """The carried state: a KV cache of max_len positions (global) or the kernels' window caches."""
        c = self.config
        dtype = jnp.dtype(c.compute_dtype)
        if self.kind == "global":
            return kernels.global_cache_init(batch, max_len, c.num_kv_heads, c.head_dim, dtype)
        if self.kind == "swa":
            return kernels.swa_cache_init(batch, c.window, c.num_kv_heads, c.head_dim, dtype)
        return kernels.rattention_cache_init(
            batch, c.window, c.num_heads, c.num_kv_heads, c.head_dim, dtype, initial_state=self._initial_state()
        )

    def forward_chunk(self, x, positions, cache, *, kv_start=None, impl=None):
        """The next T positions from `cache`: x [B,T,d_model] -> ([B,T,d_model], cache). T == 1 decodes."""
        c = self.config
        q, k, v, q_rot, k_rot = self._project(x, positions)
        if self.kind == "global":
            o, cache = kernels.global_attention_chunk(q_rot, k_rot, v, cache, kv_start=kv_start, impl=impl)
            return self._output(o), cache
        local = dict(window=c.window, kv_start=kv_start, impl=impl)
        step = x.shape[1] == 1
        if self.kind == "swa":
            if step:
                o, cache = kernels.sliding_window_decode_step(q_rot[:, 0], k_rot[:, 0], v[:, 0], cache, **local)
                return self._output(o[:, None]), cache
            o, cache = kernels.sliding_window_attention_chunk(q_rot, k_rot, v, cache, **local)
            return self._output(o), cache
        q_rla, k_rla = self._rla_qk(q, k)
        if step:
            o_swa, o_rla, cache = kernels.rattention_decode_step(
                q_rot[:, 0], k_rot[:, 0], q_rla[:, 0], k_rla[:, 0], v[:, 0], cache,
                feature_map=c.feature_map, **local,
            )
            return self._output(o_swa[:, None], o_rla[:, None]), cache
        o_swa, o_rla, cache = kernels.rattention_chunk(
            q_rot, k_rot, q_rla, k_rla, v, cache, feature_map=c.feature_map, **local
        )
        return self._output(o_swa, o_rla), cache


class Block(nnx.Module):
    """Pre-norm residual block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, config: ModelConfig, kind: str, *, rngs: nnx.Rngs):
        pdt = jnp.dtype(config.param_dtype)
        self.attn_norm = RMSNorm(config.d_model, config.norm_eps, pdt)
        self.attn = Attention(config, kind, rngs=rngs)
        self.mlp_norm = RMSNorm(config.d_model, config.norm_eps, pdt)
        self.mlp = SwiGLU(config, rngs=rngs)

    def __call__(self, x, positions, *, kv_start=None, impl=None):
        x = x + self.attn(self.attn_norm(x), positions, kv_start=kv_start, impl=impl)
        return x + self.mlp(self.mlp_norm(x))

    def forward_chunk(self, x, positions, cache, *, kv_start=None, impl=None):
        h, cache = self.attn.forward_chunk(self.attn_norm(x), positions, cache, kv_start=kv_start, impl=impl)
        x = x + h
        return x + self.mlp(self.mlp_norm(x)), cache


def rope_positions(first_pos, t_len: int, kv_start, batch: int):
    """[B,T] int32 RoPE positions of absolute positions first_pos .. first_pos+T-1, counted from kv_start[b]."""
    absolute = first_pos + jnp.arange(t_len, dtype=jnp.int32)
    return jnp.maximum(absolute[None, :] - kv_start_or_zeros(kv_start, batch)[:, None], 0)


class RAttentionLM(nnx.Module):
    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
        self.config = config
        cdt, pdt = jnp.dtype(config.compute_dtype), jnp.dtype(config.param_dtype)
        self.embed = nnx.Embed(config.vocab_size, config.d_model, dtype=cdt, param_dtype=pdt, rngs=rngs)
        self.blocks = nnx.List([Block(config, kind, rngs=rngs) for kind in config.layer_kinds])
        self.final_norm = RMSNorm(config.d_model, config.norm_eps, pdt)
        if not config.tie_embeddings:
            self.lm_head = nnx.Linear(config.d_model, config.vocab_size, use_bias=False, dtype=cdt,
                                      param_dtype=pdt, rngs=rngs)

    def _logits(self, x):
        """x [B,T,d_model] -> logits [B,T,V] float32."""
        x = self.final_norm(x)
        logits = self.embed.attend(x) if self.config.tie_embeddings else self.lm_head(x)
        return logits.astype(jnp.float32)

    def __call__(self, tokens, *, kv_start=None, impl=None):
        """Whole-sequence forward: tokens [B,T] int -> logits [B,T,V] float32 (left pads before kv_start)."""
        batch, t_len = tokens.shape
        positions = rope_positions(0, t_len, kv_start, batch)
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x, positions, kv_start=kv_start, impl=impl)
        return self._logits(x)

    def init_caches(self, batch: int, max_len: int) -> tuple:
        """One cache per block; global layers hold max_len positions, local layers only their window."""
        return tuple(block.attn.init_cache(batch, max_len) for block in self.blocks)

    def forward_chunk(self, tokens, caches: tuple, *, kv_start=None, impl=None, last_only: bool = False):
        """The next T positions: tokens [B,T] -> (logits [B,T,V] f32, caches, nan_per_layer [num_layers] bool).

        last_only: logits of the chunk's last position only, [B,1,V] (a prefill chunk needs no others, and
        at a 32K vocabulary the rest are most of a chunk's FLOPs).
        nan_per_layer[i] says block i's output holds a NaN or an Inf at a real (non-pad) position.
        """
        batch, t_len = tokens.shape
        first_pos = caches[0].pos
        positions = rope_positions(first_pos, t_len, kv_start, batch)
        real = (first_pos + jnp.arange(t_len))[None, :] >= kv_start_or_zeros(kv_start, batch)[:, None]  # [B,T]
        x = self.embed(tokens)
        new_caches, nan_flags = [], []
        for block, cache in zip(self.blocks, caches):
            x, cache = block.forward_chunk(x, positions, cache, kv_start=kv_start, impl=impl)
            new_caches.append(cache)
            nan_flags.append(jnp.any(~jnp.isfinite(x) & real[:, :, None]))
        return self._logits(x[:, -1:] if last_only else x), tuple(new_caches), jnp.stack(nan_flags)
