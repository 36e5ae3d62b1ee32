"""`--checkpoint hf:DIR`: a Hugging Face model directory converted on first use into a cache keyed by the
source's content, so later runs (and other processes) reuse the native checkpoint.

    resolve_checkpoint("hf:/models/Llama-3.2-1B")  # -> $RATTN_RULER_CACHE/converted/Llama-3.2-1B-<sha16>
    resolve_checkpoint("checkpoints/swa-w64")       # -> the path as given

The key is the fingerprint of every file's bytes (common.files.fingerprint), so a source edited in place
converts again. Conversion takes the default settings of `python -m model_adapters.convert hf` (run that
for others) under an exclusive lock, and writes through a temporary directory renamed at the end: an
interrupted conversion leaves nothing, and concurrent processes convert once.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from common.errors import UserError
from common.files import fingerprint

HF_PREFIX = "hf:"
CACHE_ENV = "RATTN_RULER_CACHE"


def cache_root() -> Path:
    """$RATTN_RULER_CACHE, else ~/.cache/rattn-ruler."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "rattn-ruler")


def resolve_checkpoint(spec: str, *, convert: bool = True) -> Path:
    """The native checkpoint directory a --checkpoint value names, converting an `hf:DIR` source first
    (with convert=False, an `hf:DIR` not converted yet is a UserError: conversion runs JAX, which under
    jax.distributed must wait for initialize)."""
    if not spec.startswith(HF_PREFIX):
        return Path(spec)
    src = Path(spec[len(HF_PREFIX):]).expanduser()
    if not src.is_dir():
        raise UserError(f"{spec}: {src} is not a directory; pass hf:DIR with DIR a Hugging Face model directory")
    out = cache_root() / "converted" / f"{src.resolve().name}-{fingerprint(src)}"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f".{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or when the process dies
        if not (out / "config.json").is_file():
            if not convert:
                raise UserError(f"{spec}: not converted yet, and several processes cannot convert it; run "
                                f"python -m model_adapters.convert hf {src} --out OUT and pass --checkpoint OUT")
            from model_adapters.convert.hf import convert_hf

            convert_hf(src, out)
    return out
