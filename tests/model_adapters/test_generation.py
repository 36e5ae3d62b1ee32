"""generate_greedy: ragged left-padded batches equal each prompt alone; EOS; bucketing; errors."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from model_adapters.generation import generate_greedy, prompt_bucket, run_decode_loop, run_prefill_chunk
from common.errors import UserError
from tests.conftest import assert_close
from tests.model_adapters.tiny_models import full_logits, perturbed_model

MAX_NEW = 5


@pytest.fixture(scope="module")
def model():
    return perturbed_model("tiny-rattention")


@pytest.fixture(scope="module")
def batch_result(model):
    rng = np.random.default_rng(3)
    prompts = [rng.integers(0, 256, n).tolist() for n in (5, 37)]  # chunk 16: 3 chunks, 32 pads on row 0
    return prompts, generate_greedy(
        model, prompts, max_new_tokens=MAX_NEW, prefill_chunk=16, impl="reference", return_logits=True
    )


def test_ragged_batch_equals_each_prompt_run_alone(model, batch_result):
    prompts, result = batch_result
    assert result.prompt_padded == 48
    graphdef, state = nnx.split(model)
    for row, (prompt, new, logits) in enumerate(zip(prompts, result.tokens, result.logits)):
        assert len(new) == MAX_NEW and logits.shape == (MAX_NEW, 258) and logits.dtype == np.float32
        alone = full_logits(graphdef, state, jnp.asarray([prompt + new[:-1]], jnp.int32))[0, len(prompt) - 1:]
        assert_close(f"row {row} batched vs alone", alone, logits, rtol=1e-5)
        assert new == np.argmax(np.asarray(alone), axis=-1).tolist()


def test_eos_stops_its_row_only(model, batch_result):
    prompts, first = batch_result
    eos = first.tokens[0][1]
    result = generate_greedy(model, prompts, max_new_tokens=MAX_NEW, prefill_chunk=16, eos_id=eos, impl="reference")
    for new, before in zip(result.tokens, first.tokens):
        stop = before.index(eos) + 1 if eos in before else MAX_NEW
        assert new == before[:stop]


@pytest.mark.parametrize(
    "longest, chunk, expected",
    [(5, 2048, (16, 16)), (37, 2048, (64, 64)), (37, 16, (48, 16)), (100, 64, (128, 64)), (3, 8, (8, 8))],
    ids=["tiny", "pow2", "chunked", "two-chunks", "chunk-below-min"],
)
def test_prompt_bucket(longest, chunk, expected):
    padded, size = prompt_bucket(longest, chunk)
    assert (padded, size) == expected and padded >= longest and padded % size == 0


def test_prompt_longer_than_max_context_is_a_user_error(model):
    too_long = [[1] * (model.config.max_context - 2)]
    with pytest.raises(UserError, match="max_context"):
        generate_greedy(model, too_long, max_new_tokens=3)


def test_vocab_limit_keeps_greedy_choices_among_decodable_ids(model, batch_result):
    """A model whose vocab is padded past its tokenizer never emits a padding id: each step takes the
    argmax over the ids below the limit, even where a padding id scores higher."""
    prompts, free = batch_result
    limit = int(min(min(t) for t in free.tokens))  # every free choice lies at or above this id
    assert limit > 0
    result = generate_greedy(model, prompts, max_new_tokens=MAX_NEW, prefill_chunk=16, impl="reference",
                             return_logits=True, vocab_limit=limit)
    graphdef, state = nnx.split(model)
    for prompt, new in zip(prompts, result.tokens):
        assert max(new) < limit
        logits = np.asarray(full_logits(graphdef, state, jnp.asarray([prompt + new[:-1]], jnp.int32))[0, len(prompt) - 1:])
        assert new == np.argmax(logits[:, :limit], axis=-1).tolist()
        assert any(np.argmax(logits, axis=-1) >= limit)  # the limit changed at least one choice


def test_a_prefill_chunk_computes_logits_only_at_its_last_position(model):
    """No [B,C,V] (or [B*C,V]) logits tensor anywhere in the compiled prefill chunk, only [B,V]."""
    graphdef, state = nnx.split(model)
    batch, chunk, vocab = 2, 48, model.config.vocab_size
    caches = model.init_caches(batch, 2 * chunk)
    tokens = jnp.zeros((batch, chunk), jnp.int32)
    hlo = run_prefill_chunk.lower(graphdef, state, tokens, caches, jnp.zeros((batch,), jnp.int32),
                                  "reference").compile().as_text()
    assert f"f32[{batch},{vocab}]" in hlo
    assert f"[{batch},{chunk},{vocab}]" not in hlo and f"[{batch * chunk},{vocab}]" not in hlo


def test_a_local_only_models_decode_loop_compiles_to_the_same_program_at_any_context():
    """Every layer local: the cache for 256 or 1M positions holds the same arrays, so the compiled greedy
    loop (ring writes, state folds) is the same program; its cost cannot depend on the context."""
    from model_adapters.model import RAttentionLM
    from model_adapters.presets import preset_config

    config = preset_config("tiny-rattention").replace(layer_pattern=["rattention"])
    model = RAttentionLM(config, rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(model)

    def program(cache_len: int) -> str:
        caches = model.init_caches(2, cache_len)
        args = (graphdef, state, jnp.zeros((2, config.vocab_size)), caches, jnp.zeros((2,), jnp.int32),
                jnp.zeros((config.num_layers,), bool), "xla", 4, None, False)
        text = run_decode_loop.lower(*args).compile().as_text()
        return text.split("\n", 1)[1]  # past the module name line

    assert program(256) == program(2**20)
