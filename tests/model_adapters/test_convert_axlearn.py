"""axlearn -> native conversion: axlearn-layout checkpoints written here with tensorstore (random weights, the
real path names), converted, and compared with a forward pass written below directly on the axlearn arrays.

The reference follows axlearn's layers, not the native model: RoFormer sin/cos with rotate-half on
interleaved pairs, q scaled by 1/sqrt(Dh), jnp.repeat-style GQA, the SWA mask 0 <= t - s <= window, the
RLA branch over s <= t - window - 1 from the meta-token initial state, GroupRMSNorm (eps 1e-8) mixing,
`btnh,dnh->btd` output projection, prenorm blocks with the gated SiLU MLP.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
import tensorstore as ts

import model_adapters
from common.errors import UserError
from model_adapters.convert.__main__ import main as convert_main
from model_adapters.convert.axlearn import convert_axlearn

V, D, H, HKV, DH, F, T, EPS = 264, 32, 4, 2, 8, 48, 24, 1e-5
ATT = "self_attention/attention"
RATT = "axlearn.common.rattention.rattention.RAttention"


# ---------------------------------------------------------------------------------------- writing axlearn
def write_step(step_dir: Path, arrays: dict[str, np.ndarray], *, commit: bool = True) -> Path:
    """An axlearn tensorstore step dir: zarr v2 (zstd) under gda/<path>/ and, last, the index file."""
    index = [["step", 100]]
    for path, array in {**arrays, "learner/optimizer/0/mu/x": np.zeros(3, np.float32),
                        "prng_key": np.zeros(2, np.uint32)}.items():
        spec = {"driver": "zarr", "kvstore": {"driver": "file", "path": str(step_dir / "gda" / path)},
                "metadata": {"compressor": {"id": "zstd", "level": 1}}}
        store = ts.open(spec, create=True, dtype=ts.dtype(array.dtype.name), shape=array.shape).result()
        store.write(array).result()
        index.append([path, {"dtype": array.dtype.name, "shape": str(tuple(array.shape))}])
    index.append(["input_iter", "<class 'tf.data.Iterator'>"])
    if commit:
        (step_dir / "index").write_text(json.dumps(index))
    return step_dir


def write_dump(path: Path, entries: dict[str, object]) -> Path:
    path.write_text("".join(f"{k}: {v!r}\n" for k, v in sorted(entries.items())))
    return path


def layer_dump(prefix: str, kind: str, *, qkv: str, window: int = 6, feat: str = "softmax", theta=None) -> dict:
    """The dump lines of one TransformerLayer config at `prefix`."""
    a = f"{prefix}.self_attention.attention"
    d = {f"{prefix}.klass": "axlearn.common.attention.TransformerLayer",
         f"{prefix}.feed_forward.activation[0]": "nn.silu", f"{prefix}.feed_forward.activation[1]": "linear",
         f"{a}.num_heads": H, f"{a}.causal": True, f"{a}.query_scale.klass": "axlearn.common.attention.ScaleQuery"}
    for sub in ("self_attention", "feed_forward"):
        d.update({f"{prefix}.{sub}.norm.eps": EPS, f"{prefix}.{sub}.norm.klass": "axlearn.common.layers.RMSNorm",
                  f"{prefix}.{sub}.structure": "prenorm"})
    if kind == "global":
        d.update({f"{a}.klass": "axlearn.common.flash_attention.layer.FlashAttention",
                  f"{a}.input_linear.klass": "axlearn.common.attention.RoFormerQKVLinear",
                  f"{a}.input_linear.input_linear.klass": f"axlearn.common.attention.{qkv}",
                  f"{a}.input_linear.rotary_value": False})
        if theta is not None:
            d[f"{a}.input_linear.rope_pos_emb_layer.theta"] = theta
        return d
    d.update({f"{a}.klass": RATT, f"{a}.sliding_window_size": window, f"{a}.input_linear.klass": f"axlearn.common.attention.{qkv}"})
    if theta is not None:
        d[f"{a}.rope_theta"] = theta
    if kind == "rattention":
        d.update({f"{a}.residual_la.klass": "axlearn.common.rattention.rattention.ResidualLinearAttention",
                  f"{a}.residual_la.feat_fn": f"<FeatureMap.{feat.upper()}: '{feat}'>"})
    else:
        d[f"{a}.residual_la"] = None
    return d


def random_layer(rng, kind: str, *, qkv: str, heads: int = H, kv_heads: int = HKV, extras: bool = True) -> dict:
    """One layer's axlearn parameters (paths relative to the layer)."""
    def w(*shape, scale=0.3):
        return (scale * rng.standard_normal(shape)).astype(np.float32)

    root = f"{ATT}/i_proj/i_proj" if kind == "global" else f"{ATT}/i_proj"
    p = {"self_attention/norm/scale": 1 + w(D, scale=0.1), "feed_forward/norm/scale": 1 + w(D, scale=0.1),
         "feed_forward/linear1_0/weight": w(D, F), "feed_forward/linear1_1/weight": w(D, F),
         "feed_forward/linear2/weight": w(F, D), f"{ATT}/o_proj/weight": w(D, heads, DH)}
    if qkv == "FusedQKVLinear":
        p[f"{root}/qkv_proj/weight"] = w(3, D, heads, DH)
    elif qkv == "FusedGroupedQKVLinear":
        p[f"{root}/qkv_proj/weight"] = w(D, heads + 2 * kv_heads, DH)
    else:
        p.update({f"{root}/q_proj/weight": w(D, heads, DH), f"{root}/k_proj/weight": w(D, kv_heads, DH),
                  f"{root}/v_proj/weight": w(D, kv_heads, DH)})
    if kind == "rattention":
        p.update({f"{ATT}/swa_norm/scale": 1 + w(heads, DH, scale=0.1), f"{ATT}/rla_norm/scale": 1 + w(heads, DH, scale=0.1)})
        if extras:
            p.update({f"{ATT}/residual_la/q_scale": 1 + w(DH, scale=0.2), f"{ATT}/residual_la/k_scale": 1 + w(DH, scale=0.2),
                      f"{ATT}/residual_la/k_tokens": w(heads, 128, DH, scale=1.0), f"{ATT}/residual_la/v_tokens": w(heads, 128, DH, scale=0.05)})
    return p


