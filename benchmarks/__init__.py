"""Speed and accuracy benchmarks; `make bench` runs them and records BENCHMARKS.md."""
