"""config.json validation: each bad field is a UserError naming it."""

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from model_adapters.checkpoint import load
from model_adapters.config import config_from_dict, resolve_compute_dtype
from runners.init import init_checkpoint
from model_adapters.presets import PRESETS
from common.errors import UserError

GOOD = PRESETS["tiny-rattention"]


@pytest.mark.parametrize(
    "change, field",
    [
        ({"window": -1}, "window"),
        ({"num_kv_heads": 3}, "num_kv_heads"),
        ({"layer_pattern": ["rattention", "mamba"]}, "layer_pattern"),
        ({"feature_map": "elu"}, "feature_map"),
        ({"head_dim": 7}, "head_dim"),
        ({"tie_embeddings": "yes"}, "tie_embeddings"),
        ({"eos_id": 9999}, "eos_id"),
        ({"param_dtype": "float8"}, "param_dtype"),
    ],
    ids=lambda x: next(iter(x)) if isinstance(x, dict) else x,
)
def test_bad_value_names_the_field(change, field):
    with pytest.raises(UserError, match=f"'{field}'"):
        config_from_dict({**GOOD, **change})


def test_missing_field_is_named():
    raw = dict(GOOD)
    del raw["d_model"]
    with pytest.raises(UserError, match="missing required field 'd_model'"):
        config_from_dict(raw)


def test_layer_pattern_cycles():
    config = config_from_dict({**GOOD, "num_layers": 5, "layer_pattern": ["rattention", "rattention", "global"]})
    assert config.layer_kinds == ("rattention", "rattention", "global", "rattention", "rattention")


@pytest.mark.parametrize("requested,stored,backend,expected", [
    ("auto", "float32", "cpu", "float32"),
    ("auto", "float32", "gpu", "bfloat16"),
    ("auto", "float32", "tpu", "bfloat16"),
    ("auto", "float16", "gpu", "float16"),
    ("float32", "float32", "gpu", "float32"),
    ("bfloat16", "float32", "cpu", "bfloat16"),
])
def test_compute_dtype_auto_is_bfloat16_on_accelerators_only(requested, stored, backend, expected):
    assert resolve_compute_dtype(requested, stored, backend) == expected


def test_load_runs_in_the_requested_compute_dtype_with_params_unchanged(tmp_path):
    ckpt = init_checkpoint("tiny-rattention", str(tmp_path / "ck"), seed=1)
    stored, _ = load(ckpt)
    bf16, _ = load(ckpt, compute_dtype="bfloat16")
    assert (stored.config.compute_dtype, bf16.config.compute_dtype) == ("float32", "bfloat16")
    assert bf16.blocks[0].attn.q_proj.dtype == jnp.bfloat16
    same = jax.tree.map(lambda a, b: bool((a == b).all()), nnx.to_pure_dict(nnx.state(stored, nnx.Param)),
                        nnx.to_pure_dict(nnx.state(bf16, nnx.Param)))
    assert all(jax.tree.leaves(same))
