"""Experiments built on the library: robustness evaluation (``robustness``)."""