# ------------------------------------------------------------------------------------ reference forward
def rms(x, scale, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * scale


def axlearn_rope(x, theta):
    """x [T, N, Dh]: axlearn's RoFormer sin/cos (concatenated halves) applied to interleaved pairs (angles in
    float64: the exact values the project's RoPE reproduces at any position)."""
    dh = x.shape[-1]
    enc = np.arange(x.shape[0], dtype=np.float64)[:, None] / np.power(theta, 2 * np.arange(dh // 2, dtype=np.float64) / dh)
    sin, cos = np.repeat(np.sin(enc), 2, axis=-1)[:, None], np.repeat(np.cos(enc), 2, axis=-1)[:, None]
    rotated = np.stack([-x[..., 1::2], x[..., ::2]], axis=-1).reshape(x.shape)
    return x * cos + rotated * sin


def phi(x, feat):
    if feat == "relu":
        return np.concatenate([np.maximum(x, 0), np.maximum(-x, 0)], axis=-1)
    def sm(y):
        e = np.exp(y - y.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)
    return np.concatenate([sm(x), sm(-x)], axis=-1)


def softmax(x, mask):
    x = np.where(mask, x, -np.inf)
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def group_norm(o, scale):
    return o / np.sqrt(np.mean(o * o, axis=-1, keepdims=True) + 1e-8) * scale


def ref_attention(p, kind, x, *, heads, window, feat, theta):
    root = f"{ATT}/i_proj/i_proj" if kind == "global" else f"{ATT}/i_proj"
    proj = lambda w: np.einsum("td,dnh->tnh", x, w)
    if f"{root}/qkv_proj/weight" in p:
        w = p[f"{root}/qkv_proj/weight"]
        if w.ndim == 4:
            q, k, v = (proj(w[i]) for i in range(3))
        else:
            kv = (w.shape[1] - heads) // 2
            q, k, v = np.split(proj(w), [heads, heads + kv], axis=1)
    else:
        q, k, v = (proj(p[f"{root}/{n}_proj/weight"]) for n in "qkv")
    group = heads // k.shape[1]
    rep = lambda z: np.repeat(z, group, axis=1)
    t, s = np.arange(len(x))[:, None], np.arange(len(x))[None, :]
    logits = np.einsum("tnh,snh->nts", axlearn_rope(q, theta) / np.sqrt(DH), rep(axlearn_rope(k, theta)))
    visible = (s <= t) if kind == "global" else (s <= t) & (t - s <= window)
    ctx = np.einsum("nts,snh->tnh", softmax(logits, visible), rep(v))
    if kind == "rattention":
        la = f"{ATT}/residual_la"
        qs, ks = (q * p[f"{la}/q_scale"], k * p[f"{la}/k_scale"]) if f"{la}/q_scale" in p else (q, k)
        fq, fk = phi(qs, feat), rep(phi(ks, feat))
        scores = np.einsum("tnk,snk->nts", fq, fk) * (s <= t - window - 1)
        rla = np.einsum("nts,snh->tnh", scores, rep(v))
        if f"{la}/k_tokens" in p:
            h0 = np.einsum("nlk,nlv->nkv", phi(p[f"{la}/k_tokens"], feat), p[f"{la}/v_tokens"])
            rla = rla + np.einsum("tnk,nkv->tnv", fq, h0)
        ctx = group_norm(ctx, p[f"{ATT}/swa_norm/scale"]) + group_norm(rla, p[f"{ATT}/rla_norm/scale"])
    return np.einsum("tnh,dnh->td", ctx, p[f"{ATT}/o_proj/weight"])


def ref_logits(top, layers, tokens):
    """top: decoder arrays; layers: [(per-layer arrays, kind, facts)] -> logits [T, V] (float64)."""
    emb = top["model/decoder/emb/token_emb/weight"].astype(np.float64)
    x = emb[tokens]
    for p, kind, facts in layers:
        p = {k: v.astype(np.float64) for k, v in p.items()}
        x = x + ref_attention(p, kind, rms(x, p["self_attention/norm/scale"], EPS), heads=H, **facts)
        h = rms(x, p["feed_forward/norm/scale"], EPS)
        silu = lambda z: z / (1 + np.exp(-z))
        x = x + (silu(h @ p["feed_forward/linear1_0/weight"]) * (h @ p["feed_forward/linear1_1/weight"])) @ p["feed_forward/linear2/weight"]
    x = rms(x, top["model/decoder/output_norm/scale"], EPS)
    head = top.get("model/decoder/lm_head/weight", top["model/decoder/emb/token_emb/weight"])
    return x @ head.astype(np.float64).T


# ------------------------------------------------------------------------------------------ the layouts
def top_arrays(rng, tied: bool) -> dict:
    top = {"model/decoder/emb/token_emb/weight": (0.5 * rng.standard_normal((V, D))).astype(np.float32),
           "model/decoder/output_norm/scale": (1 + 0.1 * rng.standard_normal(D)).astype(np.float32)}
    if not tied:
        top["model/decoder/lm_head/weight"] = (0.3 * rng.standard_normal((V, D))).astype(np.float32)
    return top


def base_dump(transformer_klass: str) -> dict:
    return {"model.decoder.klass": "axlearn.common.decoder.Decoder", "model.decoder.dim": D,
            "model.decoder.vocab_size": V, "model.decoder.eos_token_id": 257, "model.decoder.output_norm.eps": EPS,
            "model.decoder.output_norm.klass": "axlearn.common.layers.RMSNorm", "model.decoder.transformer.klass":
            f"axlearn.common.attention.{transformer_klass}", "input.source.max_sequence_length": 64}


T_ = "model/decoder/transformer"
C_ = "model.decoder.transformer"


def layout_repeat_stack(rng):
    """RepeatedTransformerLayer of a 2-layer stack [rattention, global], FusedGroupedQKV, tied, two thetas."""
    kinds, reps = ["rattention", "global"], 2
    per = [[random_layer(rng, kind, qkv="FusedGroupedQKVLinear") for kind in kinds] for _ in range(reps)]
    arrays = top_arrays(rng, tied=True)
    for j in range(2):
        for rel in per[0][j]:
            arrays[f"{T_}/repeat/layer/layer{j}/{rel}"] = np.stack([per[r][j][rel] for r in range(reps)])
    dump = base_dump("RepeatedTransformerLayer") | {f"{C_}.layer.klass": "axlearn.common.attention.StackedTransformerLayer"}
    dump |= layer_dump(f"{C_}.layer.layer[0]", "rattention", qkv="FusedGroupedQKVLinear")
    dump |= layer_dump(f"{C_}.layer.layer[1]", "global", qkv="FusedGroupedQKVLinear")
    facts = [dict(window=6, feat="softmax", theta=500000.0), dict(window=None, feat=None, theta=10000.0)]
    layers = [(per[r][j], kinds[j], facts[j]) for r in range(reps) for j in range(2)]
    return arrays, dump, layers


def layout_listed_separate(rng):
    """StackedTransformerLayer [rattention, swa, global] with separate q/k/v, untied head, relu, one theta."""
    kinds = ["rattention", "swa", "global"]
    per = [random_layer(rng, kind, qkv="QKVLinear") for kind in kinds]
    arrays = top_arrays(rng, tied=False)
    for i, p in enumerate(per):
        arrays.update({f"{T_}/layer{i}/{rel}": a for rel, a in p.items()})
    dump = base_dump("StackedTransformerLayer")
    for i, kind in enumerate(kinds):
        dump |= layer_dump(f"{C_}.layer[{i}]", kind, qkv="GroupedQKVLinear", feat="relu", theta=20000.0)
    layers = [(p, kind, dict(window=6, feat="relu", theta=20000.0)) for p, kind in zip(per, kinds)]
    return arrays, dump, layers


def layout_repeat_fused(rng, *, window=4):
    """RepeatedTransformerLayer of 3 rattention layers, FusedQKV (H == Hkv), no learned extras."""
    per = [random_layer(rng, "rattention", qkv="FusedQKVLinear", kv_heads=H, extras=False) for _ in range(3)]
    arrays = top_arrays(rng, tied=True)
    arrays.update({f"{T_}/repeat/layer/{rel}": np.stack([p[rel] for p in per]) for rel in per[0]})
    dump = base_dump("RepeatedTransformerLayer") | layer_dump(f"{C_}.layer", "rattention", qkv="FusedQKVLinear", window=window)
    return arrays, dump, [(p, "rattention", dict(window=window, feat="softmax", theta=500000.0)) for p in per]


LAYOUTS = {"repeat-stack-fusedgrouped": layout_repeat_stack, "listed-separate": layout_listed_separate,
           "repeat-fusedqkv": layout_repeat_fused}


def make_source(tmp_path, layout, rng_seed=0, *, edit_arrays=None, edit_dump=None, commit=True):
    arrays, dump, layers = LAYOUTS[layout](np.random.default_rng(rng_seed))
    if edit_arrays:
        edit_arrays(arrays)
    if edit_dump:
        edit_dump(dump)
    step = write_step(tmp_path / "trainer" / "checkpoints" / "step_00000100", arrays, commit=commit)
    return step, write_dump(tmp_path / "trainer_config.txt", dump), arrays, layers


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_logits_match_axlearn_reference(tmp_path, layout):
    step, dump, arrays, layers = make_source(tmp_path, layout)
    out = convert_axlearn(step, dump, "byte", tmp_path / "native")
    model, tokenizer = model_adapters.load(out)
    tokens = np.random.default_rng(1).integers(0, V, size=T)
    got = np.asarray(model(jnp.asarray(tokens)[None]))[0]
    want = ref_logits(arrays, layers, tokens)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-5)  # float32 through 4 layers; RoPE angles differ by ~1e-6
    config = json.loads((out / "config.json").read_text())
    assert config["train_context"] == 64 and config["eos_id"] == 257 and config["bos_id"] == 256
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".native")]  # no temp dir left


