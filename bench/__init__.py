"""Benchmarks (scripts that print tables); see bench/README or each module."""
