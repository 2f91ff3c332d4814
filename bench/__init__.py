"""Load and latency benchmarks; `python -m bench.run` runs them (see bench/README.md)."""
