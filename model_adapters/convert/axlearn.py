"""axlearn RAttention checkpoints -> native: a tensorstore step directory plus the trainer's flat config dump.

    convert_axlearn(step_dir, config_dump, tokenizer, out)

On disk (axlearn's default Checkpointer, tensorstore storage): `<step>/index` (or `<step>/index/index`),
written last, is a JSON list of [path, value] pairs; every array has a {"dtype", "shape"} value and lives
as zarr v2 under `<step>/gda/<path>/`. Only `model/...` arrays are read (learner state, prng_key, step and
tf iterators are ignored). The config dump is axlearn's `path: value` lines (`model.decoder.dim: 8`).

Layers: `model/decoder/transformer/layer{i}` (listed), `.../repeat/layer` with layer i at [i] on a leading
axis (repeated), or `.../repeat/layer/layer{i % k}` at [i // k] (a repeated stack of k). The parameter map
(issue 13) is in `_layer_params`; the dimensions come from the arrays, the rest (layer kinds, window, RoPE
theta, eps, feature map) from the dump. Anything the native model cannot run is refused in one line
naming the config path or tensor: an unknown parameter (biases, QK norms, per_dim_scale, extra norms,
positional embeddings) or a config value (logit caps, value RoPE, non-gated MLPs, post-norm, no window).
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import numpy as np

from common.errors import UserError
from model_adapters.config import ModelConfig, TokenizerSpec, config_from_dict
from model_adapters.convert.native import NamedParams, check_out, period, refuse, write_checkpoint
from model_adapters.tokenizers import load_tokenizer

DECODER = "model/decoder"
STACK = f"{DECODER}/transformer"
CFG_STACK = "model.decoder.transformer"
ATTN = "self_attention/attention"
AXLEARN_NORM_EPS = 1e-8  # RMSNorm.Config.eps default
AXLEARN_RATTENTION_THETA = 500000.0  # RAttention.Config.rope_theta default
AXLEARN_ROFORMER_THETA = 10000.0  # RoFormerSinusoidalPositionalEmbedding.Config.theta default
AXLEARN_WINDOW = 1024  # RAttention.Config.sliding_window_size default


# ---------------------------------------------------------------------------------------------- config dump
def read_config_dump(path: str | Path) -> dict[str, object]:
    """axlearn's flat `path: value` lines -> {path: value}; values are Python literals where they parse
    (ast.literal_eval, which evaluates nothing), else the raw text (e.g. `PartitionSpec(...)`)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: config dump not found; pass the trainer config dump (flat 'path: value' lines) as --config")
    dump: dict[str, object] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition(": ")
        if not sep:
            key, sep, value = line.rstrip().rpartition(":")
            if not sep or not key or value.strip():
                raise UserError(f"{path}:{lineno}: expected a 'path: value' line, got {line[:80]!r}; pass axlearn's config dump")
        try:
            dump[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            dump[key.strip()] = value.strip()
    if not any(k.startswith("model.decoder.") for k in dump):
        raise UserError(f"{path}: no model.decoder.* entries; pass the trainer config dump of a decoder-only LM")
    return dump



def _check_global_config(dump: dict) -> None:
    """Refusals that apply to the whole model: logit caps, scaled or positional embeddings."""
    for key, value in dump.items():
        if key.startswith("model.") and "logit_cap" in key and isinstance(value, (int, float)) and value > 0:
            raise refuse(key, f"a logit cap ({value}) is not supported")
    scale = dump.get("model.decoder.emb.token_emb.scale")
    if scale is not None:
        raise refuse("model.decoder.emb.token_emb.scale", f"scaled embeddings ({scale}) are not supported")
    if dump.get("model.decoder.emb.pos_emb.klass") is not None:
        raise refuse("model.decoder.emb.pos_emb", "positional embeddings are not supported")


# ------------------------------------------------------------------------------------------------ arrays
class StepDir:
    """A committed axlearn step directory: the index's arrays under model/, read with tensorstore."""

    def __init__(self, step_dir: str | Path):
        self.dir = Path(step_dir).absolute()
        if not self.dir.is_dir():
            raise UserError(f"{self.dir}: not a directory; pass an axlearn step directory (TRAINER_DIR/checkpoints/step_XXXXXXXX)")
        index = self.dir / "index"
        if index.is_dir():
            index = index / "index"
        if not index.is_file():
            raise UserError(
                f"{self.dir}: no index file, so this checkpoint was never committed (still being written or "
                "interrupted); pass a step directory that has one"
            )
        try:
            entries = json.loads(index.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise UserError(f"{index}: not a JSON index ({e}); the checkpoint is damaged") from None
        if not isinstance(entries, list) or not all(isinstance(e, list) and len(e) == 2 for e in entries):
            raise UserError(f"{index}: expected a JSON list of [path, value] pairs; not an axlearn tensorstore index")
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.dtypes: dict[str, str] = {}
        for path, value in entries:
            if isinstance(path, str) and path.startswith("model/") and isinstance(value, dict):
                try:
                    self.shapes[path] = tuple(ast.literal_eval(value["shape"]))
                    self.dtypes[path] = str(value["dtype"])
                except (KeyError, ValueError, SyntaxError, TypeError):
                    raise UserError(f"{index}: entry {path} has no readable dtype and shape; the checkpoint is damaged") from None
        if not self.shapes:
            raise UserError(f"{index}: no model/ arrays; not a model checkpoint")
        self.used: set[str] = set()
        self._arrays: dict[str, np.ndarray] = {}

    def has(self, path: str) -> bool:
        return path in self.shapes

    def has_under(self, prefix: str) -> bool:
        return any(p.startswith(prefix + "/") for p in self.shapes)

    def read(self, path: str) -> np.ndarray:
        """The whole array at `path` (its stored dtype), cached: a repeated layer's stack is read once."""
        if path not in self._arrays:
            import tensorstore as ts

            if path not in self.shapes:
                raise UserError(f"{self.dir}: no array {path} in the index; the checkpoint does not match its config")
            spec = {"driver": "zarr", "kvstore": {"driver": "file", "path": str(self.dir / "gda" / path)}}
            try:
                array = np.asarray(ts.open(spec, open=True, read=True).result().read().result())
            except Exception as e:  # tensorstore raises ValueError/RuntimeError subtypes for missing or bad data
                first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
                raise UserError(f"{self.dir / 'gda' / path}: unreadable array ({first}); the checkpoint is incomplete or damaged") from None
            if array.shape != self.shapes[path]:
                raise UserError(f"{self.dir / 'gda' / path}: shape {array.shape} but the index says {self.shapes[path]}; the checkpoint is damaged")
            self._arrays[path] = array
        self.used.add(path)
        return self._arrays[path]


class LayerParams:
    """One layer's view of the step directory: `prefix/<rel>`, at [index] on a leading axis if repeated."""

    def __init__(self, step: StepDir, prefix: str, index: int | None):
        self.step, self.prefix, self.index = step, prefix, index

    def has(self, rel: str) -> bool:
        return self.step.has(f"{self.prefix}/{rel}")

    def has_under(self, rel: str) -> bool:
        return self.step.has_under(f"{self.prefix}/{rel}")

    def name(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" + ("" if self.index is None else f"[{self.index}]")

    def get(self, rel: str) -> tuple[np.ndarray, str]:
        array = self.step.read(f"{self.prefix}/{rel}")
        return (array if self.index is None else array[self.index]), self.name(rel)


def _layers(step: StepDir) -> tuple[list[LayerParams], list[list[str]]]:
    """Each layer's parameters and, in order of preference, the config-dump prefixes that may describe it."""
    def numbered(prefix: str) -> list[int]:
        return sorted({int(m.group(1)) for p in step.shapes if (m := re.match(rf"{re.escape(prefix)}/layer(\d+)/", p))})

    def repeats(prefix: str) -> int:
        return step.shapes[f"{prefix}/self_attention/norm/scale"][0] if step.has(f"{prefix}/self_attention/norm/scale") else 0

    if stacked := numbered(f"{STACK}/repeat/layer"):
        k = len(stacked)
        n = repeats(f"{STACK}/repeat/layer/layer0") * k
        params = [LayerParams(step, f"{STACK}/repeat/layer/layer{i % k}", i // k) for i in range(n)]
        cfgs = [[f"{CFG_STACK}.layer.layer[{i % k}]", f"{CFG_STACK}.layer.layer"] for i in range(n)]
    elif step.has_under(f"{STACK}/repeat/layer"):
        n = repeats(f"{STACK}/repeat/layer")
        params = [LayerParams(step, f"{STACK}/repeat/layer", i) for i in range(n)]
        cfgs = [[f"{CFG_STACK}.layer"] for _ in range(n)]
    else:
        listed = numbered(STACK)
        if listed != list(range(len(listed))):
            raise UserError(f"{step.dir}: layers {listed} under {STACK} are not numbered 0..n-1; the checkpoint is incomplete")
        params = [LayerParams(step, f"{STACK}/layer{i}", None) for i in listed]
        cfgs = [[f"{CFG_STACK}.layer[{i}]", f"{CFG_STACK}.layer"] for i in listed]
    if not params:
        raise UserError(f"{step.dir}: no transformer layers under {STACK} (listed layer{{i}} or repeat/layer); not a supported layout")
    return params, cfgs


# ------------------------------------------------------------------------------------------------ layers
def _layer_facts(dump: dict, candidates: list[str], layer: int) -> dict:
    """What the dump says about one layer: kind, window, theta, eps, feature map; refusals by config path."""
    c = next((p for p in candidates if f"{p}.self_attention.attention.klass" in dump), None)
    if c is None:
        raise UserError(f"config dump: no entry for layer {layer} (looked for {candidates[0]}.self_attention.attention.klass); "
                        "pass the dump of the trainer that wrote this checkpoint")
    a = f"{c}.self_attention.attention"
    for sub in ("self_attention", "feed_forward"):
        if (structure := dump.get(f"{c}.{sub}.structure", "prenorm")) != "prenorm":
            raise refuse(f"{c}.{sub}.structure", f"the {structure!r} structure (extra pre/post norms) is not supported, only 'prenorm'")
        if not str(dump.get(f"{c}.{sub}.norm.klass", "RMSNorm")).endswith("RMSNorm"):
            raise refuse(f"{c}.{sub}.norm.klass", f"{dump[f'{c}.{sub}.norm.klass']} is not supported, only RMSNorm")
    activation = (dump.get(f"{c}.feed_forward.activation[0]"), dump.get(f"{c}.feed_forward.activation[1]"))
    if activation != ("nn.silu", "linear"):
        raise refuse(f"{c}.feed_forward.activation", f"{activation} is not supported, only the gated ('nn.silu', 'linear') MLP")
    for scale in ("query_scale", "key_scale"):
        if dump.get(f"{a}.{scale}.scale_factor") is not None:
            raise refuse(f"{a}.{scale}.scale_factor", "a custom attention scale is not supported")
        if dump.get(f"{a}.{scale}.per_dim_scale.klass") is not None:
            raise refuse(f"{a}.{scale}.per_dim_scale", "per_dim_scale is not supported")
        if dump.get(f"{a}.{scale}.norm.klass") is not None:
            raise refuse(f"{a}.{scale}.norm", "QK norm is not supported")
    if dump.get(f"{a}.causal", True) is not True:
        raise refuse(f"{a}.causal", "non-causal attention is not supported")
    eps = {float(dump.get(f"{c}.{sub}.norm.eps", AXLEARN_NORM_EPS)) for sub in ("self_attention", "feed_forward")}
    facts = {"eps": eps, "heads": dump.get(f"{a}.num_heads")}
    if str(dump[f"{a}.klass"]).rsplit(".", 1)[-1] == "RAttention":
        window = dump.get(f"{a}.sliding_window_size", AXLEARN_WINDOW)
        if not isinstance(window, int) or window < 0:
            raise refuse(f"{a}.sliding_window_size", f"sliding_window_size={window} (no window) is not supported")
        if dump.get(f"{a}.mixing_norm.klass") is not None:
            raise refuse(f"{a}.mixing_norm", "a custom mixing norm is not supported, only the default GroupRMSNorm")
        has_rla = dump.get(f"{a}.residual_la.klass") is not None
        facts.update(kind="rattention" if has_rla else "swa", window=window,
                     theta=float(dump.get(f"{a}.rope_theta", AXLEARN_RATTENTION_THETA)))
        if has_rla:
            feat = str(dump.get(f"{a}.residual_la.feat_fn", "softmax")).lower()
            maps = [m for m in ("softmax", "relu") if m in feat]
            if len(maps) != 1:
                raise refuse(f"{a}.residual_la.feat_fn", f"feature map {feat!r} is not supported, only softmax or relu")
            facts["feature_map"] = maps[0]
        return facts
    if dump.get(f"{a}.mask") is not None or dump.get(f"{a}.mask.klass") is not None:
        raise refuse(f"{a}.mask", "an attention mask other than causal is not supported on a non-RAttention layer")
    rope = f"{a}.input_linear"
    if not str(dump.get(f"{rope}.klass", "")).endswith("RoFormerQKVLinear"):
        raise refuse(f"{rope}.klass", f"{dump.get(f'{rope}.klass')} (attention without RoPE) is not supported")
    if dump.get(f"{rope}.rotary_value", False):
        raise refuse(f"{rope}.rotary_value", "RoPE on values is not supported")
    for key in dump:
        if key.startswith(f"{rope}.rope_pos_emb_layer.") and re.search(r"partial|fraction|rotary_dim", key) and dump[key] not in (None, 1, 1.0):
            raise refuse(key, "partial RoPE is not supported")
    facts.update(kind="global", theta=float(dump.get(f"{rope}.rope_pos_emb_layer.theta", AXLEARN_ROFORMER_THETA)))
    return facts


def _qkv(lp: LayerParams, root: str, num_heads) -> tuple[tuple, tuple, tuple]:
    """(q, k, v) as ([d, heads, Dh] array, source name) from separate, fused or fused-grouped projections."""
    if lp.has(f"{root}/qkv_proj/weight"):
        w, name = lp.get(f"{root}/qkv_proj/weight")
        if w.ndim == 4:  # FusedQKVLinear [3, d, H, Dh]
            return (w[0], name + "[0]"), (w[1], name + "[1]"), (w[2], name + "[2]")
        if not isinstance(num_heads, int) or (w.shape[1] - num_heads) % 2 or w.shape[1] <= num_heads:
            raise UserError(f"{name}: fused grouped weight of shape {w.shape} cannot be split with num_heads={num_heads} "
                            "from the config dump; pass the dump of the trainer that wrote this checkpoint")
        kv = (w.shape[1] - num_heads) // 2  # FusedGroupedQKVLinear [d, H + 2 Hkv, Dh]
        return ((w[:, :num_heads], name + f"[:, :{num_heads}]"), (w[:, num_heads:num_heads + kv], name + f"[:, {num_heads}:{num_heads + kv}]"),
                (w[:, num_heads + kv:], name + f"[:, {num_heads + kv}:]"))
    return tuple(lp.get(f"{root}/{p}_proj/weight") for p in "qkv")


def _phi(x: np.ndarray, feature_map: str) -> np.ndarray:
    """RAttention's feature map in float32 numpy: [..., D] -> [..., 2D]."""
    x = x.astype(np.float32)
    if feature_map == "relu":
        return np.concatenate([np.maximum(x, 0), np.maximum(-x, 0)], axis=-1)

    def softmax(y):
        e = np.exp(y - y.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    return np.concatenate([softmax(x), softmax(-x)], axis=-1)


def _layer_params(i: int, lp: LayerParams, facts: dict) -> tuple[NamedParams, dict]:
    """Layer i's native parameters and its dimensions {d, heads, kv_heads, head_dim, mlp_dim, qk_scale, init}."""
    out: NamedParams = {}
    b = f"blocks/{i}"

    def put(native, pair, transform=lambda x: x):
        out[native] = (transform(pair[0]), pair[1])

    put(f"{b}/attn_norm/scale", lp.get("self_attention/norm/scale"))
    put(f"{b}/mlp_norm/scale", lp.get("feed_forward/norm/scale"))
    put(f"{b}/mlp/gate_proj/kernel", lp.get("feed_forward/linear1_0/weight"))
    put(f"{b}/mlp/up_proj/kernel", lp.get("feed_forward/linear1_1/weight"))
    put(f"{b}/mlp/down_proj/kernel", lp.get("feed_forward/linear2/weight"))
    root = f"{ATTN}/i_proj/i_proj" if lp.has_under(f"{ATTN}/i_proj/i_proj") else f"{ATTN}/i_proj"
    q, k, v = _qkv(lp, root, facts["heads"])
    for proj, pair in zip("qkv", (q, k, v)):
        if pair[0].ndim != 3:
            raise UserError(f"{pair[1]}: shape {pair[0].shape}, expected [d_model, heads, head_dim]")
        put(f"{b}/attn/{proj}_proj/kernel", pair, lambda w: w.reshape(w.shape[0], -1))
    o = lp.get(f"{ATTN}/o_proj/weight")  # [d, H, Dh] -> [H * Dh, d]
    put(f"{b}/attn/o_proj/kernel", o, lambda w: w.transpose(1, 2, 0).reshape(-1, w.shape[0]))
    dims = dict(d=q[0].shape[0], heads=q[0].shape[1], kv_heads=k[0].shape[1], head_dim=q[0].shape[2],
                mlp_dim=out[f"{b}/mlp/gate_proj/kernel"][0].shape[-1], qk_scale=False, init=False)
    if facts["heads"] is not None and facts["heads"] != dims["heads"]:
        raise UserError(f"{q[1]}: {dims['heads']} heads, but the config dump says num_heads={facts['heads']}; they do not match")
    if facts["kind"] == "rattention":
        put(f"{b}/attn/swa_norm/scale", lp.get(f"{ATTN}/swa_norm/scale"))
        put(f"{b}/attn/rla_norm/scale", lp.get(f"{ATTN}/rla_norm/scale"))
        rla = f"{ATTN}/residual_la"
        if lp.has(f"{rla}/q_scale"):
            dims["qk_scale"] = True
            put(f"{b}/attn/q_scale", lp.get(f"{rla}/q_scale"), lambda s: np.broadcast_to(s, (dims["heads"], s.shape[-1])))
            put(f"{b}/attn/k_scale", lp.get(f"{rla}/k_scale"), lambda s: np.broadcast_to(s, (dims["kv_heads"], s.shape[-1])))
        if lp.has(f"{rla}/k_tokens"):
            dims["init"] = True
            k_tok, k_name = lp.get(f"{rla}/k_tokens")
            v_tok, v_name = lp.get(f"{rla}/v_tokens")
            if k_tok.shape != v_tok.shape or k_tok.ndim != 3:
                raise UserError(f"{k_name}: shape {k_tok.shape} and {v_name}: {v_tok.shape} must both be [heads, tokens, head_dim]")
            state = np.einsum("nlk,nlv->nkv", _phi(k_tok, facts["feature_map"]), v_tok.astype(np.float32))
            out[f"{b}/attn/initial_state"] = (state.astype(np.float32), f"phi({k_name}) x {v_name}")
    return out, dims


def _uniform(values: dict[int, object], what: str, name) -> object:
    """The one value all layers share; layers that differ are refused (the native config is uniform)."""
    distinct = sorted(set(values.values()), key=str)
    if len(distinct) > 1:
        first = {v: next(i for i in values if values[i] == v) for v in distinct}
        raise UserError(f"{name(first[distinct[1]])}: {what} {distinct[1]} differs from {distinct[0]} in another layer; "
                        "the native model needs one value for all layers")
    return distinct[0] if distinct else None



# -------------------------------------------------------------------------------------------------- main
def convert_axlearn(step_dir, config_dump, tokenizer: str, out, *, max_context: int = 131072,
                    train_context: int | None = None, compute_dtype: str = "float32", overwrite: bool = False) -> Path:
    """Writes the native checkpoint directory `out` from an axlearn step directory; returns its path."""
    check_out(out, overwrite)
    dump = read_config_dump(config_dump)
    step = StepDir(step_dir)
    _check_global_config(dump)
    tok = load_tokenizer(tokenizer)
    params: NamedParams = {}
    emb, emb_name = step.read(f"{DECODER}/emb/token_emb/weight"), f"{DECODER}/emb/token_emb/weight"
    params["embed/embedding"] = (emb, emb_name)
    params["final_norm/scale"] = (step.read(f"{DECODER}/output_norm/scale"), f"{DECODER}/output_norm/scale")
    tied = not step.has(f"{DECODER}/lm_head/weight")
    if not tied:
        params["lm_head/kernel"] = (step.read(f"{DECODER}/lm_head/weight").T, f"{DECODER}/lm_head/weight")

    layer_params, layer_cfgs = _layers(step)
    facts, dims = {}, {}
    for i, (lp, cands) in enumerate(zip(layer_params, layer_cfgs)):
        facts[i] = _layer_facts(dump, cands, i)
        named, dims[i] = _layer_params(i, lp, facts[i])
        params.update(named)
    unused = sorted(set(step.shapes) - step.used)
    if unused:
        raise refuse(unused[0], "this parameter (a bias, QK norm, per_dim_scale, extra norm or positional embedding?) "
                                 "has no place in the native model")

    def layer_name(i):
        return layer_params[i].name(ATTN)

    def agree(key, what, source=dims, only=None):
        return _uniform({i: source[i][key] for i in source if only is None or facts[i]["kind"] in only}, what, layer_name)

    kinds = [facts[i]["kind"] for i in facts]
    local = ("rattention", "swa")
    eps = {e for f in facts.values() for e in f["eps"]} | {float(dump.get("model.decoder.output_norm.eps", AXLEARN_NORM_EPS))}
    if len(eps) > 1:
        raise refuse("model.decoder.transformer.*.norm.eps", f"norms with different eps {sorted(eps)} are not supported")
    local_theta = agree("theta", "RoPE theta", facts, local)
    global_theta = agree("theta", "RoPE theta", facts, ("global",))
    bos = getattr(tok, "bos_id", None)
    eos = dump.get("model.decoder.eos_token_id", getattr(tok, "eos_id", None))
    if train_context is None and isinstance(dump.get("input.source.max_sequence_length"), int):
        train_context = dump["input.source.max_sequence_length"]
    tok_spec = TokenizerSpec(type="byte") if tokenizer == "byte" else TokenizerSpec(
        type="sentencepiece" if str(tokenizer).endswith(".model") else "hf")
    raw = dict(
        vocab_size=int(emb.shape[0]), d_model=agree("d", "d_model"), num_layers=len(kinds),
        num_heads=agree("heads", "num_heads"), num_kv_heads=agree("kv_heads", "num_kv_heads"),
        head_dim=agree("head_dim", "head_dim"), mlp_dim=agree("mlp_dim", "mlp_dim"), layer_pattern=period(kinds),
        window=agree("window", "sliding_window_size", facts, local) or 0, max_context=max_context,
        rope_theta=local_theta if local_theta is not None else global_theta,
        global_rope_theta=global_theta if local_theta is not None and global_theta not in (None, local_theta) else None,
        rope_style="interleaved", feature_map=agree("feature_map", "feat_fn", facts, ("rattention",)) or "softmax",
        learned_qk_scale=bool(agree("qk_scale", "use_qk_scale", dims, ("rattention",))),
        learned_initial_state=bool(agree("init", "use_learned_init", dims, ("rattention",))),
        tie_embeddings=tied, param_dtype=str(emb.dtype),
        compute_dtype=compute_dtype, norm_eps=eps.pop(), bos_id=bos, eos_id=eos if isinstance(eos, int) else None,
        train_context=train_context, tokenizer=tok_spec.to_dict(),
    )
    config: ModelConfig = config_from_dict(raw, source=f"{config_dump} + {step.dir}")
    if config.eos_id is not None and config.eos_id >= tok.vocab_size:
        raise UserError(f"{config_dump}: model.decoder.eos_token_id {config.eos_id} is not a token of {tokenizer} "
                        f"({tok.vocab_size} ids); pass the tokenizer the model was trained with")
    if tok.vocab_size > config.vocab_size:
        raise UserError(f"{tokenizer}: {tok.vocab_size} token ids but the embedding has {config.vocab_size} rows; pass the tokenizer the model was trained with")
    return write_checkpoint(config, params, out, tokenizer_file=None if tokenizer == "byte" else tokenizer, overwrite=overwrite)
