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


class PerfectRecall:
    """A byte-level model that recalls every row perfectly: inside `?key:` (compact) or after `for key mentioned
    in the provided text is ` (needle layout) it emits the stored value's next character, then the row's
    terminator; elsewhere, token 0."""

    config = SimpleNamespace(bos_id=256, max_context=1024)
    STORED = r"(?:^|;)([a-z-]+):([0-9]+)(?=;)|for ([a-z-]+) is: ([0-9]+)\."
    ASKED = r"(?:\?([a-z-]+):|for ([a-z-]+) mentioned in the provided text is )([0-9]*)$"

    def __call__(self, tokens, impl):
        tokens = np.asarray(tokens)
        logits = np.zeros((*tokens.shape, 258), np.float32)
        for r, row in enumerate(tokens):
            text = bytes(int(t) for t in row[1:] if t < 256).decode()
            first_query = min(i for i in (text.find("?"), text.find("What is"), text.find("The special"), len(text)) if i >= 0)
            stored = {m[0] or m[2]: m[1] or m[3] for m in re.findall(self.STORED, text[:first_query])}
            end = ";" if "special magic" not in text else "."
            for t in range(tokens.shape[1]):
                asked = re.search(self.ASKED, text[:t])
                nxt = "\0"
                if asked:
                    value, typed = stored.get(asked.group(1) or asked.group(2), ""), asked.group(3)
                    nxt = value[len(typed)] if len(typed) < len(value) else end
                logits[r, t, ord(nxt)] = 1.0
        return logits


def test_random_pick_is_the_share_of_stored_values_sharing_the_queried_first_token():
    assert random_pick([5, 5, 7], [5, 7]) == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert random_pick([1, 2, 3, 4], [1, 2, 3, 4]) == pytest.approx(1 / 4)


@pytest.mark.parametrize("form", [Form(128, "2-4", 4), Form(128, "words", 7), Form(256, "4", 7),
                                  Form(1024, "words", 7, "needle"), Form(1024, "words", 7, "needle-short")],
                         ids=lambda f: f.name)
def test_perfect_recall_scores_one_and_chance_is_below_it(form):
    result = probe_form(PerfectRecall(), ByteTokenizer(), form, rows=3, seed=1, pad_id=257)
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


class Recording(PerfectRecall):
    def __call__(self, tokens, impl):
        self.rows = [bytes(int(t) for t in row if t < 256).decode() for row in np.asarray(tokens)]
        return super().__call__(tokens, impl)


def test_needle_layouts_ask_rulers_question_or_its_answer_prefix():
    for layout, questions in (("needle", 1), ("needle-short", 0)):
        model = Recording()
        result = probe_form(model, ByteTokenizer(), Form(1024, "words", 7, layout), rows=2, seed=1, pad_id=257)
        for row in model.rows:
            needles = re.findall(r"One of the special magic numbers for [a-z]+-[a-z]+ is: [0-9]{7}\.", row)
            asked = re.findall(r"The special magic number for [a-z]+-[a-z]+ mentioned in the provided text is ", row)
            assert len(needles) >= 3 and len(asked) >= 2
            assert row.count("What is the special magic number for") == questions * len(asked)
        assert result["pairs"] >= 3 and result["random_pick"] < 0.6
