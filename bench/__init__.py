"""Benchmarks writing JSON to bench/results/: `python -m bench.NAME --out FILE` (`./gs bench` runs them all)."""
