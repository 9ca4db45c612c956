"""RBFI and RBF units: the module, its functional twin, modes, and the training losses."""

from rbfi.nn.functional import PseudoExpNeg, PseudoMax, exp_neg, max_last, rbfi, rbfi_interval
from rbfi.nn.modes import (
    attach_projection,
    has_rbfi,
    project_,
    pseudogradient_mode,
    rbfi_layers,
    set_pseudogradient,
)
from rbfi.nn.modules import RBFI

__all__ = [
    "RBFI",
    "PseudoExpNeg",
    "PseudoMax",
    "attach_projection",
    "exp_neg",
    "has_rbfi",
    "max_last",
    "project_",
    "pseudogradient_mode",
    "rbfi",
    "rbfi_interval",
    "rbfi_layers",
    "set_pseudogradient",
]
