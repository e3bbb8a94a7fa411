"""Benchmarks: run side by side with their baselines (see docs/performance.md)."""
