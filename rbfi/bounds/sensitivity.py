"""Sensitivity bounds (paper, eq. 4-8), differentiable so they can serve as regularisers.

The sensitivity of f at x (eq. 4) is sup |f(x') - f(x)| / delta over ||x' - x||_inf <= delta.

Per unit (eq. 5, 6):  ReLU ||w||_1,  sigmoid ||w||_1 / 4,
                      RBFI sqrt(2/e) max_i u_i,  RBF (p = 2) sqrt(2/e) ||u||_2.
Per network (eq. 7, 8), with s^0_i = 1:
    ReLU     s^k_j = sum_i |W^k_ji| s^(k-1)_i          (sigmoid: times 1/4 per layer)
    RBFI     s^k_j = sqrt(2/e) max_i (u^k_ji s^(k-1)_i)
and the bound is max_j s^K_j. sqrt(2/e) is the largest slope of t -> exp(-t^2).

Conv layers (docs/conv.md): every output is one unit on one patch, so eq. (7) / (8) hold per
output position with i running over the patch: s^k is then a map (C, H, W), propagated by the
convolution of s^(k-1) with |W| (ReLU / sigmoid conv) or by sqrt(2/e) max over the patch of
u s^(k-1) (RBFI conv; l2: the norm). Padded pixels are constants (zero padding of a linear
conv, a ``pad_value``) or excluded (RBFI conv, the default): either way they contribute 0.
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from rbfi.nn import RBFI, RBFIConv2d

GAUSSIAN_MAX_SLOPE = math.sqrt(2.0 / math.e)  # max_t |d/dt exp(-t^2)|


def unit_sensitivities(layer: nn.Module) -> Tensor:
    """Eq. (5)/(6) for every unit of ``layer`` (RBFI or RBFIConv2d, or nn.Linear / nn.Conv2d
    read as ReLU units); a conv unit is one unit on its window."""
    if isinstance(layer, RBFI):
        if layer.norm == "inf":
            return GAUSSIAN_MAX_SLOPE * layer.u.amax(dim=1)
        return GAUSSIAN_MAX_SLOPE * layer.u.norm(dim=1)
    if isinstance(layer, (nn.Linear, nn.Conv2d)):
        return layer.weight.abs().flatten(1).sum(dim=1)
    raise TypeError(f"no sensitivity formula for {type(layer).__name__}")


def _rbfi_conv(layer: RBFIConv2d, s_in: Tensor) -> Tensor:
    """Eq. (8) at every output position: the (O, H', W') map of sqrt(2/e) max_i (u_i s_i)."""
    patches = nn.functional.unfold(
        s_in[None], layer.kernel_size, padding=layer.padding, stride=layer.stride
    )[0].T  # (P, C k k); padded positions hold 0
    scaled = layer.u[None] * patches[:, None, :]  # (P, O, C k k): one map, not a batch
    s = scaled.amax(dim=-1) if layer.norm == "inf" else scaled.norm(dim=-1)
    return GAUSSIAN_MAX_SLOPE * s.T.reshape(layer.out_channels, *layer.output_size(*s_in.shape[1:]))


def _input_shape(model: nn.Module, input_shape: tuple[int, ...] | None) -> tuple[int, ...]:
    config = getattr(model, "config", None)
    if input_shape is None and config is not None and getattr(config, "is_conv", False):
        input_shape = config.input_shape
    if input_shape is None:
        raise TypeError(
            "the sensitivity of a conv layer needs the input image shape: pass input_shape=(C, "
            "H, W) or use a model built by rbfi.build_model"
        )
    return tuple(input_shape)


def network_sensitivity(model: nn.Module, input_shape: tuple[int, ...] | None = None) -> Tensor:
    """Upper bound (eq. 7 or 8) on the l_inf sensitivity of ``model``'s outputs (a scalar).

    Walks ``model``'s modules in order: RBFI layers use eq. (8); nn.Linear layers eq. (7);
    RBFIConv2d and nn.Conv2d the same per output position (module docstring; their input
    image shape comes from ``input_shape`` or the model's config); nn.Flatten flattens the map;
    each nn.Sigmoid multiplies by 1/4; ReLU leaves the bound unchanged.
    """
    s: Tensor | None = None
    for module in model.modules():
        if isinstance(module, RBFIConv2d):
            s_in = module.u.new_ones(_input_shape(model, input_shape)) if s is None else s
            s = _rbfi_conv(module, s_in)
        elif isinstance(module, RBFI):
            s_in = module.u.new_ones(module.in_features) if s is None else s
            if module.norm == "inf":
                s = GAUSSIAN_MAX_SLOPE * (module.u * s_in).amax(dim=1)
            else:  # l2: |u (x' - x)|_2 <= ||u s||_2
                s = GAUSSIAN_MAX_SLOPE * (module.u * s_in).norm(dim=1)
        elif isinstance(module, nn.Conv2d):
            s_in = module.weight.new_ones(_input_shape(model, input_shape)) if s is None else s
            s = module._conv_forward(s_in[None], module.weight.abs(), None)[0]
        elif isinstance(module, nn.Linear):
            s_in = module.weight.new_ones(module.in_features) if s is None else s
            s = module.weight.abs() @ s_in
        elif isinstance(module, nn.Flatten) and s is not None:
            s = s.reshape(-1)
        elif isinstance(module, nn.Sigmoid) and s is not None:
            s = s / 4.0
    if s is None:
        raise TypeError("model has no RBFI or Linear layers")
    return s.amax()
