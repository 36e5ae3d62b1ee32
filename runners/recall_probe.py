"""Key-matching probe: how a checkpoint recalls values from key-value rows, one row form at a time.

    python -m runners.recall_probe CKPT [CKPT ...] [--rows 64] [--seed 7] [--out probe.json]

For each form in FORMS (row length x key kind x value digits x layout) it builds `--rows` recall rows
(runners.train_data.recall_row_tokens): compact (`key:value;` pairs, then `?key:value;` queries in shuffled
order), or in RULER's needle layout (NIAH needle sentences among noise lines, then NIAH questions: RULER's
whole question, or its answer prefix alone), where the key stands tens of tokens before the value and in
different words than in the needle, so copying what followed a matching n-gram does not find it. It
reports, from one forward pass, the argmax accuracy on every recalled token (`acc`) and on each value's
first token alone (`first_acc`), beside `random_pick`: the first-token accuracy of a model that
answers each query with one of the row's stored values drawn at random (the share of stored values that
start with the queried value's first token). first_acc above random_pick is key matching; acc far above
first_acc is a value copied after being picked without its key, which retrieves a single needle but not
one of several.
"""

from __future__ import annotations

import argparse
import platform
import sys
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from common.cli import user_errors_exit_2
from common.files import atomic_write_json
from model_adapters.checkpoint import load
from model_adapters.generation import stop_id
from runners.train import first_of_runs
from runners.train_data import recall_pairs, recall_row_tokens


LAYOUTS = ("compact", "needle", "needle-short")


class Form(NamedTuple):
    length: int  # row length in tokens
    keys: str  # "2-4" random letters, "4" letters, or "words" (RULER's adjective-noun keys)
    digits: int  # value digits (RULER's 7-digit numbers, cut to this many)
    layout: str = "compact"  # one of LAYOUTS: needle rows ask RULER's question ("needle") or its answer prefix

    @property
    def name(self) -> str:
        return f"L{self.length}/{self.keys}-keys/{self.digits}d" + ("" if self.layout == "compact" else f"/{self.layout}")


FORMS = (Form(128, "4", 4), Form(128, "2-4", 4), Form(128, "words", 4), Form(128, "2-4", 7), Form(128, "words", 7),
         Form(512, "2-4", 7), Form(512, "words", 7), Form(1024, "2-4", 7), Form(1024, "words", 7, "needle"),
         Form(1024, "words", 7, "needle-short"))


def random_pick(stored_firsts: list[int], queried_firsts: list[int]) -> float:
    """Mean over queries of the share of stored values whose first token is the queried value's:
    stored_firsts [S] (each stored value's first token), queried_firsts [Q] (each queried value's)."""
    stored = np.asarray(stored_firsts)
    return float(np.mean([np.mean(stored == q) for q in queried_firsts]))


def probe_form(model, tokenizer, form: Form, rows: int, seed: int, pad_id: int) -> dict:
    """One form's {"form", "pairs", "acc", "first_acc", "random_pick"} over `rows` rows."""
    layout = [] if form.layout == "compact" else [LAYOUTS.index(form.layout)]
    rng = np.random.default_rng([seed, form.length, form.digits, len(form.keys), *layout])
    bos = [] if model.config.bos_id is None else [model.config.bos_id]
    tokens = np.full((rows, form.length), pad_id, np.int32)
    scored = np.zeros((rows, form.length - 1), bool)
    pairs, chance, stored_by_row = [], [], []
    for r in range(rows):
        pairs_drawn = recall_pairs(rng, form.length // 8, form.keys, "numbers", form.digits)  # more than fit
        ids, mask, stored = recall_row_tokens(tokenizer.encode, bos, pairs_drawn, form.length, rng,
                                              needle_kind=None if form.layout == "compact" else "number",
                                              short_questions=float(form.layout == "needle-short"))
        tokens[r, : len(ids)] = ids
        scored[r, : len(mask)] = mask
        pairs.append(len(stored))
        stored_by_row.append(stored)
    first = np.asarray(first_of_runs(scored))  # each queried value's first token
    for r in range(rows):
        chance.append(random_pick([tokenizer.encode(v)[0] for _, v in stored_by_row[r]], tokens[r, 1:][first[r]]))
    logits = model(jnp.asarray(tokens[:, :-1]), impl="xla")
    hit = np.asarray(jnp.argmax(logits, axis=-1) == jnp.asarray(tokens[:, 1:]))
    return {"form": form.name, "pairs": round(float(np.mean(pairs)), 2), "acc": round(float(hit[scored].mean()), 4),
            "first_acc": round(float(hit[first].mean()), 4), "random_pick": round(float(np.mean(chance)), 4)}


@user_errors_exit_2
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m runners.recall_probe", description=__doc__.splitlines()[0])
    p.add_argument("checkpoints", nargs="+", help="checkpoint directories")
    p.add_argument("--rows", type=int, default=64, help="rows per form")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", default=None, help="also write the results here as JSON")
    args = p.parse_args(argv)
    results = {}
    for ckpt in args.checkpoints:
        model, tokenizer = load(ckpt)
        pad = stop_id(model.config, tokenizer) or 0
        forms = [f for f in FORMS if f.length <= model.config.max_context]
        width = max(len(f.name) for f in forms)
        print(f"{ckpt}\n  {'form':{width}s} {'pairs':>6s} {'acc':>6s} {'first_acc':>9s} {'random_pick':>11s}")
        results[ckpt] = []
        for form in forms:
            row = probe_form(model, tokenizer, form, args.rows, args.seed, pad)
            results[ckpt].append(row)
            print(f"  {row['form']:{width}s} {row['pairs']:6.1f} {row['acc']:6.3f} {row['first_acc']:9.3f} "
                  f"{row['random_pick']:11.3f}", flush=True)
    if args.out:
        command = " ".join(sys.argv[1:] if argv is None else argv)
        atomic_write_json(args.out, {"command": f"python -m runners.recall_probe {command}",
                                     "host": platform.node(), "rows": args.rows, "seed": args.seed, "results": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
