"""Hugging Face Llama-family checkpoints -> native: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM.

    convert_hf(src_dir, out)

Reads config.json, the safetensors weights (one file, or shards named by model.safetensors.index.json),
tokenizer.json and, where present, tokenizer_config.json (BOS/EOS tokens, chat template) or
chat_template.jinja; no transformers, no pickle. Weights keep their dtype (bf16 stays bf16). Llama's RoPE rotates halves (`rope_style: "half"`);
`sliding_attention` layers (Mistral's sliding_window, Qwen2's from max_window_layers on, or an explicit
`layer_types`) become "swa" layers: HF's window of W keys is the native window W - 1 (which counts the
keys left of the query). Qwen2's q/k/v biases are kept (`qkv_bias`), and so is Llama-3's "llama3" RoPE
scaling (`rope_scaling`). Refused in one line: other RoPE scalings, partial RoPE, other activations,
and any tensor with no native place (o_proj or MLP biases).

The checkpoint's Jinja chat template is rendered once, here, in jinja2's immutable sandbox around one
user message (`ruler_tasks.chat_templates.from_jinja`), and the native config keeps the result as a plain
format string (`tokenizer.chat_template`), which evaluation uses by default; evaluation renders nothing.
A template that cannot be rendered that way is left out with a warning.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from common.errors import UserError
from common.files import read_json
from model_adapters.config import ModelConfig, TokenizerSpec, config_from_dict
from model_adapters.convert.native import NamedParams, check_out, period, refuse, write_checkpoint
from model_adapters.tokenizers import HFTokenizer
from ruler_tasks.chat_templates import from_jinja


log = logging.getLogger(__name__)
ARCHITECTURES = ("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM")
LAYER_TYPES = {"full_attention": "global", "sliding_attention": "swa"}
IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)  # buffers some older checkpoints saved


class SafetensorsWeights:
    """The tensors of one HF model directory, from model.safetensors or the shards its index names."""

    def __init__(self, src: Path):
        index = src / "model.safetensors.index.json"
        if index.is_file():
            weight_map = read_json(index).get("weight_map")
            if not isinstance(weight_map, dict) or not weight_map:
                raise UserError(f"{index}: no weight_map; the index is damaged (re-download it)")
            self.files = {name: src / file for name, file in weight_map.items()}
        else:
            files = [src / "model.safetensors"] if (src / "model.safetensors").is_file() else sorted(src.glob("*.safetensors"))
            if len(files) != 1:
                raise UserError(f"{src}: {'no' if not files else 'several'} *.safetensors files and no model.safetensors.index.json; "
                                "pass a directory saved with safetensors (save_pretrained(..., safe_serialization=True))")
            self.files = {name: files[0] for name in self._keys(files[0])}
        for file in set(self.files.values()):
            if not file.is_file():
                raise UserError(f"{file}: missing shard named by the index; download the whole checkpoint")
        self.used: set[str] = set()

    @staticmethod
    def _keys(file: Path) -> list[str]:
        from safetensors import safe_open

        try:
            with safe_open(str(file), framework="numpy") as f:
                return list(f.keys())
        except Exception as e:  # the Rust side raises SafetensorError for any malformed file
            raise UserError(f"{file}: not a readable safetensors file ({str(e).splitlines()[0][:200]})") from None

    def has(self, name: str) -> bool:
        return name in self.files

    def get(self, name: str) -> tuple[np.ndarray, str]:
        from safetensors import safe_open

        if name not in self.files:
            raise UserError(f"tensor {name} missing from the safetensors files; the checkpoint does not match its config.json")
        with safe_open(str(self.files[name]), framework="numpy") as f:
            if name not in f.keys():
                raise UserError(f"{self.files[name]}: tensor {name} missing though the index names this file; the checkpoint is damaged")
            array = np.asarray(f.get_tensor(name))
        self.used.add(name)
        return array, name



def _rope(cfg: dict, where: str) -> tuple[float, dict | None]:
    """(rope_theta, native rope_scaling or None) from `rope_parameters` (transformers 5) or the top-level
    `rope_theta` / `rope_scaling`; Llama-3's "llama3" scaling is kept, any other scaling is refused."""
    scaling = None
    for source in ("rope_parameters", "rope_scaling"):
        p = cfg.get(source) or {}
        kind = p.get("rope_type", p.get("type", "default"))
        if kind == "llama3":
            try:
                scaling = dict(type="llama3", factor=p["factor"], low_freq_factor=p["low_freq_factor"],
                               high_freq_factor=p["high_freq_factor"], original_context=p["original_max_position_embeddings"])
            except KeyError as e:
                raise UserError(f"{where}: {source} of type 'llama3' lacks {e.args[0]!r}; the config.json is damaged") from None
        elif kind not in ("default", None):
            raise refuse(f"{where}: {source}", f"RoPE scaling {kind!r} is not supported (only Llama-3's 'llama3')")
    if cfg.get("partial_rotary_factor", 1.0) != 1.0:
        raise refuse(f"{where}: partial_rotary_factor", f"partial RoPE ({cfg['partial_rotary_factor']}) is not supported")
    theta = (cfg.get("rope_parameters") or {}).get("rope_theta", cfg.get("rope_theta", 10000.0))
    return float(theta), scaling


