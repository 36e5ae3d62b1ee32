"""python -m runners.generate end to end: prints the greedy continuation, dumps its float32 logits, exit 2 on bad input."""

import jax.numpy as jnp
import numpy as np
import pytest

from model_adapters.checkpoint import load
from runners.generate import main
from runners.init import init_checkpoint
from tests.conftest import assert_close


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return init_checkpoint("tiny-rattention", str(tmp_path_factory.mktemp("ckpt") / "tiny"), seed=1)


def greedy_by_full_forward(model, prompt: list[int], max_new_tokens: int, eos_id: int):
    """The definition of greedy decoding: rerun the whole sequence, take the argmax, stop after EOS.

    -> (new tokens, float32 [n, vocab] logits each was chosen from)."""
    tokens, new, logits = list(prompt), [], []
    for _ in range(max_new_tokens):
        last = np.asarray(model(jnp.asarray([tokens], jnp.int32), impl="reference")[0, -1], np.float32)
        token = int(np.argmax(last))
        tokens.append(token)
        new.append(token)
        logits.append(last)
        if token == eos_id:
            break
    return new, np.stack(logits)


def test_generate_prints_the_greedy_continuation(checkpoint, tmp_path, capsys):
    """A 40-token prompt over three 16-token prefill chunks, then decode: the tokens printed and the
    logits dumped are those of a greedy loop over the full forward."""
    out = tmp_path / "logits.npy"
    prompt_text, max_new = "hello world, " * 3 + "x", 6
    rc = main(["--checkpoint", str(checkpoint), "--prompt", prompt_text, "--max-new-tokens", str(max_new),
               "--prefill-chunk", "16", "--impl", "xla", "--dump-logits", str(out)])
    assert rc == 0
    model, tokenizer = load(checkpoint)
    prompt = [model.config.bos_id, *tokenizer.encode(prompt_text)]
    expected, expected_logits = greedy_by_full_forward(model, prompt, max_new, model.config.eos_id)
    captured = capsys.readouterr()
    assert captured.out == tokenizer.decode(expected) + "\n"
    logits = np.load(out, allow_pickle=False)
    assert logits.dtype == np.float32 and logits.shape == expected_logits.shape == (len(expected), 258)
    assert np.argmax(logits, axis=-1).tolist() == expected
    assert_close("dumped logits", expected_logits, logits, rtol=1e-4)
    assert f"{len(prompt)} prompt tokens, {len(expected)} new" in captured.err


def test_prompt_longer_than_max_context_exits_2(checkpoint, tmp_path, capsys):
    prompt = tmp_path / "long.txt"
    prompt.write_text("x" * 131072)
    with pytest.raises(SystemExit) as exit_info:
        main(["--checkpoint", str(checkpoint), "--prompt-file", str(prompt), "--max-new-tokens", "4"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "max_context" in err and "\n" not in err
