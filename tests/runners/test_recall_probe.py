"""runners.recall_probe: its accuracies score exactly the recalled values, and its chance level is the
random-pick model's."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from model_adapters.tokenizers import ByteTokenizer
from runners import recall_probe
from runners.recall_probe import Form, probe_form, random_pick

SWA_DEMO = str(Path(__file__).resolve().parents[2] / "checkpoints" / "swa-w64")


class CompactRecall:
    """A byte-level model that recalls compact rows perfectly: inside `?key:` it emits the stored value's
    next character, then `;`; elsewhere, token 0."""

    config = SimpleNamespace(bos_id=256, max_context=1024)

    def __call__(self, tokens, impl):
        tokens = np.asarray(tokens)
        logits = np.zeros((*tokens.shape, 258), np.float32)
        for r, row in enumerate(tokens):
            text = bytes(int(t) for t in row[1:] if t < 256).decode()
            stored = dict(re.findall(r"(?:^|;)([a-z-]+):([0-9]+)(?=;)", text.split("?")[0]))
            for t in range(tokens.shape[1]):
                asked = re.search(r"\?([a-z-]+):([0-9]*)$", text[:t])
                value = stored.get(asked.group(1), "") if asked else ""
                nxt = (value[len(asked.group(2))] if len(asked.group(2)) < len(value) else ";") if asked else "\0"
                logits[r, t, ord(nxt)] = 1.0
        return logits


def test_random_pick_is_the_share_of_stored_values_sharing_the_queried_first_token():
    assert random_pick([5, 5, 7], [5, 7]) == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert random_pick([1, 2, 3, 4], [1, 2, 3, 4]) == pytest.approx(1 / 4)


@pytest.mark.parametrize("form", [Form(128, "2-4", 4), Form(128, "words", 7), Form(256, "4", 7)], ids=lambda f: f.name)
def test_perfect_recall_scores_one_and_chance_is_below_it(form):
    result = probe_form(CompactRecall(), ByteTokenizer(), form, rows=3, seed=1, pad_id=257)
    assert result["acc"] == 1.0 and result["first_acc"] == 1.0
    assert 0 < result["random_pick"] < 1 and result["pairs"] >= 1
    assert result["random_pick"] >= 1 / result["pairs"] - 1e-9  # a stored value always starts like itself


def test_the_cli_probes_a_checkpoint_at_every_form_that_fits(tmp_path, capsys):
    out = tmp_path / "probe.json"
    assert recall_probe.main([SWA_DEMO, "--rows", "2", "--out", str(out)]) == 0
    results = json.loads(out.read_text())["results"][SWA_DEMO]
    assert [r["form"] for r in results] == [f.name for f in recall_probe.FORMS]
    assert all(0 <= r[k] <= 1 for r in results for k in ("acc", "first_acc", "random_pick"))
    assert "first_acc" in capsys.readouterr().out
