"""`make bench-decode`: decode ms/token, decode-state bytes per layer kind, prefill tokens/s, peak memory.

For a preset with random weights, at each context L: prefill L random tokens in chunks of C (tokens/s per
chunk size), then time a jitted greedy decode loop of --decode-steps tokens (ms/token), and record the
bytes of carried state per layer of each kind. Local layers' bytes must not depend on L (checked: exit 1
if they do). Writes bench/results/decode.json (a file git tracks only with --overwrite). `--small` runs a
CPU-sized version in a couple of minutes.
"""

from __future__ import annotations

import argparse
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import kernels
from model_adapters.config import LOCAL_KINDS
from model_adapters.generation import cache_bucket, init_caches_on_device, run_decode_loop, run_prefill_chunk
from model_adapters.model import RAttentionLM
from model_adapters.presets import preset_config
from common.files import atomic_write_json
from common.memory import peak_rss
from evaluation.predictors import peak_device_memory
from common.cli import parse_lengths, user_errors_exit_2
from runners.bench_out import add_overwrite_flag, result_path

SMALL = dict(preset="bench-mid", contexts="512,2048", chunks="256,512", decode_steps=8)
FULL = dict(preset="bench-1b", contexts="4096,16384,65536,131072", chunks="2048,8192", decode_steps=64)


def state_bytes_per_kind(caches, kinds) -> dict[str, int]:
    """Bytes of carried state of ONE layer of each kind (all layers of a kind are the same size)."""
    out = {}
    for kind, cache in zip(kinds, caches):
        out[kind] = int(sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(cache)))
    return out


def bench_context(graphdef, state, config, context: int, chunk: int, steps: int, impl, rng) -> dict:
    """Prefill `context` tokens in chunks of `chunk`, then decode `steps` tokens; timings and state bytes."""
    tokens = jnp.asarray(rng.integers(0, min(config.vocab_size, 256), (1, context)), jnp.int32)
    kv_start = jnp.zeros((1,), jnp.int32)
    cache_len = cache_bucket(context + steps, chunk)

    def prefill():
        caches = init_caches_on_device(graphdef, state, 1, cache_len)
        nan = jnp.zeros((config.num_layers,), bool)
        for start in range(0, context, chunk):
            logits, caches, chunk_nan = run_prefill_chunk(graphdef, state, tokens[:, start:start + chunk], caches,
                                                          kv_start, impl)
            nan = nan | chunk_nan
        return jax.block_until_ready((logits, caches, nan))

    prefill()  # compile
    t0 = time.perf_counter()
    logits, caches, nan = prefill()
    prefill_s = time.perf_counter() - t0

    def decode():
        return jax.block_until_ready(
            run_decode_loop(graphdef, state, logits, caches, kv_start, nan, impl, steps, None, False)
        )

    decode()  # compile
    t0 = time.perf_counter()
    decode()
    decode_s = time.perf_counter() - t0
    return {
        "context": context, "chunk": chunk, "cache_len": cache_len,
        "prefill_s": prefill_s, "prefill_tokens_per_s": context / prefill_s,
        "decode_ms_per_token": 1000 * decode_s / steps,
        "state_bytes_per_layer": state_bytes_per_kind(caches, config.layer_kinds),
    }


@user_errors_exit_2
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="CPU-sized: " + str(SMALL))
    parser.add_argument("--preset")
    parser.add_argument("--contexts")
    parser.add_argument("--chunks")
    parser.add_argument("--decode-steps", type=int)
    parser.add_argument("--impl", choices=kernels.MODEL_IMPLS, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="bench/results/decode.json")
    add_overwrite_flag(parser)
    args = parser.parse_args(argv)
    out = result_path(args.out, args.overwrite)
    defaults = SMALL if args.small else FULL
    preset = args.preset or defaults["preset"]
    contexts = parse_lengths(args.contexts or defaults["contexts"])
    chunks = parse_lengths(args.chunks or defaults["chunks"])
    steps = args.decode_steps or defaults["decode_steps"]

    config = preset_config(preset)
    graphdef, state = nnx.split(RAttentionLM(config, rngs=nnx.Rngs(args.seed)))
    rng = np.random.default_rng(args.seed)
    rows = []
    for context in contexts:
        for chunk in chunks:
            if context % chunk:
                continue
            try:
                row = bench_context(graphdef, state, config, context, chunk, steps, args.impl, rng)
            except jax.errors.JaxRuntimeError as e:  # out of device memory at the longest contexts
                print(f"context {context} chunk {chunk}: skipped ({str(e).splitlines()[0][:120]})", file=sys.stderr)
                continue
            rows.append(row)
            print(f"context {context:>7} chunk {chunk:>5}: prefill {row['prefill_tokens_per_s']:10.1f} tok/s, "
                  f"decode {row['decode_ms_per_token']:8.2f} ms/token, state/layer {row['state_bytes_per_layer']}")
    local_bytes = {kind: {r["state_bytes_per_layer"][kind] for r in rows}
                   for kind in set(config.layer_kinds) & set(LOCAL_KINDS)}
    flat = all(len(sizes) == 1 for sizes in local_bytes.values())
    result = {
        "preset": preset, "config": config.to_dict(), "impl": args.impl, "decode_steps": steps,
        "device": str(jax.devices()[0]), "backend": jax.default_backend(), "jax": jax.__version__,
        "rows": rows, "local_state_bytes_flat_across_contexts": flat, "peak_memory_bytes": peak_device_memory() or peak_rss(),
    }
    atomic_write_json(out, result)
    print(f"wrote {out}; local-layer state flat across contexts: {flat}")
    return 0 if flat else 1


if __name__ == "__main__":
    raise SystemExit(main())
