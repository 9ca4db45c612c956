"""Bounds on what a perturbation can do: sensitivity bounds (eq. 4-8), interval bound
propagation (one rule per layer type) and per-example certificates."""

from rbfi.bounds.certify import (
    Certificate,
    certify,
    clean_margins,
    lipschitz_constant,
    margin_bounds,
)
from rbfi.bounds.interval import RULES, input_box, interval_bounds, rule, unsupported
from rbfi.bounds.sensitivity import GAUSSIAN_MAX_SLOPE, network_sensitivity, unit_sensitivities

__all__ = [
    "GAUSSIAN_MAX_SLOPE",
    "RULES",
    "Certificate",
    "certify",
    "clean_margins",
    "input_box",
    "interval_bounds",
    "lipschitz_constant",
    "margin_bounds",
    "network_sensitivity",
    "rule",
    "unit_sensitivities",
    "unsupported",
]
