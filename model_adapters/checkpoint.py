"""Checkpoint directories (docs/ARCHITECTURE.md): config.json + tokenizer file + params/ (orbax) + manifest.json.

    save(model, dir, tokenizer_file=None)   writes the directory (config from model.config)
    load(dir, verify=True) -> (model, tokenizer)   validates each piece; a bad one is a one-line UserError

manifest.json holds the sha256 of every file under params/, written by `save`; `load` checks it first
(verify=False skips the hashing, for huge checkpoints), so flipped bytes are an error, not a silent run
of wrong predictions. A checkpoint without a manifest (written by other tools) loads with one warning.

params/ holds the parameter pytree as a plain nested dict (orbax StandardCheckpointer, no pickle); any
floating dtype is accepted and cast to config.param_dtype at load.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

from model_adapters.config import ModelConfig, load_config, resolve_compute_dtype
from model_adapters.model import RAttentionLM
from model_adapters.tokenizers import tokenizer_from_config
from common.errors import UserError
from common.files import atomic_write_json, read_json

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1


def _flat(tree) -> dict[str, object]:
    """Nested dict -> {"blocks/0/attn/q_proj/kernel": leaf} (keys as strings: orbax stores them so)."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {"/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path): leaf for path, leaf in leaves}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def param_hashes(ckpt_dir: Path) -> dict[str, str]:
    """{"params/<relative path>": sha256} of every file under ckpt_dir/params."""
    params_dir = ckpt_dir / "params"
    return {f"params/{p.relative_to(params_dir).as_posix()}": _sha256(p)
            for p in sorted(params_dir.rglob("*")) if p.is_file()}


def model_fingerprint(ckpt_dir: str | Path) -> str:
    """16 hex digits naming the model a checkpoint directory holds: config.json, its tokenizer file and its
    parameters (manifest.json's hashes, else the bytes under params/). Training records kept beside them
    (train_log.jsonl, training.json, recipe.json, train_state/) are not part of the model, so editing or
    dropping them leaves a run's identity unchanged."""
    ckpt_dir = Path(ckpt_dir)
    config = load_config(ckpt_dir)
    h = hashlib.sha256()
    for name in ["config.json"] + ([config.tokenizer.file] if config.tokenizer.file else []):
        h.update(f"{name}\0{_sha256(ckpt_dir / name)}\0".encode())
    manifest = ckpt_dir / MANIFEST
    files = read_json(manifest).get("files") if manifest.is_file() else None
    h.update(json.dumps(files if isinstance(files, dict) else param_hashes(ckpt_dir), sort_keys=True).encode())
    return h.hexdigest()[:16]


def verify_manifest(ckpt_dir: Path) -> None:
    """Checks params/ against manifest.json; a missing, changed or truncated file is a one-line UserError."""
    path = ckpt_dir / MANIFEST
    if not path.is_file():
        log.warning("%s: no %s; parameters are loaded unverified (re-save the checkpoint to add one)", ckpt_dir, MANIFEST)
        return
    manifest = read_json(path)
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not files:
        raise UserError(f"{path}: no 'files' with content hashes; re-save the checkpoint or pass --no-verify")
    for name, want in sorted(files.items()):
        file = ckpt_dir / name
        if not file.is_file():
            raise UserError(f"{file}: missing (listed in {MANIFEST}); the checkpoint is incomplete: copy it again or re-save it")
        if _sha256(file) != want:
            raise UserError(
                f"{file}: content differs from its hash in {MANIFEST}; the checkpoint is corrupt: copy it again or "
                f"re-save it (or pass --no-verify to load it anyway)"
            )


def abstract_model(config: ModelConfig):
    """(graphdef, abstract state) of a model with this config, without allocating parameters."""
    return nnx.split(nnx.eval_shape(lambda: RAttentionLM(config, rngs=nnx.Rngs(0))))


