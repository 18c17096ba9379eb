"""Synthetic customers and scratch project copies for the tests and the benchmarks."""
