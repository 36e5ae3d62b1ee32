"""make bench-prepare: per-row time and peak memory, and the memory helper it measures with."""

from __future__ import annotations

import json

import numpy as np

from common.memory import current_rss, peak_rss, reset_peak_rss
from runners.bench_prepare import main


def test_reset_peak_rss_measures_only_what_follows():
    big = np.ones(400 * 2**20 // 8)  # 400 MiB touched
    del big
    assert peak_rss() - current_rss() > 300 * 2**20  # the peak remembers it
    reset_peak_rss()
    base = current_rss()
    assert peak_rss() - base < 50 * 2**20  # forgotten after the reset
    small = np.ones(100 * 2**20 // 8)  # 100 MiB touched
    assert 90 * 2**20 < peak_rss() - base < 160 * 2**20
    del small


def test_rows_carry_seconds_per_sample_peak_rss_and_fill(tmp_path):
    out = tmp_path / "prepare.json"
    assert main(["--tasks", "niah_single_1,cwe", "--lengths", "1024,4096", "--samples", "2", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [(r["tokenizer"], r["length"], r["task"]) for r in rows] == [
        (tok, n, task) for tok in ("byte", "bpe8k") for n in (1024, 4096) for task in ("niah_single_1", "cwe")]
    for r in rows:
        assert r["samples"] == 2 and abs(r["seconds_per_sample"] * 2 - r["seconds"]) < 2e-4
        assert r["peak_rss_mib"] >= r["rss_before_mib"] > 20  # the interpreter alone is more than 20 MiB
        assert 0.95 <= r["min_fill"] <= r["mean_fill"] <= 1.0
