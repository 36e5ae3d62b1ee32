"""`python -m tests.reliability.faulty_eval [FAULT ...] -- EVAL_ARGS`: runners.eval_ruler with a fault
injected at a chosen point, so kill tests are deterministic (no timing, no random sleeps).

    --kill-after N      SIGKILL this process right after its Nth prediction line is written
    --torn-at N         write half of the Nth line, then SIGKILL (a kill mid-write)
    --pause-after N     after the Nth line, wait until the file --until exists (holds the run's lock)
    --log-batches F     append each batch's (task, index) list to F as one JSON line
    --slow-exit S       wait S seconds before leaving jax.distributed (a process slow to shut down)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import time
from pathlib import Path

import evaluation.run_dir as run_dir
from evaluation.predictors import ModelPredictor
from runners.eval_ruler import main


def install(args: argparse.Namespace) -> None:
    written = 0
    append = run_dir.PredictionShard.append
    write_all = run_dir.write_all

    def faulty_append(shard, record):
        nonlocal written
        if written + 1 == args.torn_at:
            def half_then_die(fd, data):
                write_all(fd, data[: len(data) // 2])
                os.fsync(fd)
                os.kill(os.getpid(), signal.SIGKILL)

            run_dir.write_all = half_then_die
        append(shard, record)
        written += 1
        if written == args.kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
        if written == args.pause_after:
            while not Path(args.until).exists():
                time.sleep(0.05)

    run_dir.PredictionShard.append = faulty_append

    if args.log_batches:
        predict = ModelPredictor.predict

        def logged_predict(self, samples):
            with open(args.log_batches, "a") as f:
                f.write(json.dumps([[s["task"], s["index"]] for s in samples]) + "\n")
            return predict(self, samples)

        ModelPredictor.predict = logged_predict

    if args.slow_exit:
        from jax._src import distributed as jax_distributed

        shutdown = jax_distributed.State.shutdown

        def slow_shutdown(state):
            time.sleep(args.slow_exit)
            shutdown(state)

        jax_distributed.State.shutdown = slow_shutdown


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--kill-after", type=int, default=0)
    parser.add_argument("--torn-at", type=int, default=0)
    parser.add_argument("--pause-after", type=int, default=0)
    parser.add_argument("--until")
    parser.add_argument("--log-batches")
    parser.add_argument("--slow-exit", type=float, default=0)
    parser.add_argument("eval_args", nargs=argparse.REMAINDER)
    ns = parser.parse_args()
    install(ns)
    main([a for a in ns.eval_args if a != "--"])
