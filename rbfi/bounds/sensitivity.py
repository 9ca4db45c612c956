"""Sensitivity bounds (paper, eq. 4-8), differentiable so they can serve as regularisers.

The sensitivity of f at x (eq. 4) is sup |f(x') - f(x)| / delta over ||x' - x||_inf <= delta.

Per unit (eq. 5, 6):  ReLU ||w||_1,  sigmoid ||w||_1 / 4,
                      RBFI sqrt(2/e) max_i u_i,  RBF (p = 2) sqrt(2/e) ||u||_2.
Per network (eq. 7, 8), with s^0_i = 1:
    ReLU     s^k_j = sum_i |W^k_ji| s^(k-1)_i          (sigmoid: times 1/4 per layer)
    RBFI     s^k_j = sqrt(2/e) max_i (u^k_ji s^(k-1)_i)
and the bound is max_j s^K_j. sqrt(2/e) is the largest slope of t -> exp(-t^2).
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from rbfi.nn import RBFI

GAUSSIAN_MAX_SLOPE = math.sqrt(2.0 / math.e)  # max_t |d/dt exp(-t^2)|


def unit_sensitivities(layer: nn.Module) -> Tensor:
    """Eq. (5)/(6) for every unit of ``layer`` (RBFI, or nn.Linear read as ReLU units)."""
    if isinstance(layer, RBFI):
        if layer.norm == "inf":
            return GAUSSIAN_MAX_SLOPE * layer.u.amax(dim=1)
        return GAUSSIAN_MAX_SLOPE * layer.u.norm(dim=1)
    if isinstance(layer, nn.Linear):
        return layer.weight.abs().sum(dim=1)
    raise TypeError(f"no sensitivity formula for {type(layer).__name__}")


def network_sensitivity(model: nn.Module) -> Tensor:
    """Upper bound (eq. 7 or 8) on the l_inf sensitivity of ``model``'s outputs (a scalar).

    Walks ``model``'s modules in order: RBFI layers use eq. (8); nn.Linear layers eq. (7);
    each nn.Sigmoid multiplies by 1/4; ReLU leaves the bound unchanged.
    """
    s: Tensor | None = None
    for module in model.modules():
        if isinstance(module, RBFI):
            s_in = module.u.new_ones(module.in_features) if s is None else s
            if module.norm == "inf":
                s = GAUSSIAN_MAX_SLOPE * (module.u * s_in).amax(dim=1)
            else:  # l2: |u (x' - x)|_2 <= ||u s||_2
                s = GAUSSIAN_MAX_SLOPE * (module.u * s_in).norm(dim=1)
        elif isinstance(module, nn.Linear):
            s_in = module.weight.new_ones(module.in_features) if s is None else s
            s = module.weight.abs() @ s_in
        elif isinstance(module, nn.Sigmoid) and s is not None:
            s = s / 4.0
    if s is None:
        raise TypeError("model has no RBFI or Linear layers")
    return s.amax()
