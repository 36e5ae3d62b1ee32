"""Shared test helpers: CPU-only JAX with float32 matmuls, and assert_close."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402


def assert_close(name: str, ref, out, rtol: float, atol: float | None = None) -> None:
    """Fails with relative RMS and max abs error when `out` differs from `ref` (or holds a NaN).

    rtol bounds the relative RMS error ||out - ref|| / ||ref||; atol (default rtol) bounds the max abs
    error relative to max |ref|.
    """
    ref = np.asarray(ref, dtype=np.float64)
    out = np.asarray(out, dtype=np.float64)
    assert ref.shape == out.shape, f"{name}: shape {out.shape} != reference {ref.shape}"
    assert not np.isnan(out).any(), f"{name}: output has NaN"
    scale = max(float(np.sqrt(np.mean(ref**2))), 1e-12)
    rel_rms = float(np.sqrt(np.mean((out - ref) ** 2))) / scale
    max_abs = float(np.max(np.abs(out - ref))) if out.size else 0.0
    max_ref = max(float(np.max(np.abs(ref))) if ref.size else 0.0, 1e-12)
    atol = rtol if atol is None else atol
    assert rel_rms <= rtol and max_abs <= atol * max_ref, (
        f"{name}: rel RMS {rel_rms:.2e} (limit {rtol:.0e}), max abs {max_abs:.2e} "
        f"= {max_abs / max_ref:.2e} of max|ref| (limit {atol:.0e})"
    )
