"""Task distributions (benchmarks) and the vectorised trial environments they build."""
