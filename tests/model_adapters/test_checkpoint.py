"""save -> load round trip and each bad-checkpoint case's one-line error."""

import json
import shutil
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from model_adapters.checkpoint import load, save
from model_adapters.config import config_from_dict
from model_adapters.presets import PRESETS
from common.errors import UserError
from tests.model_adapters.tiny_models import full_logits, perturbed_model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model = perturbed_model("tiny-full")
    return model, save(model, tmp_path_factory.mktemp("ckpt") / "tiny-full")


def test_save_then_load_gives_identical_logits(saved):
    model, path = saved
    loaded, tokenizer = load(path)
    assert loaded.config == model.config
    tokens = jnp.asarray([tokenizer.encode("a checkpoint round trip")], jnp.int32)
    before = full_logits(*nnx.split(model), tokens)
    after = full_logits(*nnx.split(loaded), tokens)
    np.testing.assert_array_equal(np.asarray(before), np.asarray(after))


def _edit_config(path: Path, **changes):
    cfg = json.loads((path / "config.json").read_text())
    cfg.update(changes)
    (path / "config.json").write_text(json.dumps(cfg))


def _corrupt_params(path: Path):
    for f in (path / "params").rglob("*"):
        if f.is_file():
            f.write_bytes(b"garbage")


BAD_CASES = {
    "not-a-directory": (lambda p: shutil.rmtree(p) or p.write_text("x"), "not a directory"),
    "no-config": (lambda p: (p / "config.json").unlink(), "no config.json"),
    "unknown-field": (lambda p: _edit_config(p, n_layerz=3), "unknown field 'n_layerz'"),
    "bad-value": (lambda p: _edit_config(p, rope_style="spiral"), "field 'rope_style'"),
    "shape-mismatch": (lambda p: _edit_config(p, d_model=48), "has shape"),
    "missing-layer": (lambda p: _edit_config(p, num_layers=3), "parameter blocks/2"),
    "missing-tokenizer": (
        lambda p: _edit_config(p, tokenizer={"type": "sentencepiece", "file": "tok.model"}), "tokenizer file missing"
    ),
    "missing-params": (lambda p: shutil.rmtree(p / "params"), "params: missing"),
    "corrupt-params": (_corrupt_params, "content differs from its hash in manifest.json"),
    "corrupt-params-unverified": (_corrupt_params, "not a readable orbax checkpoint"),
    "params-file-missing": (lambda p: next(f for f in sorted((p / "params").rglob("*")) if f.is_file()).unlink(),
                            "listed in manifest.json"),
}


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_checkpoint_gives_one_line_error(saved, tmp_path, case, capfd):
    breaker, expected = BAD_CASES[case]
    path = tmp_path / "ckpt"
    shutil.copytree(saved[1], path)
    breaker(path)
    with pytest.raises(UserError) as err:
        load(path, verify=not case.endswith("unverified"))
    message = str(err.value)
    assert expected in message and "\n" not in message, message
    assert "Traceback" not in capfd.readouterr().err, "orbax noise on stderr"


def test_save_writes_a_manifest_of_every_params_file(saved):
    manifest = json.loads((saved[1] / "manifest.json").read_text())
    files = {f"params/{f.relative_to(saved[1] / 'params').as_posix()}" for f in (saved[1] / "params").rglob("*") if f.is_file()}
    assert set(manifest["files"]) == files and all(len(h) == 64 for h in manifest["files"].values())


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_presets_are_valid_configs(preset):
    config = config_from_dict(PRESETS[preset])
    assert config_from_dict(config.to_dict()) == config
    assert len(config.layer_kinds) == config.num_layers


def test_model_fingerprint_names_the_model_not_its_training_records(saved, tmp_path):
    from model_adapters.checkpoint import MANIFEST, model_fingerprint

    ckpt = Path(shutil.copytree(saved[1], tmp_path / "ckpt"))
    before = model_fingerprint(ckpt)
    (ckpt / "training.json").write_text('{"note": "edited"}')  # provenance beside the model
    (ckpt / "train_log.jsonl").write_text('{"step": 1}\n')
    (ckpt / "train_state").mkdir()
    (ckpt / "train_state" / "0").write_bytes(b"optimizer state")
    assert model_fingerprint(ckpt) == before

    def changed(edit) -> str:
        other = Path(shutil.copytree(saved[1], tmp_path / f"other-{len(list(tmp_path.iterdir()))}"))
        edit(other)
        return model_fingerprint(other)

    assert changed(lambda p: _edit_config(p, norm_eps=1e-3)) != before  # the config
    manifest = json.loads((ckpt / MANIFEST).read_text())
    name = sorted(manifest["files"])[0]

    def new_params(p: Path):  # re-saved parameters: new bytes and a new manifest
        m = json.loads((p / MANIFEST).read_text())
        m["files"][name] = "0" * 64
        (p / MANIFEST).write_text(json.dumps(m))

    assert changed(new_params) != before

    def no_manifest_new_bytes(p: Path):  # without a manifest the parameter bytes themselves count
        (p / MANIFEST).unlink()
        first = model_fingerprint(p)
        (p / name).write_bytes((p / name).read_bytes() + b"\0")
        assert model_fingerprint(p) != first

    changed(no_manifest_new_bytes)
