"""Converters into the native checkpoint directory: `python -m model_adapters.convert axlearn|hf ...`.

    axlearn.py   an axlearn RAttention step directory (tensorstore) + its flat config dump
    hf.py        a Hugging Face Llama / Mistral / Qwen2 directory (safetensors + tokenizer.json)
    native.py    what both share: native parameter names -> model -> checkpoint, written atomically
    cached.py    `--checkpoint hf:DIR`: converted on first use into a cache keyed by the source's content
"""
