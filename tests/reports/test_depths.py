"""Needle depth x length grid: per-needle retrieval from meta depths, pooled over NIAH tasks."""

import numpy as np

from reports.depths import DEPTH_BINS, depth_grid, needle_points
from reports.runs import Prediction, load_run


def _pred(text: str, outputs: list[str], meta: dict) -> Prediction:
    return Prediction(0, text, tuple(outputs), meta)


def _needle(key: str, value: str) -> str:
    return f"One of the special magic numbers for {key} is: {value}."


def test_gold_strings_are_placed_at_their_needles_depth():
    # niah_multikey_1-like: four needles, one asked; niah_multivalue-like: one key, several values.
    needles = [_needle("k1", "111"), _needle("k2", "222"), _needle("k3", "333"), _needle("k4", "444")]
    meta = {"needle_depths": [0.1, 0.4, 0.6, 0.9], "needles": needles}
    assert needle_points(_pred("it is 333", ["333"], meta), "string_match_all") == [(0.6, 1.0)]
    assert needle_points(_pred("111 and 444", ["444", "222", "111"], meta), "string_match_all") == [
        (0.9, 1.0),
        (0.4, 0.0),
        (0.1, 1.0),
    ]


def test_without_needles_depths_pair_with_gold_strings_in_order():
    pred = _pred("found 111 and 333", ["111", "222", "333"], {"needle_depths": [0.0, 0.5, 1.0]})
    assert needle_points(pred, "string_match_all") == [(0.0, 1.0), (0.5, 0.0), (1.0, 1.0)]


def test_a_single_depth_for_several_gold_strings_takes_the_sample_score():
    pred = _pred("x 111", ["111", "222"], {"needle_depths": [0.25]})
    assert needle_points(pred, "string_match_all") == [(0.25, 0.5)]


def test_samples_without_usable_depths_are_left_out():
    assert needle_points(_pred("1", ["1"], {}), "string_match_all") == []
    assert needle_points(_pred("1", ["1"], {"needle_depths": [0.1, 0.2]}), "string_match_all") == []
    assert needle_points(_pred("1", ["1"], {"needle_depths": [1.5]}), "string_match_all") == []
    meta = {"needle_depths": [0.3], "needles": [_needle("k", "999")]}
    assert needle_points(_pred("1", ["1"], meta), "string_match_all") == []


def test_grid_pools_tasks_and_bins_depths(make_run, metric_of):
    b = make_run()
    b.add("niah_single_1", 4096, [("7", ["7"], {"needle_depths": [0.0]}), ("no", ["8"], {"needle_depths": [0.05]})])
    b.add("niah_multivalue", 4096, [("1 2", ["1", "2", "3"], {"needle_depths": [0.01, 0.55, 1.0]})])
    b.add("niah_single_1", 8192, [("no", ["9"], {"needle_depths": [0.99]})])
    b.add("vt", 16384, [("a", ["a"])])  # no depths: not in the grid
    grid = depth_grid(load_run(b.path), metric_of)
    assert grid.lengths == (4096, 8192)
    assert grid.values.shape == grid.counts.shape == (DEPTH_BINS, 2)
    assert grid.counts[0, 0] == 3 and grid.values[0, 0] == 2 / 3  # depths 0.0, 0.05, 0.01
    assert grid.values[5, 0] == 1.0 and grid.values[DEPTH_BINS - 1, 0] == 0.0  # 0.55 found; 1.0 in the last bin
    assert grid.values[DEPTH_BINS - 1, 1] == 0.0 and grid.counts[:, 1].sum() == 1
    assert np.isnan(grid.values[3, 0])
    assert grid.row_labels[0] == "0-10%" and grid.row_labels[-1] == "90-100%"


def test_no_grid_without_depths(make_run, metric_of):
    b = make_run()
    b.add("vt", 4096, [("a", ["a"])])
    assert depth_grid(load_run(b.path), metric_of) is None
