"""Benchmarks: how close each method is to the forward-pass limit, measured in one run."""
