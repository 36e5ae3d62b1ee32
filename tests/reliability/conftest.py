"""Fixtures of the fault-injection suite: a tiny checkpoint and a tmpfs where mounting works."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from runners.init import init_checkpoint


@pytest.fixture(scope="session")
def ckpt(tmp_path_factory) -> Path:
    return Path(init_checkpoint("tiny-rattention", str(tmp_path_factory.mktemp("ckpt") / "tiny-rattention"), seed=5))


@pytest.fixture
def tmpfs(tmp_path):
    """mount(size) -> a fresh tmpfs of `size` bytes (unmounted after the test); skips where mounting is
    impossible (no root or CAP_SYS_ADMIN, e.g. most CI containers)."""
    mounts = []

    def mount(size: int) -> Path:
        point = tmp_path / f"tmpfs-{uuid.uuid4().hex[:6]}"
        point.mkdir()
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip() or 'mount failed'}); needs root")
        mounts.append(point)
        return point

    yield mount
    for point in mounts:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)
