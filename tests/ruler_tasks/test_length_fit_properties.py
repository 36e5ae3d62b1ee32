"""Properties of the length fit and the metrics, on random texts and tokenizers (hypothesis)."""

from __future__ import annotations

import string

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ruler_tasks.length_fit import count_pieces, count_tokens, fit, prefix_sums
from ruler_tasks.metrics import clean_prediction, string_match_all, string_match_part

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


class PairTokenizer:
    """A toy tokenizer whose tokens merge across piece boundaries: one token per 2 bytes of the whole text
    (so a piece counted alone over-estimates its share, unlike bytes)."""

    def encode(self, text: str) -> list[int]:
        data = text.encode("utf-8")
        return [int.from_bytes(data[i : i + 2], "little") for i in range(0, len(data), 2)]


words = st.text(alphabet=string.ascii_letters + string.digits + ".,'-é", min_size=1, max_size=12)


@FAST
@given(
    tokenizer_name=st.sampled_from(["byte", "pair", "bpe"]),
    header=st.text(alphabet=string.printable, max_size=60),
    vocabulary=st.lists(words, min_size=1, max_size=30, unique=True),
    budget=st.integers(300, 5000),
    seed=st.integers(0, 2**16),
)
def test_fit_is_never_over_budget_and_fills_it(tokenizers_by_name, tokenizer_name, header, vocabulary, budget, seed):
    """Pieces " word" drawn from a random vocabulary, enough of them to overflow the budget: the fitted
    prompt's true token count is <= budget and >= 95% of it."""
    tokenizer = PairTokenizer() if tokenizer_name == "pair" else tokenizers_by_name[tokenizer_name]
    rng = np.random.default_rng(seed)
    pieces = [" " + vocabulary[i] for i in rng.integers(0, len(vocabulary), size=budget)]  # >= 1 token each
    cum = prefix_sums(count_pieces(tokenizer, pieces))
    fixed = count_tokens(tokenizer, header)
    assume(fixed + 13 <= budget)
    res = fit(build=lambda n: header + "".join(pieces[:n]), estimate=lambda n: fixed + int(cum[n]),
              n_min=0, n_max=len(pieces), budget=budget, tokenizer=tokenizer, what="property")
    assert res.text == header + "".join(pieces[: res.n])
    assert res.tokens == count_tokens(tokenizer, res.text)
    assert 0.95 * budget <= res.tokens <= budget, (res.tokens, budget)


@FAST
@given(counts=st.lists(st.integers(0, 50), max_size=20))
def test_prefix_sums_start_at_zero_and_sum_each_prefix(counts):
    cum = prefix_sums(np.asarray(counts, dtype=np.int64))
    assert cum.shape == (len(counts) + 1,)
    assert [int(c) for c in cum] == [sum(counts[:n]) for n in range(len(counts) + 1)]


@FAST
@given(tokenizer_name=st.sampled_from(["byte", "bpe"]), pieces=st.lists(words, max_size=12))
def test_count_pieces_counts_each_piece_alone(tokenizers_by_name, tokenizer_name, pieces):
    tokenizer = tokenizers_by_name[tokenizer_name]
    counts = count_pieces(tokenizer, pieces)
    assert counts.dtype == np.int64 and counts.shape == (len(pieces),)
    assert [int(c) for c in counts] == [len(tokenizer.encode(p)) for p in pieces]


ascii_text = st.text(alphabet=string.ascii_letters + string.digits + " \t\n\x00\x1f.,", max_size=40)
golds = st.lists(st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=6), min_size=1, max_size=4)


@settings(max_examples=30, deadline=None)
@given(pred=ascii_text, refs=golds)
def test_metrics_ignore_case_and_agree_with_each_other(pred, refs):
    score_all = string_match_all(pred, refs)
    assert 0.0 <= score_all <= 1.0
    assert score_all * len(refs) == round(score_all * len(refs))  # a fraction of the golds
    assert string_match_part(pred, refs) == float(score_all > 0)
    for case in (str.upper, str.lower, str.swapcase):
        assert string_match_all(case(pred), refs) == score_all
        assert string_match_all(pred, [case(r) for r in refs]) == score_all


@settings(max_examples=30, deadline=None)
@given(prefix=ascii_text, suffix=ascii_text, refs=golds)
def test_a_prediction_holding_every_gold_scores_one(prefix, suffix, refs):
    pred = prefix + " " + " ".join(r.upper() for r in refs) + " " + suffix
    assert string_match_all(pred, refs) == 1.0 and string_match_part(pred, refs) == 1.0


@settings(max_examples=30, deadline=None)
@given(pred=st.text(max_size=40))
def test_cleaning_is_idempotent_and_leaves_no_control_character(pred):
    cleaned = clean_prediction(pred)
    assert clean_prediction(cleaned) == cleaned
    assert not any(ord(c) < 0x20 and c != "\n" for c in cleaned)
    assert cleaned == cleaned.strip()


@pytest.mark.parametrize("metric", [string_match_all, string_match_part])
def test_metrics_refuse_an_empty_gold_list(metric):
    with pytest.raises(ValueError, match=f"^{metric.__name__} needs at least one gold string$"):
        metric("anything", [])


def test_unknown_metric_and_misaligned_lists_are_refused_by_name():
    from common.errors import UserError
    from ruler_tasks.metrics import sample_scores

    with pytest.raises(UserError, match=r"^unknown metric 'exact'; use one of \['string_match_all', 'string_match_part'\]$"):
        sample_scores("exact", ["a"], [["a"]])
    with pytest.raises(ValueError, match=r"^len\(preds\)=2 predictions but len\(refs\)=1 gold lists$"):
        sample_scores("string_match_all", ["a", "b"], [["a"]])
