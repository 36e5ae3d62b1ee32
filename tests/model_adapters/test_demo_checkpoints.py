"""The shipped demo checkpoints: what they are and the recipe that trained them."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import asdict
from pathlib import Path

import pytest

from model_adapters.checkpoint import load
from model_adapters.presets import preset_config
from model_adapters.tokenizers import ByteTokenizer
from runners.train import parse_args, recipe_with_defaults

ROOT = Path(__file__).resolve().parents[2]
DEMOS = {"rattention-w64": "demo-rattention", "swa-w64": "demo-swa", "full-attention": "demo-full"}
MAX_BYTES = 5 * 2**20


def training(name: str) -> dict:
    return json.loads((ROOT / "checkpoints" / name / "training.json").read_text())


def makefile_recipe() -> str:
    match = re.search(r"^DEMO_RECIPE = (.*)$", (ROOT / "Makefile").read_text(), re.M)
    assert match, "Makefile lost DEMO_RECIPE"
    return match.group(1)


@pytest.mark.parametrize("name", DEMOS)
def test_demo_is_its_preset_trained_by_the_makefile_recipe(name):
    ckpt = ROOT / "checkpoints" / name
    model, tokenizer = load(ckpt)
    assert model.config == preset_config(DEMOS[name]) and isinstance(tokenizer, ByteTokenizer)
    size = sum(f.stat().st_size for f in ckpt.rglob("*") if f.is_file())
    assert size < MAX_BYTES, f"{name} is {size} bytes"
    info = training(name)
    recipe, _ = parse_args(["--preset", DEMOS[name], "--out", str(ckpt), *shlex.split(makefile_recipe())])
    assert recipe_with_defaults(info["recipe"]) == asdict(recipe)  # `make train-demo` reproduces its recipe
    assert info["steps"] == recipe.steps


@pytest.mark.parametrize("name", DEMOS)
def test_training_summary_agrees_with_its_log(name):
    """training.json's final losses are the last logged ones, at the last step, and its wall time covers
    the log's (the log's clock stops at the last logged step, the summary's after the last save)."""
    info = training(name)
    log = [json.loads(line) for line in (ROOT / "checkpoints" / name / "train_log.jsonl").read_text().splitlines()]
    last = log[-1]
    assert last["step"] == info["steps"]
    assert info["final"] and set(info["final"]) <= set(last)
    for key, value in info["final"].items():
        assert value == pytest.approx(last[key], abs=5e-5), key
    assert 0 < last["elapsed_s"] <= info["wall_s"]


def test_demos_differ_only_in_their_local_layers():
    configs = {name: preset_config(preset).to_dict() for name, preset in DEMOS.items()}
    patterns = {name: tuple(c.pop("layer_pattern")) for name, c in configs.items()}
    assert len({json.dumps(c, sort_keys=True) for c in configs.values()}) == 1
    assert patterns == {"rattention-w64": ("rattention", "global"), "swa-w64": ("swa", "global"), "full-attention": ("global",)}
    recipes = [{k: v for k, v in training(name)["recipe"].items() if k != "preset"} for name in DEMOS]
    assert recipes[0] == recipes[1] == recipes[2]

