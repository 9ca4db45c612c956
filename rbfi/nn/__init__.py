"""RBFI and RBF units (dense and convolutional), and l_inf-distance neurons: the modules, their
functional twins, modes, and the training losses."""

from rbfi.nn.functional import (
    PseudoExpNeg,
    PseudoMax,
    exp_neg,
    linf_dist,
    linf_dist_interval,
    max_last,
    mean_shift,
    rbfi,
    rbfi_conv2d,
    rbfi_conv2d_interval,
    rbfi_interval,
)
from rbfi.nn.linf import DistanceLogits, LinfDist, Standardize
from rbfi.nn.modes import (
    attach_projection,
    has_rbfi,
    linf_layers,
    project_,
    pseudogradient_mode,
    rbfi_layers,
    set_p,
    set_pseudogradient,
)
from rbfi.nn.modules import RBFI, RBFIConv2d

__all__ = [
    "RBFI",
    "DistanceLogits",
    "LinfDist",
    "RBFIConv2d",
    "Standardize",
    "linf_dist",
    "linf_dist_interval",
    "linf_layers",
    "mean_shift",
    "set_p",
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