def _layer_kinds(cfg: dict, arch: str, n: int, where: str) -> list[str]:
    if isinstance(cfg.get("layer_types"), list):
        unknown = [t for t in cfg["layer_types"] if t not in LAYER_TYPES]
        if unknown or len(cfg["layer_types"]) != n:
            raise refuse(f"{where}: layer_types", f"{unknown or cfg['layer_types']} (expected {n} of {sorted(LAYER_TYPES)})")
        return [LAYER_TYPES[t] for t in cfg["layer_types"]]
    window = cfg.get("sliding_window")
    if arch == "MistralForCausalLM" and window:
        return ["swa"] * n
    if arch == "Qwen2ForCausalLM" and window and cfg.get("use_sliding_window"):
        first = cfg.get("max_window_layers", n)
        return ["global" if i < first else "swa" for i in range(n)]
    return ["global"] * n



def _token_text(value) -> str | None:
    """tokenizer_config's bos/eos entry: a string, an AddedToken dict {"content": ...}, or null."""
    return value.get("content") if isinstance(value, dict) else value


def _chat_template(src: Path, tok_cfg: dict, tok_cfg_file: Path) -> str | None:
    """The checkpoint's chat template as a format string with one {task_template} (None: it has none, or
    it does not render in the sandbox, which is warned about): chat_template.jinja where present (newer
    transformers), else tokenizer_config.json's chat_template (a string, or named templates: "default")."""
    jinja_file = src / "chat_template.jinja"
    if jinja_file.is_file():
        source, where = jinja_file.read_text(), jinja_file
    else:
        source, where = tok_cfg.get("chat_template"), tok_cfg_file
        if isinstance(source, list):
            source = next((t.get("template") for t in source if isinstance(t, dict) and t.get("name") == "default"), None)
    if not isinstance(source, str) or not source:
        return None
    special = {name: _token_text(tok_cfg.get(name)) for name in ("bos_token", "eos_token", "unk_token", "pad_token")}
    try:
        return from_jinja(source, special, str(where))
    except UserError as e:
        log.warning("chat template left out: %s", e)
        return None


def _layer_params(w: SafetensorsWeights, i: int, qkv_bias: bool) -> NamedParams:
    hf, b = f"model.layers.{i}", f"blocks/{i}"
    out: NamedParams = {}

    def put(native: str, name: str, transpose: bool = False):
        array, source = w.get(name)
        out[native] = (array.T if transpose else array, source)

    put(f"{b}/attn_norm/scale", f"{hf}.input_layernorm.weight")
    put(f"{b}/mlp_norm/scale", f"{hf}.post_attention_layernorm.weight")
    for proj in ("q", "k", "v", "o"):
        put(f"{b}/attn/{proj}_proj/kernel", f"{hf}.self_attn.{proj}_proj.weight", transpose=True)  # [out, in] -> [in, out]
    if qkv_bias:
        for proj in ("q", "k", "v"):
            put(f"{b}/attn/{proj}_proj/bias", f"{hf}.self_attn.{proj}_proj.bias")
    for proj in ("gate", "up", "down"):
        put(f"{b}/mlp/{proj}_proj/kernel", f"{hf}.mlp.{proj}_proj.weight", transpose=True)
    return out


def _special_tokens(cfg: dict, tok_cfg: dict, tok_file: Path, tok_cfg_file: Path):
    """(bos text, bos id, eos text, eos id): tokenizer_config.json's tokens, else config.json's ids; no BOS
    when the tokenizer has none (Qwen2) or says add_bos_token: false."""
    import tokenizers

    HFTokenizer(tok_file)  # a one-line UserError for an unreadable file
    vocab = tokenizers.Tokenizer.from_file(str(tok_file))
    if tok_cfg:
        bos_text, eos_text = _token_text(tok_cfg.get("bos_token")), _token_text(tok_cfg.get("eos_token"))
    else:
        eos = cfg.get("eos_token_id")
        eos = eos[0] if isinstance(eos, list) and eos else eos
        bos_text = vocab.id_to_token(cfg["bos_token_id"]) if isinstance(cfg.get("bos_token_id"), int) else None
        eos_text = vocab.id_to_token(eos) if isinstance(eos, int) else None
    if tok_cfg.get("add_bos_token") is False:
        bos_text = None
    bos_id = vocab.token_to_id(bos_text) if bos_text else None
    eos_id = vocab.token_to_id(eos_text) if eos_text else None
    for name, text, token_id in (("bos_token", bos_text, bos_id), ("eos_token", eos_text, eos_id)):
        if text and token_id is None:
            raise UserError(f"{tok_cfg_file}: {name} {text!r} is not in tokenizer.json; the tokenizer files do not match")
    return bos_text, bos_id, eos_text, eos_id


