"""make bench-1b at toy sizes: prefill rows per preset and context, and one RULER cell end to end."""

from __future__ import annotations

import json

from runners.bench_1b import CELL_TASK, main


def test_prefill_per_preset_and_context_and_one_timed_cell(tmp_path):
    out = tmp_path / "1b.json"
    assert main(["--presets", "tiny-rattention,tiny-full", "--contexts", "256,512", "--chunk", "128",
                 "--decode-steps", "2", "--cell-preset", "tiny-rattention", "--cell-length", "1024",
                 "--cell-samples", "1", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert [(r["preset"], r["context"]) for r in result["prefill"]] == [
        ("tiny-rattention", 256), ("tiny-rattention", 512), ("tiny-full", 256), ("tiny-full", 512)]
    assert all(r["compute_dtype"] == "float32" and r["chunk"] == 128 for r in result["prefill"])
    assert result["prefill_tokens_per_s"]["512"] == {
        r["preset"]: r["prefill_tokens_per_s"] for r in result["prefill"] if r["context"] == 512}
    cell = result["cell"]
    assert (cell["task"], cell["preset"], cell["length"], cell["samples"]) == (CELL_TASK, "tiny-rattention", 1024, 1)
    assert 512 < cell["prompt_tokens"] <= 1024 and cell["eval_wall_s"] >= cell["compile_s"]
