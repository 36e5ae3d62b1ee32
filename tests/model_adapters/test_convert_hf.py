"""Hugging Face -> native conversion against golden logits made once by transformers (float32).

The fixtures under tests/fixtures/hf/<family>/ and the script that made them (make_goldens.py) are
committed; these tests need neither torch nor transformers.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
from safetensors import safe_open
from safetensors.flax import save_file as save_flax
from safetensors.numpy import save_file

import model_adapters
from common.errors import UserError
from model_adapters.convert.__main__ import main as convert_main
from model_adapters.convert.hf import convert_hf
from model_adapters.tokenizers import load_tokenizer

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "hf"
FAMILIES = ("llama", "llama3", "mistral", "qwen2")


def logits(ckpt, ids):
    model, _ = model_adapters.load(ckpt)
    return np.asarray(model(jnp.asarray(ids)[None]))[0], model


@pytest.mark.parametrize("family", FAMILIES)
def test_logits_match_transformers_goldens(tmp_path, family):
    out = convert_hf(FIXTURES / family, tmp_path / "native")
    got, _ = logits(out, np.load(FIXTURES / family / "golden_input_ids.npy"))
    # float32 against float32: logits reach ~7, the largest difference seen is 1.4e-5 (summation order)
    np.testing.assert_allclose(got, np.load(FIXTURES / family / "golden_logits.npy"), rtol=1e-5, atol=3e-5)


def test_config_facts(tmp_path):
    load = lambda fam: model_adapters.load_config(convert_hf(FIXTURES / fam, tmp_path / fam))
    llama, mistral, qwen = load("llama"), load("mistral"), load("qwen2")
    assert (llama.rope_style, llama.rope_theta, llama.tie_embeddings, llama.layer_pattern) == ("half", 50000.0, False, ("global",))
    assert (llama.num_heads, llama.num_kv_heads, llama.head_dim, llama.bos_id, llama.eos_id) == (4, 2, 8, 1, 2)
    assert (mistral.layer_pattern, mistral.window, mistral.head_dim, mistral.tie_embeddings) == (("swa",), 7, 16, True)
    assert (qwen.layer_pattern, qwen.window, qwen.qkv_bias, qwen.bos_id, qwen.eos_id) == (("global", "swa", "swa"), 5, True, None, 4)


def test_llama3_rope_scaling_in_transformers_4_layout(tmp_path):
    """Checkpoints saved before transformers 5 keep rope_theta and rope_scaling at the top level."""
    src = copy_fixture(tmp_path, "llama3")
    config = json.loads((src / "config.json").read_text())
    params = config.pop("rope_parameters")
    config.update(rope_theta=params.pop("rope_theta"), rope_scaling=params)
    (src / "config.json").write_text(json.dumps(config))
    out = convert_hf(src, tmp_path / "native")
    scaling = model_adapters.load_config(out).rope_scaling
    assert (scaling.factor, scaling.low_freq_factor, scaling.high_freq_factor, scaling.original_context) == (8.0, 1.0, 4.0, 64)
    got, _ = logits(out, np.load(src / "golden_input_ids.npy"))
    np.testing.assert_allclose(got, np.load(src / "golden_logits.npy"), rtol=1e-5, atol=3e-5)


def copy_fixture(tmp_path, family) -> Path:
    return Path(shutil.copytree(FIXTURES / family, tmp_path / f"src-{family}"))


def edit_json(path: Path, **changes):
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def tensors(src: Path) -> dict[str, np.ndarray]:
    out = {}
    for file in sorted(src.glob("*.safetensors")):
        with safe_open(str(file), framework="numpy") as f:
            out.update({k: f.get_tensor(k) for k in f.keys()})
    return out


def test_bfloat16_single_file_loads_as_bfloat16(tmp_path):
    """Shards merged into one bf16 model.safetensors: params stay bf16, exactly the rounded float32 ones."""
    src = copy_fixture(tmp_path, "llama")
    weights = tensors(src)
    for file in [*src.glob("*.safetensors"), src / "model.safetensors.index.json"]:
        file.unlink()
    save_flax({k: jnp.asarray(v, jnp.bfloat16) for k, v in weights.items()}, str(src / "model.safetensors"))
    got, model = logits(convert_hf(src, tmp_path / "bf16"), np.load(src / "golden_input_ids.npy"))
    assert model.config.param_dtype == "bfloat16" and model.embed.embedding[...].dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(model.embed.embedding[...]), weights["model.embed_tokens.weight"].astype(ml_dtypes.bfloat16))
    np.testing.assert_allclose(got, np.load(src / "golden_logits.npy"), atol=0.25)


def test_without_tokenizer_config_uses_config_ids(tmp_path):
    src = copy_fixture(tmp_path, "mistral")
    (src / "tokenizer_config.json").unlink()
    config = model_adapters.load_config(convert_hf(src, tmp_path / "n"))
    assert (config.bos_id, config.eos_id) == (1, 2)


def _break(kind):
    def rope_scaling(src):
        edit_json(src / "config.json", rope_parameters={"rope_type": "yarn", "rope_theta": 5e5, "factor": 8.0})

    def architecture(src):
        edit_json(src / "config.json", architectures=["GPT2LMHeadModel"])

    def kv_heads(src):
        edit_json(src / "config.json", num_key_value_heads=4)

    def o_bias(src):
        weights = tensors(src)
        weights["model.layers.0.self_attn.o_proj.bias"] = np.zeros(32, np.float32)
        for file in src.glob("*.safetensors"):
            file.unlink()
        save_file(weights, str(src / "model.safetensors"))

    return {"rope_scaling": rope_scaling, "architecture": architecture, "kv_heads": kv_heads, "o_bias": o_bias,
            "no_tokenizer": lambda src: (src / "tokenizer.json").unlink(),
            "missing_shard": lambda src: (src / "model-00002-of-00003.safetensors").unlink()}[kind]


BAD = {
    "rope_scaling": ("llama", "rope_parameters: RoPE scaling 'yarn' is not supported"),
    "architecture": ("llama", "architecture 'GPT2LMHeadModel' is not supported"),
    "kv_heads": ("llama", "model.layers.0.self_attn.k_proj.weight: shape (32, 16)"),
    "o_bias": ("mistral", "model.layers.0.self_attn.o_proj.bias"),
    "no_tokenizer": ("qwen2", "no tokenizer.json"),
    "missing_shard": ("llama", "model-00002-of-00003.safetensors: missing shard"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, case):
    family, message = BAD[case]
    src = copy_fixture(tmp_path, family)
    _break(case)(src)
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        convert_hf(src, tmp_path / "out")
    with pytest.raises(SystemExit) as exit_:
        convert_main(["hf", str(src), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and message in err and len(err.splitlines()) == 1
    assert sorted(os.listdir(tmp_path)) == [src.name]


# tokenizer_config.json chat templates -> format strings (written out by hand from each fixture's template)
CONVERTED_TEMPLATES = {
    "llama3": "<s><|start_header_id|>user<|end_header_id|>\n\n{task_template}<|eot_id|>"
              "<|start_header_id|>assistant<|end_header_id|>\n\n",
    "mistral": "<s>[INST] {task_template} [/INST]",
    "qwen2": "<|im_start|>user\n{task_template}<|im_end|>\n<|im_start|>assistant\n",
}


@pytest.mark.parametrize("family", sorted(CONVERTED_TEMPLATES))
def test_chat_template_is_converted_and_evaluation_uses_it_with_one_bos(tmp_path, family):
    from model_adapters.generation import prompt_ids
    from runners.eval_ruler import parse_args
    from ruler_tasks.chat_templates import resolve_chat_template

    out = convert_hf(FIXTURES / family, tmp_path / "n")
    config = model_adapters.load_config(out)
    assert config.tokenizer.chat_template == CONVERTED_TEMPLATES[family]
    args = ["--checkpoint", str(out), "--lengths", "256", "--run", str(tmp_path / "run")]
    assert parse_args(args).chat_template == CONVERTED_TEMPLATES[family]  # the default: the checkpoint's own
    assert parse_args([*args, "--chat-template", "base"]).chat_template == "base"
    ids = prompt_ids(config, load_tokenizer(out), resolve_chat_template(config.tokenizer.chat_template).wrap("hello"))
    if config.bos_id is None:  # qwen2: no BOS at all
        assert family == "qwen2"
    else:  # the template writes BOS; the predictor does not add a second
        assert ids[0] == config.bos_id and ids[1] != config.bos_id and ids.count(config.bos_id) == 1


def test_chat_template_jinja_file_and_named_templates(tmp_path):
    src = copy_fixture(tmp_path, "qwen2")
    edit_json(src / "tokenizer_config.json", chat_template=[
        {"name": "tool_use", "template": "TOOLS {{ messages[0]['content'] }}"},
        {"name": "default", "template": "<u>{{ messages[0]['content'] }}</u>{% if add_generation_prompt %}<a>{% endif %}"}])
    assert model_adapters.load_config(convert_hf(src, tmp_path / "a")).tokenizer.chat_template == "<u>{task_template}</u><a>"
    (src / "chat_template.jinja").write_text("{% for m in messages %}[{{ m.role }}] {{ m.content }}{% endfor %}\n")
    converted = model_adapters.load_config(convert_hf(src, tmp_path / "b")).tokenizer.chat_template
    assert converted == "[user] {task_template}"  # the file wins; Jinja drops one trailing newline, as in transformers


SANDBOXED = {  # templates left out with a warning: nothing from them runs outside jinja2's sandbox
    "escape": ("{{ messages.__class__.__mro__[1].__subclasses__() }}{{ messages[0]['content'] }}", "does not render"),
    "mutate": ("{% set _ = messages.append({'role': 'user', 'content': 'x'}) %}{{ messages[0]['content'] }}",
               "does not render"),
    "raises": ("{{ raise_exception('only system roles') }}", "only system roles"),
    "no_message": ("<s>hello", "does not place the user message exactly once"),
    "twice": ("{{ messages[0]['content'] }}{{ messages[0]['content'] }}", "does not place the user message exactly once"),
}


@pytest.mark.parametrize("case", sorted(SANDBOXED))
def test_a_template_that_does_not_render_in_the_sandbox_is_left_out_with_a_warning(tmp_path, caplog, case):
    template, message = SANDBOXED[case]
    src = copy_fixture(tmp_path, "qwen2")
    edit_json(src / "tokenizer_config.json", chat_template=template)
    config = model_adapters.load_config(convert_hf(src, tmp_path / "n"))
    assert config.tokenizer.chat_template is None
    [record] = [r for r in caplog.records if r.name == "model_adapters.convert.hf"]
    line = record.getMessage()
    assert record.levelname == "WARNING" and len(line.splitlines()) == 1
    assert "tokenizer_config.json" in line and message in line and "--chat-template" in line


def test_a_config_chat_template_without_one_slot_is_refused(tmp_path):
    out = convert_hf(FIXTURES / "qwen2", tmp_path / "n")
    edit_json(out / "config.json", tokenizer={"type": "hf", "chat_template": "<u>no slot</u>"})
    with pytest.raises(UserError, match="chat_template, if present, is a string with exactly one"):
        model_adapters.load_config(out)


def test_hf_prefix_converts_once_into_a_cache_keyed_by_content(tmp_path, monkeypatch):
    from model_adapters.convert import cached
    from runners.eval_ruler import parse_args

    monkeypatch.setenv(cached.CACHE_ENV, str(tmp_path / "cache"))
    src = copy_fixture(tmp_path, "qwen2")
    cfg = parse_args(["--checkpoint", f"hf:{src}", "--lengths", "256", "--run", str(tmp_path / "run")])
    out = cfg.checkpoint
    assert out.parent == tmp_path / "cache" / "converted" and out.name.startswith("src-qwen2-")
    ids = np.load(FIXTURES / "qwen2" / "golden_input_ids.npy")
    got, _ = logits(out, ids)
    np.testing.assert_allclose(got, np.load(FIXTURES / "qwen2" / "golden_logits.npy"), rtol=1e-5, atol=3e-5)
    assert cfg.chat_template == CONVERTED_TEMPLATES["qwen2"]

    stamp = (out / "config.json").stat().st_mtime_ns
    monkeypatch.setattr("model_adapters.convert.hf.convert_hf", lambda *a, **k: pytest.fail("converted twice"))
    assert cached.resolve_checkpoint(f"hf:{src}") == out and (out / "config.json").stat().st_mtime_ns == stamp
    monkeypatch.undo()
    monkeypatch.setenv(cached.CACHE_ENV, str(tmp_path / "cache"))
    edit_json(src / "config.json", rms_norm_eps=1e-5)  # edited in place: another key, converted again
    again = cached.resolve_checkpoint(f"hf:{src}")
    assert again != out and model_adapters.load_config(again).norm_eps == 1e-5
    assert cached.resolve_checkpoint(str(out)) == out  # a plain directory is taken as given
    edit_json(src / "config.json", rms_norm_eps=1e-4)
    with pytest.raises(UserError, match="not converted yet, and several processes cannot convert it"):
        parse_args(["--checkpoint", f"hf:{src}", "--lengths", "256", "--coordinator", "127.0.0.1:1",
                    "--num-processes", "2", "--process-id", "0"])
    with pytest.raises(UserError, match="is not a directory; pass hf:DIR"):
        cached.resolve_checkpoint(f"hf:{tmp_path / 'nope'}")
