"""Synthetic Plus Platform exports for the demo, the tests and the benchmarks."""

from plus_analytics.generate.exports import generate

__all__ = ["generate"]