def _int(cfg: dict, name: str, where: str, default=None) -> int:
    value = cfg.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise UserError(f"{where}: {name} must be a positive integer, got {value!r}; the config.json is damaged")
    return value


def convert_hf(src, out, *, max_context: int = 131072, compute_dtype: str = "float32", overwrite: bool = False) -> Path:
    """Writes the native checkpoint directory `out` from a Hugging Face model directory; returns its path."""
    check_out(out, overwrite)
    src = Path(src).absolute()
    where = src / "config.json"
    if not where.is_file():
        raise UserError(f"{src}: no config.json; pass a Hugging Face model directory (config.json, *.safetensors, tokenizer.json)")
    cfg = read_json(where)
    arch = (cfg.get("architectures") or [None])[0]
    if arch not in ARCHITECTURES:
        raise UserError(f"{where}: architecture {arch!r} is not supported; convert one of {', '.join(ARCHITECTURES)}")
    act = cfg.get("hidden_act", "silu")
    if act != "silu":
        raise refuse(f"{where}: hidden_act", f"activation {act!r} is not supported, only silu")
    tok_file = src / "tokenizer.json"
    if not tok_file.is_file():
        raise UserError(f"{src}: no tokenizer.json; save the fast tokenizer into the directory (AutoTokenizer.save_pretrained)")
    tok_cfg_file = src / "tokenizer_config.json"
    tok_cfg = read_json(tok_cfg_file) if tok_cfg_file.is_file() else {}
    d, n, heads = _int(cfg, "hidden_size", where), _int(cfg, "num_hidden_layers", where), _int(cfg, "num_attention_heads", where)
    kinds = _layer_kinds(cfg, arch, n, where)
    theta, rope_scaling = _rope(cfg, str(where))
    bos_text, bos_id, eos_text, eos_id = _special_tokens(cfg, tok_cfg, tok_file, tok_cfg_file)

    weights = SafetensorsWeights(src)
    qkv_bias = weights.has("model.layers.0.self_attn.q_proj.bias")
    emb, emb_name = weights.get("model.embed_tokens.weight")
    params: NamedParams = {"embed/embedding": (emb, emb_name), "final_norm/scale": weights.get("model.norm.weight")}
    tied = bool(cfg.get("tie_word_embeddings", False)) or not weights.has("lm_head.weight")
    if weights.has("lm_head.weight"):
        head, name = weights.get("lm_head.weight")
        if not tied:
            params["lm_head/kernel"] = (head.T, name)
    for i in range(n):
        params.update(_layer_params(weights, i, qkv_bias))
    unused = sorted(k for k in set(weights.files) - weights.used if not k.endswith(IGNORED_SUFFIXES))
    if unused:
        raise refuse(unused[0], "this tensor (a bias or an extra norm?) has no place in the native model")

    window = cfg.get("sliding_window") if "swa" in kinds else None
    raw = dict(
        vocab_size=int(emb.shape[0]), d_model=d, num_layers=n, num_heads=heads,
        num_kv_heads=cfg.get("num_key_value_heads") or heads, head_dim=cfg.get("head_dim") or d // heads,
        mlp_dim=_int(cfg, "intermediate_size", where), layer_pattern=period(kinds), window=(window - 1) if window else 0,
        max_context=max_context, rope_theta=theta, rope_scaling=rope_scaling, rope_style="half", qkv_bias=qkv_bias,
        tie_embeddings=tied, param_dtype=str(emb.dtype), compute_dtype=compute_dtype,
        norm_eps=float(cfg.get("rms_norm_eps", 1e-6)), bos_id=bos_id, eos_id=eos_id,
        train_context=cfg.get("max_position_embeddings"),
        tokenizer=TokenizerSpec(type="hf", bos_token=bos_text if bos_id is not None else None, eos_token=eos_text,
                                chat_template=_chat_template(src, tok_cfg, tok_cfg_file)).to_dict(),
    )
    config: ModelConfig = config_from_dict(raw, source=str(where))
    vocab_size = HFTokenizer(tok_file).vocab_size
    if vocab_size > config.vocab_size:
        raise UserError(f"{tok_file}: {vocab_size} token ids but the embedding has {config.vocab_size} rows; the files do not match")
    return write_checkpoint(config, params, out, tokenizer_file=tok_file, overwrite=overwrite)
