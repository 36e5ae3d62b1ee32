"""The length search: fits, comes close, corrects a wrong estimate, and says when nothing fits."""

import pytest

from model_adapters.tokenizers import ByteTokenizer
from common.errors import UserError
from ruler_tasks.length_fit import fit, largest_fitting, tolerance


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
