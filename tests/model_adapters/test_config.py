"""config.json validation: each bad field is a UserError naming it."""

import pytest

from model_adapters.config import config_from_dict
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
