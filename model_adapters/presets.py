"""Named architectures for `python -m runners.init --preset NAME`.

The tiny-* presets are sized so that the tests run in seconds on one CPU core; they share everything
but the layer pattern so that their outputs compare kind against kind. bench-* presets are for
benchmarks only; demo-* are the shipped demo checkpoints' architectures.
"""

from __future__ import annotations

from model_adapters.config import ModelConfig, config_from_dict
from common.errors import UserError

_TINY = dict(
    vocab_size=258, d_model=32, num_layers=2, num_heads=4, num_kv_heads=2, head_dim=8, mlp_dim=64,
    window=16, max_context=131072, train_context=256, bos_id=256, eos_id=257,
    learned_qk_scale=True, learned_initial_state=True, tokenizer={"type": "byte"},
)

_BENCH_1B = dict(
    vocab_size=32768, d_model=2048, num_layers=16, num_heads=16, num_kv_heads=4, head_dim=128, mlp_dim=8192,
    window=512, max_context=131072, train_context=4096, bos_id=256, eos_id=257,
    learned_qk_scale=True, tokenizer={"type": "byte"},
    layer_pattern=["rattention", "rattention", "rattention", "global"],
)

# The shipped demo models (checkpoints/, trained by runners.train): one size, data and recipe; they differ
# only in the local layers (RAttention-64, SWA-64, or global like the others).
_DEMO = dict(
    vocab_size=258, d_model=64, num_layers=4, num_heads=4, num_kv_heads=2, head_dim=16, mlp_dim=192,
    window=64, max_context=131072, train_context=1024, bos_id=256, eos_id=257, learned_qk_scale=True,
    swa_branch_norm=False, tokenizer={"type": "byte"},
)

PRESETS: dict[str, dict] = {
    "tiny-rattention": {**_TINY, "layer_pattern": ["rattention", "global"]},
    "tiny-swa": {**_TINY, "layer_pattern": ["swa", "global"]},
    "tiny-full": {**_TINY, "layer_pattern": ["global"]},
    "tiny-rattention-half-relu": {
        **_TINY, "layer_pattern": ["rattention"], "rope_style": "half", "feature_map": "relu",
        "tie_embeddings": False, "num_kv_heads": 4, "num_layers": 1, "swa_branch_norm": False,
    },
    "demo-rattention": {**_DEMO, "layer_pattern": ["rattention", "global"]},
    "demo-swa": {**_DEMO, "layer_pattern": ["swa", "global"]},
    "demo-full": {**_DEMO, "layer_pattern": ["global"]},
    # Local layers only (no global layer, so no cache grows with the context): the bench-long model.
    "long-rattention": {**_DEMO, "layer_pattern": ["rattention"], "max_context": 2**21},
    # A mid-size model for the decode benchmark on small hosts (CPU): same shape rules as bench-1b.
    "bench-mid": {**_BENCH_1B, "d_model": 512, "num_layers": 4, "num_heads": 8, "num_kv_heads": 2,
                  "head_dim": 64, "mlp_dim": 1024, "window": 256},
    "bench-mid-global": {**_BENCH_1B, "d_model": 512, "num_layers": 4, "num_heads": 8, "num_kv_heads": 2,
                         "head_dim": 64, "mlp_dim": 1024, "window": 256, "layer_pattern": ["global"]},
    "bench-1b": {**_BENCH_1B},
    "bench-1b-swa": {**_BENCH_1B, "layer_pattern": ["swa", "swa", "swa", "global"]},
    "bench-1b-global": {**_BENCH_1B, "layer_pattern": ["global"]},
}


def preset_config(name: str) -> ModelConfig:
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}; pick one of: {', '.join(PRESETS)}")
    return config_from_dict(PRESETS[name], source=f"preset {name}")
