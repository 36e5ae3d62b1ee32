"""What every converter shares: native parameter names -> RAttentionLM -> a checkpoint directory, atomically.

A converter produces a ModelConfig and `{native name: (array, source name)}`, the native names being
checkpoint.py's flat names (`blocks/0/attn/q_proj/kernel`). `write_checkpoint` checks every name and
shape against the model the config implies (a mismatch is a UserError naming the source tensor), builds
the model with the source's dtypes, and saves it into a temporary directory beside OUT that is renamed
to OUT only when complete: an interrupted or refused conversion leaves nothing in OUT.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from common.errors import UserError
from model_adapters.checkpoint import _flat, abstract_model, save
from model_adapters.config import ModelConfig

# {native flat name: (array, where it came from in the source checkpoint)}
NamedParams = dict[str, tuple[np.ndarray, str]]


def refuse(where: str, what: str) -> UserError:
    """The one-line refusal of a feature the native model cannot run, naming the config key or tensor."""
    return UserError(f"{where}: {what}; the native model cannot run it, so this checkpoint cannot be converted")


def period(kinds: list[str]) -> list[str]:
    """The shortest layer_pattern that cycles into the per-layer `kinds`."""
    return next(kinds[:p] for p in range(1, len(kinds) + 1) if all(kinds[i] == kinds[i % p] for i in range(len(kinds))))


def build_model(config: ModelConfig, params: NamedParams):
    """An RAttentionLM with exactly these parameters; every name and shape is checked against `config`."""
    graphdef, abstract = abstract_model(config)
    abstract_params = nnx.to_pure_dict(abstract)
    want = _flat(abstract_params)
    for name, spec in want.items():
        if name not in params:
            raise UserError(f"the source checkpoint has no tensor for {name}; it does not match its config")
        array, source = params[name]
        if tuple(array.shape) != tuple(spec.shape):
            raise UserError(
                f"{source}: shape {tuple(array.shape)}, but the config implies {tuple(spec.shape)} for {name}; "
                "the checkpoint and its config do not match"
            )
    extra = sorted(set(params) - set(want))
    if extra:  # a converter bug, not the user's input
        raise AssertionError(f"converter produced parameters the model does not have: {extra}")
    leaves = [jnp.asarray(params[name][0], spec.dtype) for name, spec in want.items()]
    nnx.replace_by_pure_dict(abstract, jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(abstract_params), leaves))
    return nnx.merge(graphdef, abstract)


def check_out(out: str | Path, overwrite: bool) -> Path:
    """The output directory, refused up front if it exists and `overwrite` is off."""
    out = Path(out).absolute()
    if out.exists() and not overwrite and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out}: already exists; pass --overwrite to replace it or choose another --out")
    return out


def write_checkpoint(config: ModelConfig, params: NamedParams, out: str | Path, *,
                     tokenizer_file: str | Path | None = None, overwrite: bool = False) -> Path:
    """Builds the model and writes config.json + tokenizer + params/ to `out` through a temp dir + rename."""
    out = check_out(out, overwrite)
    model = build_model(config, params)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        save(model, tmp, tokenizer_file=tokenizer_file)
        if out.exists():
            old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".old"))
            os.replace(out, old / out.name)
            os.replace(tmp, out)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
