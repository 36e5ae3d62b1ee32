"""The length search: fits, comes close, corrects a wrong estimate, and says when nothing fits."""

import numpy as np
import pytest

from model_adapters.tokenizers import ByteTokenizer
from common.errors import UserError
from ruler_tasks.length_fit import (LengthTooSmall, count_pieces, count_tokens, fit, largest_fitting, prefix_sums,
                                    tolerance)


def test_largest_fitting_is_a_binary_search():
    assert largest_fitting(lambda n: 3 * n, 0, 100, 31) == 10
    assert largest_fitting(lambda n: 3 * n, 5, 100, 10) is None


@pytest.mark.parametrize("scale", [0.5, 1.0, 2.0], ids=["estimate-low", "estimate-exact", "estimate-high"])
def test_fit_corrects_a_proportional_estimate(scale):
    built = []

    def build(n):
        built.append(n)
        return "head:" + "word " * n

    res = fit(build=build, estimate=lambda n: int(5 + 5 * n * scale), n_min=0, n_max=10_000, budget=4000,
              tokenizer=ByteTokenizer(), what="test")
    assert res.tokens == len(res.text) <= 4000
    assert 4000 - res.tokens <= max(tolerance(4000), 5)
    assert len(built) <= 4, "a handful of tokenizations, not one per search step"


def test_fit_raises_user_error_when_nothing_fits():
    with pytest.raises(UserError, match="use a longer --lengths value"):
        fit(build=lambda n: "x" * (100 + n), estimate=lambda n: 100 + n, n_min=0, n_max=10, budget=50,
            tokenizer=ByteTokenizer(), what="tiny")


class CountingTokenizer:
    """One token per character. Records the length of every whole prompt it counts; `encode` refuses, so
    code that has `count` and `encode_batch` to call must call them."""

    def __init__(self):
        self.counted: list[int] = []

    def count(self, text: str) -> int:
        self.counted.append(len(text))
        return len(text)

    def encode_batch(self, texts):
        return [list(t) for t in texts]

    def encode(self, text):
        raise AssertionError("count_tokens / count_pieces must use count / encode_batch when the tokenizer has them")


class EncodeOnlyTokenizer:
    def encode(self, text):
        return list(text)


def characters(head: int, piece: int):
    """build(n): a head of `head` characters then n pieces of `piece` characters (one token each)."""
    return lambda n: "h" * head + "w" * (piece * n)


@pytest.mark.parametrize("budget, expected", [(100, 4), (2000, 4), (2499, 4), (2500, 5), (1_000_000, 2000)])
def test_tolerance_is_a_fifth_of_a_percent_and_at_least_4_tokens(budget, expected):
    assert tolerance(budget) == expected and isinstance(tolerance(budget), int)


def test_counts_go_through_the_tokenizers_own_count_and_batch_methods():
    tok = CountingTokenizer()
    assert count_tokens(tok, "abc") == 3 and tok.counted == [3]
    np.testing.assert_array_equal(count_pieces(tok, ["a", "bcd", ""]), [1, 3, 0])
    plain = EncodeOnlyTokenizer()
    assert count_tokens(plain, "abcd") == 4
    np.testing.assert_array_equal(count_pieces(plain, ["ab", "c"]), [2, 1])


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.uint64])
def test_prefix_sums_are_int64_whatever_the_counts_dtype(dtype):
    cum = prefix_sums(np.array([200, 100, 50], dtype=dtype))
    assert cum.dtype == np.int64 and cum.tolist() == [0, 200, 300, 350]


def test_largest_fitting_includes_an_estimate_equal_to_the_budget():
    assert largest_fitting(lambda n: n, 0, 10, 5) == 5
    assert largest_fitting(lambda n: n, 5, 10, 5) == 5


@pytest.mark.parametrize("budget", [4003, 4006], ids=["within-tolerance", "best-possible-outside-tolerance"])
def test_an_exact_estimate_takes_one_tokenization(budget):
    """7 + 10n tokens, estimated exactly: the first guess is the answer (n = 399, 3,997 tokens), whether it
    lands within the tolerance (4,003) or is simply the fullest that fits (4,006); no second look."""
    tok = CountingTokenizer()
    res = fit(build=characters(7, 10), estimate=lambda n: 7 + 10 * n, n_min=0, n_max=1000, budget=budget,
              tokenizer=tok, what="t")
    assert (res.n, res.tokens) == (399, 3997)
    assert tok.counted == [3997]


def test_a_first_guess_exactly_at_the_tolerance_ends_the_search():
    """One token per piece, estimated 1/247 high: the first guess (n = 989) measures 996 tokens, 4 under the
    budget, exactly the tolerance: the search ends there although a re-estimate could go fuller."""
    tok = CountingTokenizer()
    res = fit(build=characters(7, 1), estimate=lambda n: 7 + n + n // 247, n_min=0, n_max=5000, budget=1000,
              tokenizer=tok, what="t")
    assert (res.n, res.tokens) == (989, 996)
    assert tok.counted == [996]


def test_an_estimate_half_the_truth_is_corrected_in_one_step():
    tok = CountingTokenizer()
    res = fit(build=characters(7, 10), estimate=lambda n: 7 + 5 * n, n_min=0, n_max=1000, budget=4003,
              tokenizer=tok, what="t")
    assert (res.n, res.tokens) == (399, 3997)
    assert tok.counted == [7997, 3997], "over the budget once, then the measured ratio gives the answer"


def test_an_estimate_blind_to_the_pieces_steps_down_one_at_a_time():
    """Pieces the estimate counts as 0 tokens: no ratio can be measured, so the search steps down from n_max
    one n at a time until a prompt fits (n = 7: 14 tokens)."""
    tok = CountingTokenizer()
    res = fit(build=characters(7, 1), estimate=lambda n: 7, n_min=0, n_max=10, budget=14, tokenizer=tok, what="t")
    assert (res.n, res.tokens) == (7, 14)
    assert tok.counted == [17, 16, 15, 14]


def test_a_ten_times_underestimate_can_end_at_n_min():
    tok = CountingTokenizer()
    res = fit(build=characters(7, 10), estimate=lambda n: 7 + n, n_min=0, n_max=100, budget=12, tokenizer=tok, what="t")
    assert (res.n, res.tokens) == (0, 7)
    assert tok.counted == [57, 7]


def test_nothing_fits_names_the_task_its_need_and_the_budget_left():
    with pytest.raises(LengthTooSmall, match=r"^tiny: the shortest prompt takes 110 tokens, more than the 0 this length") as e:
        fit(build=characters(110, 1), estimate=lambda n: 110 + n, n_min=0, n_max=10, budget=-3,
            tokenizer=ByteTokenizer(), what="tiny")
    assert (e.value.need, e.value.budget) == (110, -3)
