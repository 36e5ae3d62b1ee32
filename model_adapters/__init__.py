"""Checkpoints, tokenizers and the Flax RAttention LM.

`model_adapters.tokenizers` is importable without JAX; the model and checkpoint functions are loaded
lazily on first use so that `import model_adapters.tokenizers` stays JAX-free.
"""

_LAZY = {
    "ModelConfig": "model_adapters.config",
    "load_config": "model_adapters.config",
    "RAttentionLM": "model_adapters.model",
    "load": "model_adapters.checkpoint",
    "save": "model_adapters.checkpoint",
    "generate_greedy": "model_adapters.generation",
    "GenerationResult": "model_adapters.generation",
    "NonFiniteLogitsError": "model_adapters.generation",
    "preset_config": "model_adapters.presets",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module = importlib.import_module(_LAZY[name])
        return getattr(module, name)
    raise AttributeError(f"module 'model_adapters' has no attribute {name!r}")
