"""Convert a checkpoint into a native checkpoint directory that `runners.eval_ruler --checkpoint OUT` runs.

    python -m model_adapters.convert axlearn --checkpoint TRAINER_DIR/checkpoints/step_XXXXXXXX \\
        --config CONFIG_DUMP --tokenizer SPM.model --out OUT
    python -m model_adapters.convert hf DIR --out OUT
"""

from __future__ import annotations

import argparse

from common.cli import user_errors_exit_2
from model_adapters.config import DTYPES


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m model_adapters.convert", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="source", required=True)
    ax = sub.add_parser("axlearn", help="an axlearn RAttention step directory + its trainer config dump")
    ax.add_argument("--checkpoint", required=True, help="TRAINER_DIR/checkpoints/step_XXXXXXXX (with its index file)")
    ax.add_argument("--config", required=True, help="the trainer's flat 'path: value' config dump")
    ax.add_argument("--tokenizer", required=True, help="the sentencepiece .model, a tokenizer.json, or 'byte'")
    ax.add_argument("--train-context", type=int, default=None,
                    help="training length to record (default: input.source.max_sequence_length from the dump)")
    hf = sub.add_parser("hf", help="a Hugging Face Llama / Mistral / Qwen2 directory")
    hf.add_argument("dir", help="directory with config.json, *.safetensors, tokenizer.json [, tokenizer_config.json]")
    for p in (ax, hf):
        p.add_argument("--out", required=True, help="native checkpoint directory to write")
        p.add_argument("--max-context", type=int, default=131072, help="longest prompt + generation to accept")
        p.add_argument("--compute-dtype", choices=DTYPES, default="float32", help="activation dtype (params keep theirs)")
        p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    return parser


@user_errors_exit_2
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    common = dict(max_context=args.max_context, compute_dtype=args.compute_dtype, overwrite=args.overwrite)
    if args.source == "axlearn":
        from model_adapters.convert.axlearn import convert_axlearn

        out = convert_axlearn(args.checkpoint, args.config, args.tokenizer, args.out,
                              train_context=args.train_context, **common)
    else:
        from model_adapters.convert.hf import convert_hf

        out = convert_hf(args.dir, args.out, **common)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    main()
