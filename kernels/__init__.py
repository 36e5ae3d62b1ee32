"""RAttention's compute core: residual linear attention and sliding-window attention (see README.md)."""

from kernels.cache import RAttentionCache, SWACache, rattention_cache_init, swa_cache_init
from kernels.dispatch import (
    IMPLS,
    MODEL_IMPLS,
    rattention_chunk,
    rattention_decode_step,
    residual_linear_attention,
    sliding_window_attention,
    sliding_window_attention_chunk,
    sliding_window_decode_step,
)

__all__ = [
    "IMPLS",
    "MODEL_IMPLS",
    "RAttentionCache",
    "SWACache",
    "rattention_cache_init",
    "rattention_chunk",
    "rattention_decode_step",
    "residual_linear_attention",
    "sliding_window_attention",
    "sliding_window_attention_chunk",
    "sliding_window_decode_step",
    "swa_cache_init",
]