def save(model: RAttentionLM, ckpt_dir: str | Path, *, tokenizer_file: str | Path | None = None) -> Path:
    """Writes config.json, the tokenizer file (copied in, if given) and params/ into `ckpt_dir`."""
    ckpt_dir = Path(ckpt_dir).absolute()
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    config = model.config
    if tokenizer_file is not None:
        tokenizer_file = Path(tokenizer_file)
        shutil.copyfile(tokenizer_file, ckpt_dir / tokenizer_file.name)
        config = config.replace(tokenizer={**config.tokenizer.to_dict(), "file": tokenizer_file.name})
    params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(ckpt_dir / "params", params, force=True)
        ckptr.wait_until_finished()
    atomic_write_json(ckpt_dir / "config.json", config.to_dict())
    atomic_write_json(ckpt_dir / MANIFEST, {"format": MANIFEST_FORMAT, "files": param_hashes(ckpt_dir)})
    return ckpt_dir


@contextlib.contextmanager
def _quiet_orbax():
    """Silences orbax's, absl's and asyncio's log records during a restore: a failure becomes our one line."""
    loggers = [logging.getLogger(name) for name in ("absl", "asyncio", "orbax", "jax._src.distributed")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _restore_params(ckpt_dir: Path) -> dict:
    """params/ as saved (shapes and dtypes from its metadata) on this process's first local device. Each
    process reads the whole checkpoint by itself: under jax.distributed, orbax would otherwise restore
    collectively onto the saving topology."""
    params_dir = ckpt_dir / "params"
    if not params_dir.is_dir():
        raise UserError(f"{params_dir}: missing; the checkpoint has no parameters (re-save it)")
    process = jax.process_index()
    alone = ocp.options.MultiprocessingOptions(primary_host=process, active_processes={process})
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    try:
        with _quiet_orbax(), ocp.StandardCheckpointer(multiprocessing_options=alone) as ckptr:
            saved = ckptr.metadata(params_dir).item_metadata.tree
            target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), saved)
            return ckptr.restore(params_dir, target)
    except Exception as e:  # orbax/tensorstore raise many types for unreadable data
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        raise UserError(f"{params_dir}: not a readable orbax checkpoint ({type(e).__name__}: {first}); re-save it") from None


def load(ckpt_dir: str | Path, *, verify: bool = True, compute_dtype: str | None = None):
    """Returns (RAttentionLM, tokenizer) from a checkpoint directory; each bad piece is a UserError.
    `verify` checks params/ against manifest.json first. `compute_dtype` (one of config.DTYPES, or
    config.AUTO_DTYPE for the backend's choice) replaces config.json's activation dtype; params keep theirs."""
    ckpt_dir = Path(ckpt_dir).absolute()
    if not ckpt_dir.is_dir():
        raise UserError(f"{ckpt_dir}: not a directory; pass a checkpoint directory (config.json + params/)")
    config = load_config(ckpt_dir)
    if compute_dtype is not None:
        config = config.replace(
            compute_dtype=resolve_compute_dtype(compute_dtype, config.compute_dtype, jax.default_backend()))
    if verify and (ckpt_dir / "params").is_dir():
        verify_manifest(ckpt_dir)
    tokenizer = tokenizer_from_config(ckpt_dir, config.tokenizer.to_dict())
    if tokenizer.vocab_size > config.vocab_size:
        raise UserError(f"{ckpt_dir}: tokenizer has {tokenizer.vocab_size} ids > vocab_size {config.vocab_size} in config.json")
    graphdef, abstract = abstract_model(config)
    abstract_params = nnx.to_pure_dict(abstract)
    want = _flat(abstract_params)  # in tree-flatten order
    got = _flat(_restore_params(ckpt_dir))
    params_dir = ckpt_dir / "params"
    for name in want:
        if name not in got:
            raise UserError(f"{params_dir}: parameter {name} missing; the params do not match config.json")
    for name in got:
        if name not in want:
            raise UserError(f"{params_dir}: unexpected parameter {name}; the params do not match config.json")
    for name, spec in want.items():
        if tuple(np.shape(got[name])) != tuple(spec.shape):
            raise UserError(
                f"{params_dir}: parameter {name} has shape {tuple(np.shape(got[name]))} but config.json implies "
                f"{tuple(spec.shape)}; fix config.json or use the matching params"
            )
    params = [jnp.asarray(got[name], spec.dtype) for name, spec in want.items()]
    nnx.replace_by_pure_dict(abstract, jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(abstract_params), params))
    return nnx.merge(graphdef, abstract), tokenizer
