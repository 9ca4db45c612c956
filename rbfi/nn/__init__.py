"""RBFI and RBF units: modules, their functional twins and autograd pieces."""

from rbfi.nn.functional import PseudoExpNeg, PseudoMax, exp_neg, max_last, rbfi
from rbfi.nn.modules import (
    RBFI,
    attach_projection,
    project_,
    rbfi_layers,
    set_pseudogradient,
)

__all__ = [
    "RBFI",
    "PseudoExpNeg",
    "PseudoMax",
    "attach_projection",
    "exp_neg",
    "max_last",
    "project_",
    "rbfi",
    "rbfi_layers",
    "set_pseudogradient",
]
