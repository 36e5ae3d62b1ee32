"""`python -m runners.generate --checkpoint DIR (--prompt TEXT | --prompt-file F) --max-new-tokens N`

Prints the greedy continuation of one prompt. `--dump-logits OUT.npy` saves float32 [N, vocab]: the
distribution that chose each new token. A prompt longer than the model's max_context exits 2.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from pathlib import Path

import numpy as np

from common.errors import UserError
from common.cli import user_errors_exit_2


def _save_npy(path: Path, array: np.ndarray) -> None:
    """np.save through a temporary file and a rename (never half-written)."""
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, path)


@user_errors_exit_2
def main(argv: list[str] | None = None) -> int:
    from kernels import MODEL_IMPLS
    from model_adapters.config import add_compute_dtype_flag

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="checkpoint directory, or hf:DIR (converted once, cached)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompt")
    source.add_argument("--prompt-file", type=Path)
    parser.add_argument("--max-new-tokens", type=int, required=True)
    parser.add_argument("--prefill-chunk", type=int, default=2048)
    parser.add_argument("--impl", choices=MODEL_IMPLS, default=None)
    add_compute_dtype_flag(parser)
    parser.add_argument("--dump-logits", type=Path, metavar="OUT.npy")
    parser.add_argument("--no-bos", action="store_true", help="do not prepend the config's bos_id")
    parser.add_argument("--no-verify", action="store_true", help="skip checking the checkpoint's content hashes")
    args = parser.parse_args(argv)

    if args.prompt_file is not None:
        try:
            text = args.prompt_file.read_text(encoding="utf-8")
        except (FileNotFoundError, IsADirectoryError):
            raise UserError(f"--prompt-file {args.prompt_file}: no such file") from None
    else:
        text = args.prompt

    from model_adapters.checkpoint import load
    from model_adapters.convert.cached import resolve_checkpoint
    from model_adapters.generation import generate_greedy, prompt_ids, stop_id

    model, tokenizer = load(resolve_checkpoint(args.checkpoint), verify=not args.no_verify,
                            compute_dtype=args.compute_dtype)
    prompt = prompt_ids(model.config, tokenizer, text, bos=not args.no_bos)
    result = generate_greedy(
        model, [prompt], max_new_tokens=args.max_new_tokens, prefill_chunk=args.prefill_chunk,
        eos_id=stop_id(model.config, tokenizer), impl=args.impl, return_logits=args.dump_logits is not None,
        vocab_limit=tokenizer.vocab_size,
    )
    print(tokenizer.decode(result.tokens[0]))
    n = len(result.tokens[0])
    print(
        f"[{len(prompt)} prompt tokens, {n} new; prefill {result.prefill_s:.3f}s, "
        f"decode {result.decode_s:.3f}s, compile {result.compile_s:.3f}s]",
        file=sys.stderr,
    )
    if args.dump_logits is not None:
        _save_npy(args.dump_logits, result.logits[0].astype(np.float32))
    return 0


if __name__ == "__main__":
    main()
