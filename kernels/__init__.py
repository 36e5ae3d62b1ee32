"""Attention's compute core: residual linear, sliding-window and global attention (see README.md)."""

from kernels.cache import (
    GlobalCache,
    RAttentionCache,
    SWACache,
    global_cache_init,
    kv_start_or_zeros,
    rattention_cache_init,
    swa_cache_init,
)
from kernels.dispatch import (
    IMPLS,
    MODEL_IMPLS,
    global_attention,
    global_attention_chunk,
    rattention_chunk,
    rattention_decode_step,
    residual_linear_attention,
    sliding_window_attention,
    sliding_window_attention_chunk,
    sliding_window_decode_step,
)

__all__ = [
    "GlobalCache",
    "IMPLS",
    "MODEL_IMPLS",
    "RAttentionCache",
    "SWACache",
    "global_attention",
    "global_attention_chunk",
    "global_cache_init",
    "kv_start_or_zeros",
    "rattention_cache_init",
    "rattention_chunk",
    "rattention_decode_step",
    "residual_linear_attention",
    "sliding_window_attention",
    "sliding_window_attention_chunk",
    "sliding_window_decode_step",
    "swa_cache_init",
]
