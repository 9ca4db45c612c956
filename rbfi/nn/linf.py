"""l_inf-distance neurons as ``torch.nn`` modules (Zhang et al. 2021, 2022; issue 26): state
here, math in :mod:`rbfi.nn.functional`.

- :class:`LinfDist`: y_j = ||x - w_j||_p - mean_j + b_j, p = inf for the net itself (1-Lipschitz
  in l_inf), finite p for the l_p-relaxation of training; optional mean shift and bias.
- :class:`Standardize`: x -> (x - mean) / std, the papers' input normalisation.
- :class:`DistanceLogits`: logits = -scale y, the output layer's distances turned into class
  scores (the smallest distance wins).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

import rbfi.nn.functional as F
from rbfi.nn.modules import input_rows
from rbfi.ops import check_p

INIT_STD = 1.0  # the papers' code: w ~ N(0, 1) (on standardised inputs)
IDENTITY_VALUE = 10.0  # the papers' code: w[j, j mod n] = -10 where n <= out_features
MEAN_SHIFT_MOMENTUM = 0.1


class LinfDist(nn.Module):
    """A layer of l_inf-distance neurons: y_j = ||x - w_j||_p (- running or batch mean) + b_j.

    Parameters ``w`` (out_features, in_features) and, with ``bias``, ``bias`` (out_features,).
    With ``mean_shift`` the buffer ``running_mean`` (out_features,) holds the running mean of
    the distances: in training the batch mean is subtracted (and the running mean updated with
    ``momentum``), in eval the running mean (batch normalisation without scaling).

    ``p`` is a plain attribute, settable at run time (a number >= 1 or inf, checked): training
    anneals it from 8 to inf; at inf the layer is the l_inf-distance neuron, 1-Lipschitz with
    respect to the l_inf norm (the mean shift and bias are constants in eval). Gradients are
    always the true ones (at inf: the max's subgradient).

    Initialisation (:meth:`reset_parameters`): w ~ N(0, ``init_std``^2); with ``identity`` > 0
    and n = in_features <= out_features, w[j, j mod n] = -identity (the papers' "identity
    initialisation": for inputs much smaller than ``identity``, unit j outputs
    x_(j mod n) + identity, a copy of one input); with n > out_features the papers leave w
    random, and ``identity_spread`` (this project's extension, for layers narrower than their
    input) sets w[j, floor(j n / out_features)] = -identity instead: unit j copies one of
    out_features evenly spaced inputs; bias 0; running mean 0.

    Shape:
        - Input: (*, in_features), any number of leading dimensions (like ``nn.Linear``).
        - Output: (*, out_features).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool = True,
        mean_shift: bool = False,
        identity: float = 0.0,
        identity_spread: bool = False,
        init_std: float = INIT_STD,
        p: float = math.inf,
        momentum: float = MEAN_SHIFT_MOMENTUM,
        backend: str = "auto",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(
                f"in_features and out_features must be >= 1, got {in_features}, {out_features}"
            )
        identity, init_std, momentum = float(identity), float(init_std), float(momentum)
        if not (math.isfinite(identity) and identity >= 0):
            raise ValueError(f"identity must be a finite number >= 0, got {identity!r}")
        if not (math.isfinite(init_std) and init_std >= 0):
            raise ValueError(f"init_std must be a finite number >= 0, got {init_std!r}")
        if not (0.0 < momentum <= 1.0):
            raise ValueError(f"momentum must be in (0, 1], got {momentum!r}")
        factory = {"device": device, "dtype": dtype}
        self.in_features = in_features
        self.out_features = out_features
        self.identity = identity
        self.identity_spread = bool(identity_spread)
        self.init_std = init_std
        self.momentum = momentum
        self.backend = backend
        self.p = p
        self.w = nn.Parameter(torch.empty(out_features, in_features, **factory))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features, **factory))
        else:
            self.register_parameter("bias", None)
        if mean_shift:
            self.register_buffer("running_mean", torch.zeros(out_features, **factory))
        else:
            self.register_buffer("running_mean", None)
        self.reset_parameters()

    @property
    def p(self) -> float:
        """The norm's exponent: a number >= 1, or inf (the l_inf-distance neuron)."""
        return self._p

    @p.setter
    def p(self, value: float) -> None:
        self._p = check_p(value)

    @property
    def mean_shift(self) -> bool:
        return self.running_mean is not None

    def reset_parameters(self) -> None:
        """w ~ N(0, init_std^2), identity entries if asked for, bias and running mean 0."""
        with torch.no_grad():
            if self.init_std > 0:
                self.w.normal_(0.0, self.init_std)
            else:
                self.w.zero_()
            rows = torch.arange(self.out_features, device=self.w.device)
            if self.identity > 0 and self.in_features <= self.out_features:
                self.w[rows, rows % self.in_features] = -self.identity
            elif self.identity > 0 and self.identity_spread:
                self.w[rows, rows * self.in_features // self.out_features] = -self.identity
            if self.bias is not None:
                self.bias.zero_()
            if self.running_mean is not None:
                self.running_mean.zero_()

    def forward(self, x: Tensor) -> Tensor:
        """||x - w_j||_p, mean-shifted (batch mean in training, running mean in eval), + b."""
        y = F.linf_dist(self._flatten(x), self.w, p=self.p, backend=self.backend)
        if self.running_mean is not None:
            y = F.mean_shift(y, self.running_mean, training=self.training, momentum=self.momentum)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], self.out_features)

    def interval(self, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
        """The exact output range of every unit over the input box [lo, hi] (both
        (*, in_features), lo <= hi), at p = inf and, with a mean shift, in eval mode (its
        running mean a constant); see :func:`rbfi.nn.functional.linf_dist_interval`."""
        if lo.shape != hi.shape:
            raise ValueError(f"lo and hi differ in shape: {tuple(lo.shape)}, {tuple(hi.shape)}")
        if not math.isinf(self.p):
            raise ValueError(
                f"interval bounds of LinfDist need p = inf (the l_inf-distance neuron), "
                f"the layer has p = {self.p:g}"
            )
        if self.running_mean is not None and self.training:
            raise ValueError(
                "interval bounds of a mean-shifted LinfDist need eval mode (in training the "
                "batch mean depends on the inputs)"
            )
        y_lo, y_hi = F.linf_dist_interval(
            self._flatten(lo), self._flatten(hi), self.w, backend=self.backend
        )
        shift = 0.0
        if self.running_mean is not None:
            shift = -self.running_mean
        if self.bias is not None:
            shift = shift + self.bias
        shape = (*lo.shape[:-1], self.out_features)
        return (y_lo + shift).reshape(shape), (y_hi + shift).reshape(shape)

    def _flatten(self, x: Tensor) -> Tensor:
        return input_rows(x, self.in_features, "LinfDist")

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, p={self.p:g}, "
            f"bias={self.bias is not None}, mean_shift={self.mean_shift}, "
            f"identity={self.identity:g}"
            + (", identity_spread=True" if self.identity_spread else "")
        )


class Standardize(nn.Module):
    """x -> (x - mean) / std with constants ``mean`` and ``std`` > 0 (not state: they come
    from the model's config). Monotone and (1 / std)-Lipschitz."""

    def __init__(self, mean: float, std: float) -> None:
        super().__init__()
        mean, std = float(mean), float(std)
        if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
            raise ValueError(f"Standardize needs a finite mean and std > 0, got {mean}, {std}")
        self.mean, self.std = mean, std

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={self.mean:g}, std={self.std:g}"


class DistanceLogits(nn.Module):
    """logits = -scale y: the output layer's distances as class scores (the nearest class
    wins). ``scale`` is a parameter of shape (1,), trained when ``learnable`` (the learnable
    logit scale of Zhang et al. 2022, which only the cross-entropy term feels), else fixed."""

    def __init__(self, learnable: bool = True, init: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.full((1,), float(init)), requires_grad=learnable)

    def forward(self, y: Tensor) -> Tensor:
        return -self.scale * y

    def extra_repr(self) -> str:
        return f"learnable={self.scale.requires_grad}"


__all__ = ["DistanceLogits", "LinfDist", "Standardize"]
