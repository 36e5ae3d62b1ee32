"""Sliding-window attention (SWA): reference, blocked plain-JAX and Pallas implementations of one core."""
