"""Properties of the report numbers on random cells (hypothesis): bounds, orderings and invariances."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from reports.aggregate import RULER_LENGTHS, effective_length, length_averages, weighted_averages
from reports.scoring import Cell, bootstrap_means, cell_rng, percentile_ci

FAST = settings(max_examples=40, deadline=None)
LENGTHS = (1024, 2048, 4096, 8192)

unit_scores = st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0]), min_size=1, max_size=30)
percent_tables = st.dictionaries(st.sampled_from(LENGTHS), st.floats(0, 100, allow_nan=False), min_size=1)


@FAST
@given(samples=unit_scores, seed=st.integers(0, 1000))
def test_bootstrap_means_and_ci_stay_within_the_samples(samples, seed):
    samples = np.asarray(samples)
    boot = bootstrap_means(samples, cell_rng(seed, "vt", 4096), n_boot=200)
    assert boot.shape == (200,)
    assert samples.min() - 1e-12 <= boot.min() and boot.max() <= samples.max() + 1e-12
    low, high = percentile_ci(boot)
    assert round(100 * samples.min(), 2) <= low <= high <= round(100 * samples.max(), 2)


@FAST
@given(cells=st.lists(unit_scores, min_size=1, max_size=5), seed=st.integers(0, 1000))
def test_length_average_is_the_mean_of_task_scores_within_their_ci_range(cells, seed):
    table = {}
    for i, samples in enumerate(cells):
        samples = np.asarray(samples)
        table[f"t{i}", 4096] = Cell(f"t{i}", 4096, samples, bootstrap_means(samples, cell_rng(seed, f"t{i}", 4096)))
    average = length_averages(table)[4096]
    assert average.n_tasks == len(cells)
    scores = [c.score for c in table.values()]
    assert average.score == round(sum(scores) / len(scores), 2)  # RULER's arithmetic
    # Each averaged replicate lies between the tasks' extreme replicates.
    assert 100 * min(c.boot.min() for c in table.values()) - 0.01 <= average.ci_low <= average.ci_high
    assert average.ci_high <= 100 * max(c.boot.max() for c in table.values()) + 0.01
    varying = [c for c in table.values() if c.samples.min() < c.samples.max()]
    assert (average.ci_high > average.ci_low) == bool(varying)


@FAST
@given(scores=percent_tables, low=st.floats(0, 100), high=st.floats(0, 100))
def test_effective_length_shrinks_as_the_threshold_rises(scores, low, high):
    low, high = sorted((low, high))
    at_low, at_high = effective_length(scores, low), effective_length(scores, high)
    if at_high is not None:
        assert at_low is not None and at_high <= at_low
    for threshold, effective in ((low, at_low), (high, at_high)):
        passed = [n for n in sorted(scores) if effective is not None and n <= effective]
        assert all(scores[n] > threshold for n in passed)
        longer = [n for n in sorted(scores) if effective is None or n > effective]
        if longer:  # the first length past the effective one fails
            assert scores[longer[0]] <= threshold


@FAST
@given(value=st.floats(0, 100), tail=st.lists(st.floats(0, 100), min_size=6, max_size=6))
def test_weighted_averages_of_a_flat_table_are_its_value_and_order_by_trend(value, tail):
    flat = weighted_averages(dict.fromkeys(RULER_LENGTHS, value))
    assert flat == (round(value, 2), round(value, 2))
    falling = dict(zip(RULER_LENGTHS, sorted(tail, reverse=True)))
    inc, dec = weighted_averages(falling)
    assert inc <= dec + 0.01  # inc weighs the long (lower) lengths more
    assert min(tail) - 0.01 <= inc and dec <= max(tail) + 0.01
