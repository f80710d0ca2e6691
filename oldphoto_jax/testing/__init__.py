"""Support for tests and benchmarks (small random-weight models). Never product weights."""
