"""python -m runners.generate end to end: prints a continuation, dumps float32 logits, exit 2 on bad input."""

import numpy as np
import pytest

from model_adapters.init import init_checkpoint
from runners.generate import main


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return init_checkpoint("tiny-rattention", str(tmp_path_factory.mktemp("ckpt") / "tiny"), seed=1)


def test_generate_prints_and_dumps_logits(checkpoint, tmp_path, capsys):
    out = tmp_path / "logits.npy"
    rc = main(["--checkpoint", str(checkpoint), "--prompt", "hello", "--max-new-tokens", "4",
               "--prefill-chunk", "16", "--impl", "reference", "--dump-logits", str(out)])
    assert rc == 0
    logits = np.load(out, allow_pickle=False)
    assert logits.dtype == np.float32 and logits.ndim == 2 and logits.shape[1] == 258
    assert 1 <= logits.shape[0] <= 4 and np.isfinite(logits).all()
    assert "prompt tokens" in capsys.readouterr().err


def test_prompt_longer_than_max_context_exits_2(checkpoint, tmp_path, capsys):
    prompt = tmp_path / "long.txt"
    prompt.write_text("x" * 131072)
    with pytest.raises(SystemExit) as exit_info:
        main(["--checkpoint", str(checkpoint), "--prompt-file", str(prompt), "--max-new-tokens", "4"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "max_context" in err and "\n" not in err
