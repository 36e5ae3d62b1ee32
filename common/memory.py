"""This process's resident memory: its peak since start or since the last reset_peak_rss() (Linux).

The peak is the process's VmHWM, which belongs to its own memory map: unlike getrusage's ru_maxrss, it
does not count the RSS of the parent it was forked from.
"""

from __future__ import annotations

import sys
from pathlib import Path


def _status_kib(field: str) -> int:
    line = next(line for line in open("/proc/self/status") if line.startswith(f"{field}:"))
    return int(line.split()[1])


def peak_rss() -> int:
    """Peak resident bytes (VmHWM): since the process started, or since reset_peak_rss(). Without procfs
    (macOS), getrusage's lifetime peak."""
    try:
        return _status_kib("VmHWM") * 1024
    except FileNotFoundError:
        import resource

        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return maxrss if sys.platform == "darwin" else maxrss * 1024  # bytes on macOS, KiB elsewhere


def current_rss() -> int:
    """Resident bytes now (VmRSS)."""
    return _status_kib("VmRSS") * 1024


def reset_peak_rss() -> None:
    """Sets the peak to the current RSS (writes 5 to /proc/self/clear_refs, Linux 4.0+), so that the next
    peak_rss() measures only what follows."""
    Path("/proc/self/clear_refs").write_text("5")
