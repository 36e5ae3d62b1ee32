"""Full causal attention of "global" layers: reference, blocked plain-JAX and cuDNN forms of one definition."""
