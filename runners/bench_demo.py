"""`make bench-demo`: the shipped demo models against their quality bar -> bench/results/demo-quality.json.

Evaluates each demo checkpoint (checkpoints/<name>) on the 8 NIAH tasks at its training length, 20
samples per task, seed 42, into bench/runs/demo-quality/<name> (resumable), and checks the bar the
demo models must meet:
  - niah_single_1 >= 90 for every model;
  - the mean of the 8 NIAH tasks >= 80 for the full-attention and RAttention models.
The JSON holds every task's score with its bootstrap 95% CI and n, the NIAH mean, and each check's result.
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

from common.cli import split_list, user_errors_exit_2
from common.files import atomic_write_json, read_json
from runners.bench_out import add_overwrite_flag, result_path
from runners.eval_ruler import EvalConfig, run_eval

NIAH_TASKS = ("niah_single_1", "niah_single_2", "niah_single_3", "niah_multikey_1", "niah_multikey_2",
              "niah_multikey_3", "niah_multivalue", "niah_multiquery")
SINGLE_1_BAR = 90.0
NIAH_MEAN_BAR = 80.0
NIAH_MEAN_MODELS = ("rattention-w64", "full-attention")


def quality(name: str, scores: dict[str, dict]) -> dict:
    """The bar's checks for model `name` given its {task: {"score", ...}} at the training length."""
    mean = sum(scores[t]["score"] for t in NIAH_TASKS) / len(NIAH_TASKS)
    checks = {"niah_single_1>=90": scores["niah_single_1"]["score"] >= SINGLE_1_BAR}
    if name in NIAH_MEAN_MODELS:
        checks["niah_mean>=80"] = mean >= NIAH_MEAN_BAR
    return {"niah_mean": round(mean, 2), "checks": checks, "meets_bar": all(checks.values())}


@user_errors_exit_2
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m runners.bench_demo", description=__doc__.splitlines()[0])
    p.add_argument("--models", default="rattention-w64,swa-w64,full-attention", help="names under checkpoints/")
    p.add_argument("--samples", type=int, default=20)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--runs", default="bench/runs/demo-quality", help="run directories (resumable)")
    p.add_argument("--out", default="bench/results/demo-quality.json")
    add_overwrite_flag(p)
    a = p.parse_args(argv)
    out = result_path(a.out, a.overwrite)
    results = {}
    for name in split_list(a.models):
        checkpoint = Path("checkpoints") / name
        length = read_json(checkpoint / "config.json")["train_context"]
        run = Path(a.runs) / name
        cells = run_eval(EvalConfig(checkpoint=checkpoint, run=run, tasks=",".join(NIAH_TASKS), lengths=(length,),
                                    samples=a.samples, seed=a.seed, batch=a.batch))
        scores = {task: {"score": cell.score, "ci": list(cell.ci), "n": cell.n} for (task, cell_length), cell in cells.items()
                  if cell_length == length}
        training = read_json(checkpoint / "training.json")
        results[name] = {"length": length, "training_steps": training["steps"], "scores": scores,
                         **quality(name, scores)}
    atomic_write_json(out, {"samples": a.samples, "seed": a.seed, "machine": platform.platform(), "models": results})
    print(f"{'model':<16} {'niah_single_1':>13} {'NIAH mean':>9}  bar")
    for name, r in results.items():
        print(f"{name:<16} {r['scores']['niah_single_1']['score']:>13.1f} {r['niah_mean']:>9.1f}  "
              f"{'met' if r['meets_bar'] else 'NOT met'} ({', '.join(k for k, ok in r['checks'].items() if not ok) or 'all checks pass'})")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