def test_config_facts(tmp_path):
    step, dump, _, _ = make_source(tmp_path, "repeat-stack-fusedgrouped")
    c = model_adapters.load_config(convert_axlearn(step, dump, "byte", tmp_path / "a"))
    assert (c.layer_pattern, c.num_layers, c.window) == (("rattention", "global"), 4, 6)
    assert (c.rope_theta, c.global_rope_theta, c.rope_style, c.norm_eps) == (500000.0, 10000.0, "interleaved", EPS)
    assert c.learned_qk_scale and c.learned_initial_state and c.tie_embeddings and (c.num_heads, c.num_kv_heads) == (H, HKV)
    step, dump, _, _ = make_source(tmp_path / "b", "listed-separate")
    c = model_adapters.load_config(convert_axlearn(step, dump, "byte", tmp_path / "b" / "out"))
    assert (c.layer_pattern, c.feature_map, c.tie_embeddings, c.global_rope_theta) == (("rattention", "swa", "global"), "relu", False, None)


def test_bfloat16_checkpoint_loads_as_bfloat16(tmp_path):
    def to_bf16(arrays):
        for k in arrays:
            arrays[k] = arrays[k].astype(ml_dtypes.bfloat16)
    step, dump, arrays, layers = make_source(tmp_path, "repeat-fusedqkv", edit_arrays=to_bf16)
    model, _ = model_adapters.load(convert_axlearn(step, dump, "byte", tmp_path / "native"))
    assert model.config.param_dtype == "bfloat16" and model.embed.embedding[...].dtype == jnp.bfloat16
    tokens = np.arange(T) % V
    rounded = [({k: v.astype(ml_dtypes.bfloat16).astype(np.float32) for k, v in p.items()}, kind, f) for p, kind, f in layers]
    want = ref_logits(arrays, rounded, tokens)  # the bf16 weights, float32 compute
    np.testing.assert_allclose(np.asarray(model(jnp.asarray(tokens)[None]))[0], want, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------- refusals
A0 = f"{T_}/repeat/layer/{ATT}"
CA = f"{C_}.layer.self_attention.attention"


def _set(key, value):
    return lambda d: d.__setitem__(key, value)


REFUSALS = {
    "bias": (dict(edit_arrays=_set(f"{A0}/o_proj/bias", np.zeros((3, D), np.float32))), f"{A0}/o_proj/bias"),
    "per-dim-scale-param": (dict(edit_arrays=_set(f"{A0}/scale_query/per_dim_scale/param", np.zeros((3, DH), np.float32))),
                            f"{A0}/scale_query/per_dim_scale/param"),
    "qk-norm": (dict(edit_arrays=_set(f"{A0}/i_proj/q_norm/scale", np.ones((3, DH), np.float32))), f"{A0}/i_proj/q_norm/scale"),
    "pos-emb": (dict(edit_arrays=_set("model/decoder/emb/pos_emb/weight", np.ones((64, D), np.float32))), "model/decoder/emb/pos_emb/weight"),
    "per-dim-scale-config": (dict(edit_dump=_set(f"{CA}.query_scale.per_dim_scale.klass", "axlearn.common.attention.PerDimScale")),
                             f"{CA}.query_scale.per_dim_scale"),
    "no-window": (dict(edit_dump=_set(f"{CA}.sliding_window_size", -1)), f"{CA}.sliding_window_size"),
    "logit-cap": (dict(edit_dump=_set(f"{CA}.atten_logit_cap", 50.0)), f"{CA}.atten_logit_cap"),
    "post-norm": (dict(edit_dump=_set(f"{C_}.layer.feed_forward.structure", "hybridnorm")), f"{C_}.layer.feed_forward.structure"),
    "non-gated-mlp": (dict(edit_dump=_set(f"{C_}.layer.feed_forward.activation[0]", "nn.gelu")), f"{C_}.layer.feed_forward.activation"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refusals_name_the_path(tmp_path, case):
    edits, path = REFUSALS[case]
    step, dump, _, _ = make_source(tmp_path, "repeat-fusedqkv", **edits)
    with pytest.raises(UserError) as err:
        convert_axlearn(step, dump, "byte", tmp_path / "native")
    assert path in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "native").exists()


def test_refuses_value_rope_on_global_layers(tmp_path):
    key = f"{C_}.layer.layer[1].self_attention.attention.input_linear.rotary_value"
    step, dump, _, _ = make_source(tmp_path, "repeat-stack-fusedgrouped", edit_dump=_set(key, True))
    with pytest.raises(UserError, match=key.replace("[", r"\[").replace("]", r"\]")):
        convert_axlearn(step, dump, "byte", tmp_path / "native")


def test_shape_mismatch_names_the_tensor(tmp_path):
    bad = "model/decoder/lm_head/weight"
    step, dump, _, _ = make_source(tmp_path, "listed-separate", edit_arrays=_set(bad, np.zeros((V, D + 1), np.float32)))
    with pytest.raises(UserError, match=bad):
        convert_axlearn(step, dump, "byte", tmp_path / "native")


def test_uncommitted_checkpoint_exits_2_and_writes_nothing(tmp_path, capsys):
    step, dump, _, _ = make_source(tmp_path, "repeat-fusedqkv", commit=False)
    out = tmp_path / "native"
    with pytest.raises(SystemExit) as exit_:
        convert_main(["axlearn", "--checkpoint", str(step), "--config", str(dump), "--tokenizer", "byte", "--out", str(out)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "no index file" in err and len(err.splitlines()) == 1
    assert sorted(os.listdir(tmp_path)) == ["trainer", "trainer_config.txt"]


def test_cli_converts_and_refuses_existing_out(tmp_path, capsys):
    step, dump, _, _ = make_source(tmp_path, "repeat-fusedqkv")
    source = ["axlearn", "--checkpoint", str(step), "--config", str(dump)]
    argv = [*source, "--tokenizer", "byte", "--out", str(tmp_path / "n")]
    assert convert_main(argv) == 0
    with pytest.raises(SystemExit) as exit_:
        convert_main(argv)
    assert exit_.value.code == 2 and "--overwrite" in capsys.readouterr().err
    assert convert_main([*argv, "--overwrite"]) == 0
    with pytest.raises(SystemExit) as exit_:
        convert_main([*source, "--tokenizer", str(tmp_path / "missing.model"), "--out", str(tmp_path / "m")])
    assert exit_.value.code == 2 and not (tmp_path / "m").exists()
