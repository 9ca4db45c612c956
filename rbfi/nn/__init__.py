"""RBFI and RBF units: the dense and convolutional modules, their functional twins, modes,
and the training losses."""

from rbfi.nn.functional import (
    PseudoExpNeg,
    PseudoMax,
    exp_neg,
    max_last,
    rbfi,
    rbfi_conv2d,
    rbfi_conv2d_interval,
    rbfi_interval,
)
from rbfi.nn.modes import (
    attach_projection,
    has_rbfi,
    project_,
    pseudogradient_mode,
    rbfi_layers,
    set_pseudogradient,
)
from rbfi.nn.modules import RBFI, RBFIConv2d

__all__ = [
    "RBFI",
    "RBFIConv2d",
    "PseudoExpNeg",
    "PseudoMax",
    "attach_projection",
    "exp_neg",
    "has_rbfi",
    "max_last",
    "project_",
    "pseudogradient_mode",
    "rbfi",
    "rbfi_conv2d",
    "rbfi_conv2d_interval",
    "rbfi_interval",
    "rbfi_layers",
    "set_pseudogradient",
]
