"""Utilities every package shares, with no dependency on any of them: errors, atomic files, CLI helpers."""
