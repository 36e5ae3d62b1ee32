"""Times the kernels (each impl) beside jax.nn.dot_product_attention, full causal and local window.

    python -m runners.bench_kernels [--lengths 4096,16384,65536] [--impls xla,pallas] [--out bench/results]

B=1, 16 heads, D=128, window 512, bf16 by default. Writes bench/results/kernels-<backend>.json (a file
git tracks only with --overwrite) and prints ms and TFLOP/s per (op, impl, T). FLOPs counted as the
useful work: SWA 4*B*H*T*(W+1)*D, full causal 2*B*H*T*T*D, RLA 4*B*H*T*(2D)*D (state update +
readout), a whole RAttention layer's attention (SWA + RLA + the two group norms) their sum, decode per
token (O(W*D + D*D) per head).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import kernels
from common.errors import UserError
from model_adapters.model import GroupRMSNorm
from common.files import atomic_write_json
from common.cli import parse_lengths, split_list, user_errors_exit_2
from runners.bench_out import add_overwrite_flag, result_path


def _time_ms(fn, *args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))  # compile + warm up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def _rattention_layer(heads: int, dim: int, window: int, impl: str):
    """One RAttention layer's attention: SWA and RLA (with its end state) on the same q, k, v, each
    through its GroupRMSNorm, summed (the model's mix before o_proj) -> ([B,T,Hq,D] f32, state)."""
    swa_norm, rla_norm = (GroupRMSNorm(heads, dim, jnp.float32) for _ in range(2))

    def layer(q, k, v):
        o_swa = kernels.sliding_window_attention(q, k, v, window=window, impl=impl)
        o_rla, state = kernels.residual_linear_attention(q, k, v, window=window, impl=impl)
        return swa_norm(o_swa) + rla_norm(o_rla), state

    return jax.jit(layer)


def _cases(t, heads, dim, window, impls):
    """(op, impl, jitted fn, flops) for one length."""
    rla_flops = 4 * heads * t * 2 * dim * dim
    swa_flops = 4 * heads * t * (window + 1) * dim
    for impl in impls:
        yield "rattention_layer", impl, _rattention_layer(heads, dim, window, impl), rla_flops + swa_flops
        yield "rla_prefill", impl, jax.jit(
            lambda q, k, v, impl=impl: kernels.residual_linear_attention(q, k, v, window=window, impl=impl)
        ), rla_flops
        yield "swa_prefill", impl, jax.jit(
            lambda q, k, v, impl=impl: kernels.sliding_window_attention(q, k, v, window=window, impl=impl)
        ), swa_flops
    impl_name = "cudnn" if jax.default_backend() == "gpu" else "xla"
    yield "jax.nn.dpa_local", impl_name, jax.jit(
        lambda q, k, v: jax.nn.dot_product_attention(
            q, k, v, is_causal=True, local_window_size=(window, 0), implementation=impl_name
        )
    ), swa_flops
    yield "jax.nn.dpa_causal", impl_name, jax.jit(
        lambda q, k, v: jax.nn.dot_product_attention(q, k, v, is_causal=True, implementation=impl_name)
    ), 2 * heads * t * t * dim


def _decode_ms(t, heads, dim, window, dtype, repeats):
    """One RAttention decode step after a cache that has consumed t positions."""
    rng = np.random.default_rng(0)
    cache = kernels.rattention_cache_init(1, window, heads, heads, dim, dtype)
    cache = cache._replace(pos=jnp.int32(t))
    x = jnp.asarray(rng.standard_normal((1, heads, dim)), dtype)
    step = jax.jit(lambda c: kernels.rattention_decode_step(x, x, x, x, x, c, window=window))
    return _time_ms(step, cache, repeats=repeats)


@user_errors_exit_2
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="4096,16384,65536")
    parser.add_argument("--impls", default="xla,pallas")
    parser.add_argument("--heads", type=int, default=16)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--window", type=int, default=512)
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-full", action="store_true", help="skip full causal attention (slow on CPU)")
    parser.add_argument("--out", default="bench/results", help="folder of kernels-<backend>.json")
    add_overwrite_flag(parser)
    args = parser.parse_args(argv)
    lengths = parse_lengths(args.lengths)
    impls = split_list(args.impls)
    for impl in impls:
        if impl not in kernels.IMPLS:
            raise UserError(f"--impls: {impl!r} is not one of {', '.join(kernels.IMPLS)}")
    backend = jax.default_backend()
    path = result_path(f"{args.out}/kernels-{backend}.json", args.overwrite)
    dtype = jnp.dtype(args.dtype)
    rows = []
    print(f"backend={backend} device={jax.devices()[0].device_kind} H={args.heads} D={args.dim} W={args.window} {args.dtype}")
    print(f"{'op':<20}{'impl':<10}{'T':>8}{'ms':>12}{'TFLOP/s':>10}")
    for t in lengths:
        rng = np.random.default_rng(t)
        q, k, v = (jnp.asarray(rng.standard_normal((1, t, args.heads, args.dim)), dtype) for _ in range(3))
        for op, impl, fn, flops in _cases(t, args.heads, args.dim, args.window, impls):
            if args.skip_full and op == "jax.nn.dpa_causal":
                continue
            try:
                ms = _time_ms(fn, q, k, v, repeats=args.repeats)
            except ValueError as e:  # an impl that declines this backend or shape
                print(f"{op:<20}{impl:<10}{t:>8}  declined: {e}")
                continue
            rows.append(dict(op=op, impl=impl, T=t, ms=ms, tflops=flops / ms / 1e9))
            print(f"{op:<20}{impl:<10}{t:>8}{ms:>12.3f}{flops / ms / 1e9:>10.3f}")
        ms = _decode_ms(t, args.heads, args.dim, args.window, dtype, args.repeats)
        rows.append(dict(op="rattention_decode_step", impl="fused", T=t, ms=ms, tflops=None))
        print(f"{'decode_step':<20}{'fused':<10}{t:>8}{ms:>12.3f}{'':>10}")
    result = dict(
        backend=backend, device=jax.devices()[0].device_kind, jax=jax.__version__, heads=args.heads,
        dim=args.dim, window=args.window, dtype=args.dtype, rows=rows,
    )
    atomic_write_json(path, result)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
