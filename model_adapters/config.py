"""ModelConfig: the architecture a checkpoint's config.json describes (docs/ARCHITECTURE.md sections 4-5), validated.

JAX-free: the checkpoint loader and runners read it before building anything. Every field is checked on
load; an unknown, missing or ill-typed field is a UserError naming the field and the fix.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.errors import UserError
from common.files import read_json

LAYER_KINDS = ("rattention", "swa", "global")
LOCAL_KINDS = ("rattention", "swa")
DTYPES = ("float32", "bfloat16", "float16")
AUTO_DTYPE = "auto"  # compute dtype: bfloat16 on a GPU or TPU for a float32 checkpoint, else the checkpoint's


@dataclass(frozen=True)
class TokenizerSpec:
    """The config.json "tokenizer" entry: type "byte" | "sentencepiece" | "hf", its file in the checkpoint,
    and the model's own chat template as a format string with one {task_template} (converted checkpoints)."""

    type: str = "byte"
    file: str | None = None
    bos_token: str | None = None
    eos_token: str | None = None
    chat_template: str | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass(frozen=True)
class RopeScaling:
    """Llama-3's RoPE frequency scaling (rope_type "llama3"): long wavelengths divided by `factor`, short
    ones kept, the band between interpolated (the config.json "rope_scaling" entry; null: none)."""

    type: str
    factor: float
    low_freq_factor: float
    high_freq_factor: float
    original_context: int


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    d_model: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    mlp_dim: int
    layer_pattern: tuple[str, ...]  # cycled over the blocks
    window: int  # SWA sees t - window .. t (window + 1 keys); RLA sees 0 .. t - window - 1
    max_context: int  # the longest prompt + generation the model accepts
    rope_theta: float = 10000.0
    global_rope_theta: float | None = None  # RoPE theta of "global" layers (None: rope_theta)
    rope_scaling: RopeScaling | None = None
    rope_style: str = "interleaved"  # "interleaved" (axlearn) | "half" (Llama)
    feature_map: str = "softmax"  # "softmax" | "relu"
    learned_qk_scale: bool = False  # RLA branch reads q * q_scale, k * k_scale ([H, D] each)
    learned_initial_state: bool = False  # RLA state starts from a learned [Hq, 2D, D] instead of zeros
    swa_branch_norm: bool = True  # RAttention mixes GroupRMSNorm(SWA) + GroupRMSNorm(RLA) (axlearn); False: raw SWA + it
    qkv_bias: bool = False  # q/k/v projections carry a bias (Qwen2)
    tie_embeddings: bool = True
    param_dtype: str = "float32"
    compute_dtype: str = "float32"
    norm_eps: float = 1e-6
    bos_id: int | None = None
    eos_id: int | None = None
    train_context: int | None = None
    tokenizer: TokenizerSpec = TokenizerSpec()

    @property
    def layer_kinds(self) -> tuple[str, ...]:
        """The kind of each of the num_layers blocks (layer_pattern cycled)."""
        return tuple(self.layer_pattern[i % len(self.layer_pattern)] for i in range(self.num_layers))

    def rope_theta_of(self, kind: str) -> float:
        """The RoPE theta of a layer of this kind (axlearn's global layers default to another theta)."""
        return self.global_rope_theta if kind == "global" and self.global_rope_theta is not None else self.rope_theta

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["layer_pattern"] = list(self.layer_pattern)
        d["tokenizer"] = self.tokenizer.to_dict()
        return d

    def replace(self, **changes) -> "ModelConfig":
        return config_from_dict({**self.to_dict(), **changes})


_INT_FIELDS = ("vocab_size", "d_model", "num_layers", "num_heads", "num_kv_heads", "head_dim", "mlp_dim", "max_context")
_BOOL_FIELDS = ("learned_qk_scale", "learned_initial_state", "swa_branch_norm", "qkv_bias", "tie_embeddings")
_CHOICES = {"rope_style": ("interleaved", "half"), "feature_map": ("softmax", "relu"),
            "param_dtype": DTYPES, "compute_dtype": DTYPES}


