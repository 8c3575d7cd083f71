"""Benchmarks of the stage (docs/BENCHMARKS.md). Run from a source checkout: ``python -m bench --help``.

Not part of the shipped package or the images.
"""
