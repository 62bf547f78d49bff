"""Benchmarks: peers measured side by side in the same run (ratios and peak memory)."""
