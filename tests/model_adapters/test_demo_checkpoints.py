"""The shipped demo checkpoints: what they are, how they were trained, and that they still retrieve."""

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
from ruler_tasks.files import read_jsonl
from ruler_tasks.metrics import task_score
from runners.prepare import prepare_data
from runners.predictors import ModelPredictor
from runners.train import parse_args

ROOT = Path(__file__).resolve().parents[2]
DEMOS = {"rattention-w64": "demo-rattention", "swa-w64": "demo-swa", "full-attention": "demo-full"}
MAX_BYTES = 5 * 2**20
RETRIEVAL_SAMPLES = 4
RETRIEVAL_BAR = 75.0


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
    assert info["recipe"] == asdict(recipe)  # `make train-demo` reproduces this checkpoint's recipe
    assert info["steps"] == recipe.steps and info["wall_s"] > 0


def test_demos_differ_only_in_their_local_layers():
    configs = {name: preset_config(preset).to_dict() for name, preset in DEMOS.items()}
    patterns = {name: tuple(c.pop("layer_pattern")) for name, c in configs.items()}
    assert len({json.dumps(c, sort_keys=True) for c in configs.values()}) == 1
    assert patterns == {"rattention-w64": ("rattention", "global"), "swa-w64": ("swa", "global"), "full-attention": ("global",)}
    recipes = [{k: v for k, v in training(name)["recipe"].items() if k != "preset"} for name in DEMOS]
    assert recipes[0] == recipes[1] == recipes[2]


@pytest.mark.parametrize("name", DEMOS)
def test_demo_retrieves_the_needle_at_its_training_length(name, tmp_path):
    """End to end through prepare, the predictor and the metric, on evaluation samples it never trained on."""
    model, tokenizer = load(ROOT / "checkpoints" / name)
    length = model.config.train_context
    prepare_data(tasks="niah_single_1", lengths=[length], samples=RETRIEVAL_SAMPLES, tokenizer=tokenizer,
                 tokenizer_spec="byte", seed=42, out=tmp_path, progress=False)
    samples = read_jsonl(tmp_path / "data" / "niah_single_1" / f"{length}.jsonl")
    preds = ModelPredictor(model, tokenizer, prefill_chunk=length).predict(samples)
    score = task_score("string_match_all", [p.pred for p in preds], [s["outputs"] for s in samples])
    assert score >= RETRIEVAL_BAR, f"{name}: niah_single_1 at {length} scored {score}: {[p.pred for p in preds]}"
