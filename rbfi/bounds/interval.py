"""Interval bound propagation (IBP): for inputs anywhere in a box [lo, hi], bounds on every
layer's outputs, one rule per layer type.

    lo, hi = interval_bounds(model, x_lo, x_hi)       # bounds of the class scores

Rules (each sound; the RBFI and RBF rules are exact per unit):
- :class:`~rbfi.nn.RBFI`: per unit, z's range over a box is [max_i min s_i, max_i max s_i]
  (inf norm) or [sum_i min s_i, sum_i max s_i] (l2), each s_i = (u_i (x_i - w_i))^2 depending
  on x_i alone; y = exp(-z) is decreasing, 1 - exp(-z) increasing (paper eq. 2-3; the rule of
  Agrawal, de Alfaro, Helmbold 2019; derivation in docs/certification.md).
- :class:`~rbfi.nn.LinfDist` (p = inf, eval mode): per unit, ||x - w||_inf ranges over
  [max_i dist(w_i, [lo_i, hi_i]), max_i max(|lo_i - w_i|, |hi_i - w_i|)] (exact: the RBFI
  interval kernel with u = 1), then the constant mean shift and bias.
- :class:`~rbfi.nn.Standardize` ((x - mean) / std, std > 0) and :class:`~rbfi.nn.DistanceLogits`
  (-scale y): monotone affine maps, applied to both ends (swapped where decreasing).
- :class:`~rbfi.nn.RBFIConv2d`: every output is one dense unit on one patch, so its range is
  the dense rule on the patch view of lo and hi (exact per unit; excluded padding stays
  excluded, docs/conv.md).
- ``nn.Linear``: centre and radius, W mid + b -+ |W| rad; ``nn.Conv2d`` the same with the
  convolution (zero padding: padded pixels are the point 0, radius 0).
- ``nn.ReLU``, ``nn.Sigmoid``: monotone, applied to both ends.
- containers (``nn.Sequential``, the classifiers of :mod:`rbfi.models`): through the children.

A new layer type is one more function registered with :func:`rule`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from rbfi.models.nets import Classifier
from rbfi.nn import RBFI, DistanceLogits, LinfDist, RBFIConv2d, Standardize

IntervalRule = Callable[[nn.Module, Tensor, Tensor], tuple[Tensor, Tensor]]
RULES: dict[type, IntervalRule] = {}


def rule(*layer_types: type) -> Callable[[IntervalRule], IntervalRule]:
    """Register the decorated function as the interval rule of ``layer_types``."""

    def register(fn: IntervalRule) -> IntervalRule:
        for layer_type in layer_types:
            RULES[layer_type] = fn
        return fn

    return register


def _rule_of(module: nn.Module) -> IntervalRule | None:
    return next((RULES[cls] for cls in type(module).__mro__ if cls in RULES), None)


def interval_bounds(module: nn.Module, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    """Bounds on ``module``'s outputs for every input x with lo <= x <= hi (elementwise)."""
    fn = _rule_of(module)
    if fn is None:
        raise TypeError(f"no interval rule for {type(module).__name__} (see rbfi.bounds.interval)")
    return fn(module, lo, hi)


def unsupported(module: nn.Module) -> str | None:
    """None when every layer of ``module`` has an interval rule, else the first that has none.

    Containers count through their children (Sequential, the classifiers of rbfi.models)."""
    if _rule_of(module) is None:
        return type(module).__name__
    if isinstance(module, (nn.Sequential, Classifier)):
        for child in module.children():
            missing = unsupported(child)
            if missing:
                return missing
    return None


@rule(RBFI)
def _rbfi(layer: RBFI, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    return layer.interval(lo, hi)


@rule(LinfDist)
def _linf_dist(layer: LinfDist, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    return layer.interval(lo, hi)


@rule(Standardize)
def _standardize(layer: Standardize, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    return layer(lo), layer(hi)


@rule(DistanceLogits)
def _distance_logits(layer: DistanceLogits, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    a, b = layer(lo), layer(hi)  # -scale y: decreasing in y when scale > 0
    return torch.minimum(a, b), torch.maximum(a, b)


@rule(RBFIConv2d)
def _rbfi_conv(layer: RBFIConv2d, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    return layer.interval(lo, hi)


@rule(nn.Conv2d)
def _conv(layer: nn.Conv2d, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    if layer.padding_mode != "zeros":
        raise TypeError(f"no interval rule for Conv2d with padding_mode={layer.padding_mode!r}")
    mid, rad = (hi + lo) / 2, (hi - lo) / 2
    centre = layer._conv_forward(mid, layer.weight, layer.bias)
    radius = layer._conv_forward(rad, layer.weight.abs(), None)
    return centre - radius, centre + radius


@rule(nn.Linear)
def _linear(layer: nn.Linear, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    mid, rad = (hi + lo) / 2, (hi - lo) / 2
    centre = nn.functional.linear(mid, layer.weight, layer.bias)
    radius = nn.functional.linear(rad, layer.weight.abs())
    return centre - radius, centre + radius


@rule(nn.ReLU)
def _relu(layer: nn.Module, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    return torch.relu(lo), torch.relu(hi)


@rule(nn.Sigmoid)
def _sigmoid(layer: nn.Module, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    return torch.sigmoid(lo), torch.sigmoid(hi)


@rule(nn.Identity, nn.Dropout)
def _identity(layer: nn.Module, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    return lo, hi


@rule(nn.Flatten)
def _flatten(layer: nn.Flatten, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    return layer(lo), layer(hi)


@rule(nn.Sequential)
def _sequential(layer: nn.Sequential, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    for child in layer:
        lo, hi = interval_bounds(child, lo, hi)
    return lo, hi


@rule(Classifier)
def _classifier(model: Classifier, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    return interval_bounds(model.body, model.flatten_input(lo), model.flatten_input(hi))


def input_box(x: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """The l_inf ball of radius ``eps`` around x intersected with the pixel range [0, 1]."""
    return (x - eps).clamp(0.0, 1.0), (x + eps).clamp(0.0, 1.0)
