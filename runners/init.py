"""A randomly initialized checkpoint of a preset (model_adapters/presets.py).

    python -m runners.init --preset tiny-rattention --out DIR [--seed S]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from flax import nnx

from common.cli import user_errors_exit_2
from model_adapters.checkpoint import save
from model_adapters.model import RAttentionLM
from model_adapters.presets import PRESETS, preset_config


def init_checkpoint(preset: str, out: str, seed: int = 0) -> Path:
    """Builds the preset's model from `seed` and saves it to `out`; returns the checkpoint path."""
    model = RAttentionLM(preset_config(preset), rngs=nnx.Rngs(seed))
    return save(model, out)


@user_errors_exit_2
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runners.init", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", required=True, choices=sorted(PRESETS))
    parser.add_argument("--out", required=True, help="checkpoint directory to write")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    path = init_checkpoint(args.preset, args.out, args.seed)
    print(f"wrote {args.preset} checkpoint to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
