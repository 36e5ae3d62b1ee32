"""make bench-long at small lengths: one prepare and one eval process per length, each measured alone."""

from __future__ import annotations

import json

import pytest

from common.errors import UserError
from runners.bench_long import main, run_measured


def test_rows_hold_each_lengths_own_measurements_and_ratios_to_the_first(tmp_path):
    out = tmp_path / "long.json"
    assert main(["--lengths", "1024,2048", "--samples", "1", "--preset", "tiny-rattention", "--prefill-chunk", "512",
                 "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["device"] == "cpu" and result["task"] == "niah_single_1"
    first, second = result["rows"]
    assert [first["length"], second["length"]] == [1024, 2048]
    for row in (first, second):
        assert row["length"] // 2 < row["prompt_tokens"] <= row["length"]  # the prompt fills its budget
        assert 50 * 2**20 < row["eval_peak_rss_bytes"] < 8 * 2**30 and 20 * 2**20 < row["prepare_peak_rss_bytes"]
        assert row["eval_peak_rss_bytes"] != row["prepare_peak_rss_bytes"]  # two processes, measured apart
    assert first["ratios_to_first"] == {"eval_peak_rss": 1.0, "prefill_tokens_per_s": 1.0, "decode_ms_per_token": 1.0}
    assert second["ratios_to_first"]["eval_peak_rss"] == round(second["eval_peak_rss_bytes"] / first["eval_peak_rss_bytes"], 3)


def test_a_failing_step_is_one_line():
    with pytest.raises(UserError, match="python -m runners.prepare failed .*unknown task"):
        run_measured(["runners.prepare", "--tasks", "no_such_task", "--lengths", "1024", "--samples", "1",
                      "--tokenizer", "byte", "--out", "/tmp/never-written"])
