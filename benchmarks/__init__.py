"""Speed and accuracy benchmarks; results are recorded in BENCHMARKS.md."""