def config_from_dict(raw: Any, source: str = "config.json") -> ModelConfig:
    """Validates a config.json object into a ModelConfig; `source` names the file in error messages."""
    if not isinstance(raw, dict):
        raise UserError(f"{source}: expected a JSON object, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(ModelConfig)}
    for name in raw:
        if name not in fields:
            raise UserError(f"{source}: unknown field {name!r}; remove it (known fields: {', '.join(fields)})")
    for name, f in fields.items():
        if f.default is dataclasses.MISSING and name not in raw:
            raise UserError(f"{source}: missing required field {name!r}")

    def bad(name: str, want: str) -> UserError:
        return UserError(f"{source}: field {name!r} must be {want}, got {raw[name]!r}")

    def is_int(x) -> bool:
        return isinstance(x, int) and not isinstance(x, bool)

    values = dict(raw)
    for name in _INT_FIELDS:
        if not is_int(raw[name]) or raw[name] <= 0:
            raise bad(name, "a positive integer")
    if not is_int(raw["window"]) or raw["window"] < 0:
        raise bad("window", "a non-negative integer")
    for name in ("bos_id", "eos_id", "train_context"):
        if raw.get(name) is not None and (not is_int(raw[name]) or raw[name] < 0):
            raise bad(name, "a non-negative integer or null")
    for name in _BOOL_FIELDS:
        if name in raw and not isinstance(raw[name], bool):
            raise bad(name, "true or false")
    for name in ("rope_theta", "global_rope_theta", "norm_eps"):
        if raw.get(name) is not None:
            if not isinstance(raw[name], (int, float)) or isinstance(raw[name], bool) or raw[name] <= 0:
                raise bad(name, "a positive number")
            values[name] = float(raw[name])
    for name, choices in _CHOICES.items():
        if name in raw and raw[name] not in choices:
            raise bad(name, " | ".join(repr(c) for c in choices))
    pattern = raw["layer_pattern"]
    if not isinstance(pattern, list) or not pattern or any(k not in LAYER_KINDS for k in pattern):
        raise bad("layer_pattern", f"a non-empty list of {' | '.join(repr(k) for k in LAYER_KINDS)}")
    values["layer_pattern"] = tuple(pattern)
    if raw["num_heads"] % raw["num_kv_heads"]:
        raise bad("num_kv_heads", f"a divisor of num_heads ({raw['num_heads']})")
    if raw["head_dim"] % 2:
        raise bad("head_dim", "even (RoPE rotates pairs of dimensions)")
    for name in ("bos_id", "eos_id"):
        if raw.get(name) is not None and raw[name] >= raw["vocab_size"]:
            raise bad(name, f"below vocab_size ({raw['vocab_size']})")
    if raw.get("rope_scaling") is not None:
        values["rope_scaling"] = _rope_scaling(raw["rope_scaling"], bad)
    tok = raw.get("tokenizer", {"type": "byte"})
    tok_fields = {f.name for f in dataclasses.fields(TokenizerSpec)}
    if not isinstance(tok, dict) or set(tok) - tok_fields or "type" not in tok:
        raise bad("tokenizer", f"an object with 'type' and optionally {sorted(tok_fields - {'type'})}")
    chat = tok.get("chat_template")
    if chat is not None and (not isinstance(chat, str) or chat.count("{task_template}") != 1):
        raise bad("tokenizer", "an object whose chat_template, if present, is a string with exactly one {task_template}")
    values["tokenizer"] = TokenizerSpec(**tok)
    return ModelConfig(**values)


def _rope_scaling(raw: Any, bad) -> RopeScaling:
    names = [f.name for f in dataclasses.fields(RopeScaling)]
    want = f"null or an object with {names}, type 'llama3', positive factors and low_freq_factor < high_freq_factor"
    if not isinstance(raw, dict) or set(raw) != set(names) or raw["type"] != "llama3":
        raise bad("rope_scaling", want)
    numbers = [raw[n] for n in names[1:]]
    if any(not isinstance(x, (int, float)) or isinstance(x, bool) or x <= 0 for x in numbers) \
            or not isinstance(raw["original_context"], int) or raw["low_freq_factor"] >= raw["high_freq_factor"]:
        raise bad("rope_scaling", want)
    return RopeScaling(type="llama3", factor=float(raw["factor"]), low_freq_factor=float(raw["low_freq_factor"]),
                       high_freq_factor=float(raw["high_freq_factor"]), original_context=raw["original_context"])


def load_config(ckpt_dir: str | Path) -> ModelConfig:
    """Reads and validates `<ckpt_dir>/config.json`."""
    path = Path(ckpt_dir) / "config.json"
    if not Path(ckpt_dir).is_dir():
        raise UserError(f"{ckpt_dir}: not a directory; pass a checkpoint directory (config.json + params/)")
    if not path.is_file():
        raise UserError(f"{ckpt_dir}: no config.json; this is not a checkpoint directory (make one with python -m runners.init)")
    return config_from_dict(read_json(path), source=str(path))


def add_compute_dtype_flag(parser) -> None:
    """--compute-dtype for a CLI that runs a model (the value goes to resolve_compute_dtype)."""
    parser.add_argument("--compute-dtype", choices=(AUTO_DTYPE, *DTYPES), default=AUTO_DTYPE,
                        help="activation dtype (default: bfloat16 on a GPU/TPU for a float32 checkpoint, else "
                             "config.json's)")


def resolve_compute_dtype(requested: str, stored: str, backend: str) -> str:
    """The activation dtype to run with: `requested` (one of DTYPES or AUTO_DTYPE) given the checkpoint's
    `stored` compute_dtype and jax's `backend`. AUTO_DTYPE keeps the matrix work on the tensor cores of a
    GPU/TPU (bfloat16; RLA state, norms, softmax and logits stay float32) and the checkpoint's on a CPU."""
    if requested != AUTO_DTYPE:
        if requested not in DTYPES:
            raise UserError(f"--compute-dtype: {requested!r} is not one of {(AUTO_DTYPE, *DTYPES)}")
        return requested
    return "bfloat16" if backend in ("gpu", "tpu") and stored == "float32" else stored
