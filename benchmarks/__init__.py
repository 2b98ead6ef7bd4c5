"""Benchmark scripts: `python -m benchmarks.<name>` prints measured figures (speed and quality targets)."""
