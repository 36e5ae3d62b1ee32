"""Evaluation as a library: the run directory (run_dir), predictors and the Evaluator loop.

`evaluation.run_dir` imports no JAX (reports read runs through it); the predictors load JAX lazily.
"""
