"""Cell scores equal RULER's metrics computed by hand; bootstrap CIs bracket the mean and shrink with n."""

import numpy as np
import pytest

from reports.runs import load_run
from reports.scoring import bootstrap_means, cell_rng, percentile_ci, score_run
from ruler_tasks.metrics import sample_scores, string_match_all, string_match_part


def test_scores_match_a_hand_computation(make_run, metric_of):
    b = make_run()
    # string_match_all: fraction of gold strings found, case-insensitive, after cleaning.
    b.add(
        "niah_multivalue",
        4096,
        [
            ("The numbers are 111, 222 and 333.", ["111", "222", "333", "444"]),  # 3/4
            ("APPLE-PIE", ["apple", "Pie"]),  # case: 2/2
            ("\x00ab\x01cd\n", ["ab\ncd", "abcd"]),  # control chars become newlines: 1/2
            ("nothing", ["x"]),  # 0
        ],
    )
    # string_match_part: 1 if any gold string is found.
    b.add("qa_1", 4096, [("Paris, France", ["paris", "Lyon"]), ("London", ["Rome", "Milan"]), ("ROME", ["rome"])])
    cells = score_run(load_run(b.path), metric_of)
    multivalue = cells["niah_multivalue", 4096]
    np.testing.assert_allclose(multivalue.samples, [0.75, 1.0, 0.5, 0.0])
    assert multivalue.score == round(100 * (0.75 + 1 + 0.5 + 0) / 4, 2) == 56.25
    qa = cells["qa_1", 4096]
    np.testing.assert_allclose(qa.samples, [1.0, 0.0, 1.0])
    assert qa.score == 66.67 and qa.n == 3


def test_ci_brackets_the_score_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    widths = []
    for n in (10, 100, 1000):
        samples = (rng.random(n) < 0.6).astype(np.float64)
        low, high = percentile_ci(bootstrap_means(samples, cell_rng(0, "vt", n)))
        mean = round(100 * samples.mean(), 2)
        assert low <= mean <= high, (n, low, mean, high)
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2] > 0


@pytest.mark.parametrize("value", [0.0, 1.0], ids=["all-wrong", "all-right"])
def test_ci_of_a_constant_cell_is_a_point(value):
    samples = np.full(7, value)
    assert percentile_ci(bootstrap_means(samples, cell_rng(0, "vt", 4096))) == (100 * value, 100 * value)


def test_ci_is_seeded_per_cell(make_run, metric_of):
    b = make_run()
    b.add("vt", 4096, [("a", ["a"]), ("b", ["a"]), ("a", ["a"])])
    b.add("cwe", 4096, [("a", ["a"])])
    run = load_run(b.path)
    first = score_run(run, metric_of, seed=3)["vt", 4096].boot
    np.testing.assert_array_equal(first, score_run(run, metric_of, seed=3)["vt", 4096].boot)
    assert not np.array_equal(first, score_run(run, metric_of, seed=4)["vt", 4096].boot)


@pytest.mark.parametrize("metric", ["string_match_part", "string_match_all"])
@pytest.mark.parametrize("pred", ["paris", "PARIS", "It is Paris.", "pArIs\n"], ids=["lower", "upper", "same", "mixed"])
def test_capitalised_golds_match_in_any_case(metric, pred):
    """QA golds carry capitals ("Paris"); a prediction matches them whatever its case."""
    assert sample_scores(metric, [pred], [["Paris"]]) == [1.0]
    assert sample_scores(metric, [pred], [["Lyon"]]) == [0.0]


def test_capitalised_golds_score_per_metric():
    assert string_match_all("the capital is PARIS, not rome", ["Paris", "Rome", "Lyon"]) == pytest.approx(2 / 3)
    assert string_match_part("the capital is PARIS", ["Lyon", "Paris"]) == 1.0
    assert string_match_part("the capital is Nice", ["Lyon", "Paris"]) == 0.0


def test_qa_cell_with_capitalised_golds(make_run, metric_of):
    b = make_run()
    b.add("qa_2", 4096, [("paris", ["Paris"]), ("NEW YORK CITY", ["New York City", "NYC"]), ("berlin", ["Bonn"])])
    qa = score_run(load_run(b.path), metric_of)["qa_2", 4096]
    np.testing.assert_allclose(qa.samples, [1.0, 1.0, 0.0])
    assert qa.score == 66.67


def test_percentile_ci_is_the_central_95_percent_to_two_decimals():
    boot = np.arange(1001) / 1000 * 0.123456  # percentiles of an even grid are exact: p% -> p / 100 * 0.123456
    low, high = percentile_ci(boot)
    assert (low, high) == (round(2.5 * 0.123456, 2), round(97.5 * 0.123456, 2)) == (0.31, 12.04)
    low, high = percentile_ci(boot * 7.77)  # bounds with a third decimal: rounded to two, on both sides
    assert (low, high) == (round(2.5 * 0.123456 * 7.77, 2), round(97.5 * 0.123456 * 7.77, 2)) == (2.4, 93.53)


def test_cells_name_their_task_and_length_and_default_to_seed_0(make_run, metric_of):
    b = make_run()
    b.add("vt", 4096, [("a", ["a"]), ("b", ["a"]), ("a", ["a"]), ("c", ["a"])])
    run = load_run(b.path)
    cell = score_run(run, metric_of)["vt", 4096]
    assert (cell.task, cell.length, cell.samples.dtype) == ("vt", 4096, np.float64)
    np.testing.assert_array_equal(cell.boot, score_run(run, metric_of, seed=0)["vt", 4096].boot)
