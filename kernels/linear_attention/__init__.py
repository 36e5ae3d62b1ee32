"""Residual linear attention (RLA): reference, chunked plain-JAX and Pallas implementations of one core."""
