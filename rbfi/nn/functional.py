"""Functional twins of the RBFI / RBF units (de Alfaro 2018, eq. 1-3, 9-11).

Notation, for one unit with centre ``w`` and scales ``u`` (both in R^n) and input ``x``:

    s_i = (u_i (x_i - w_i))^2                  squared scaled distances
    z   = max_i s_i                            (p = inf, RBFI)  or  sum_i s_i  (p = 2, RBF)
    y   = exp(-z)                              And unit, eq. (2)
    y   = 1 - exp(-z)                          Or unit,  eq. (3)

Training uses *pseudogradients*: in backward, the derivative of ``exp(-z)`` is replaced by
``-(1 + z)^-alpha`` (eq. 9, alpha = 1/2) and the derivative of ``max_i s_i`` with respect to
``s_i`` by ``exp(beta (s_i - max_j s_j))`` (eq. 11, beta = 1). With ``pseudogradient=False``
the true derivatives are used: ``-exp(-z)`` and the max's subgradient, 1 at the arg-max (eq. 10).

:func:`rbfi_interval` gives, for inputs known only to lie in a box [lo, hi], the exact range of
every unit's output: the building block of interval bound propagation (:mod:`rbfi.bounds`).

The l_inf-distance neuron of RBFI's closest modern relative (Zhang et al. 2021, 2022; issue 26),
y = ||x - w||_p + b with p annealed to inf during training: :func:`linf_dist`,
:func:`linf_dist_interval` and its mean-shift normalisation :func:`mean_shift`
(docs/linf-dist.md).
"""

from __future__ import annotations

import torch
from torch import Tensor

from rbfi.ops import (
    PSEUDO_EXP_ALPHA,
    PSEUDO_MAX_BETA,
    PseudoExpNeg,
    PseudoMax,
    exp_neg,
    lp_distance,
    lp_distance_interval,
    max_last,
    scaled_sqdist_max,
    scaled_sqdist_max_interval,
)
from rbfi.ops.reference import interval_offsets

__all__ = [
    "PSEUDO_EXP_ALPHA",
    "PSEUDO_MAX_BETA",
    "PseudoExpNeg",
    "PseudoMax",
    "exp_neg",
    "linf_dist",
    "linf_dist_interval",
    "max_last",
    "mean_shift",
    "rbfi",
    "rbfi_interval",
    "scaled_sqdist_sum",
    "scaled_sqdist_sum_interval",
]

NORMS = ("inf", "l2")


def scaled_sqdist_sum(x: Tensor, w: Tensor, u: Tensor) -> Tensor:
    """z[b, j] = sum_i (u[j, i] (x[b, i] - w[j, i]))^2 (RBF, p = 2), by the matrix expansion

    z = x^2 (u^2)^T - 2 x (u^2 w)^T + sum_i u^2 w^2, clamped at 0 against rounding.
    Never materialises (B, M, N); gradients are the true ones, through autograd.
    """
    u2 = u.square()
    z = x.square() @ u2.T - 2.0 * (x @ (u2 * w).T) + (u2 * w.square()).sum(dim=1)
    return z.clamp_min(0.0)


def scaled_sqdist_sum_interval(
    lo: Tensor, hi: Tensor, w: Tensor, u: Tensor
) -> tuple[Tensor, Tensor]:
    """The exact range of z = sum_i (u_i (x_i - w_i))^2 over the box lo <= x <= hi: each term
    depends on x_i alone, so z_lo sums the terms' minima (nearest points) and z_hi their maxima
    (farthest points). Materialises (B, M, N); true gradients through autograd."""
    near, far = interval_offsets(lo, hi, w)
    return (u * near).square().sum(dim=-1), (u * far).square().sum(dim=-1)


def _check_norm(norm: str) -> None:
    if norm not in NORMS:
        raise ValueError(f"norm must be 'inf' or 'l2', got {norm!r}")


def rbfi(
    x: Tensor,
    w: Tensor,
    u: Tensor,
    is_or: Tensor,
    *,
    norm: str = "inf",
    pseudogradient: bool = True,
    backend: str = "auto",
) -> Tensor:
    """Output of a layer of RBFI (norm="inf", eq. 2/3) or RBF (norm="l2", eq. 1, p = 2) units.

    x: (B, N); w, u: (M, N); is_or: (M,) bool. Returns (B, M) with values in [0, 1]:
    exp(-z) for And units and 1 - exp(-z) for Or units.

    ``backend`` picks the implementation of z for norm="inf" (:mod:`rbfi.ops.dispatch`).
    """
    _check_norm(norm)
    if norm == "inf":
        z = scaled_sqdist_max(x, w, u, pseudogradient=pseudogradient, backend=backend)
    else:
        z = scaled_sqdist_sum(x, w, u)
    y = exp_neg(z, pseudogradient)
    return torch.where(is_or, 1.0 - y, y)


def rbfi_interval(
    lo: Tensor,
    hi: Tensor,
    w: Tensor,
    u: Tensor,
    is_or: Tensor,
    *,
    norm: str = "inf",
    pseudogradient: bool = True,
    backend: str = "auto",
) -> tuple[Tensor, Tensor]:
    """The exact range [y_lo, y_hi] of every unit's output over the input box [lo, hi].

    Per unit the range of z is exact (see :func:`rbfi.ops.scaled_sqdist_max_interval`) and
    y is monotone in z: And units (exp(-z), decreasing) give [exp(-z_hi), exp(-z_lo)], Or units
    (1 - exp(-z), increasing) [1 - exp(-z_lo), 1 - exp(-z_hi)]. Gradients flow through eq. (9)
    and (11) when ``pseudogradient`` (the certified-training default), else the true ones.
    """
    _check_norm(norm)
    if norm == "inf":
        z_lo, z_hi = scaled_sqdist_max_interval(
            lo, hi, w, u, pseudogradient=pseudogradient, backend=backend
        )
    else:
        z_lo, z_hi = scaled_sqdist_sum_interval(lo, hi, w, u)
    y_of_lo, y_of_hi = exp_neg(z_lo, pseudogradient), exp_neg(z_hi, pseudogradient)
    y_lo = torch.where(is_or, 1.0 - y_of_lo, y_of_hi)
    y_hi = torch.where(is_or, 1.0 - y_of_hi, y_of_lo)
    return y_lo, y_hi


# --- l_inf-distance neurons (Zhang et al. 2021, 2022; issue 26) --------------------------------


def linf_dist(x: Tensor, w: Tensor, *, p: float = float("inf"), backend: str = "auto") -> Tensor:
    """y[b, j] = ||x[b] - w[j]||_p, x (B, N), w (M, N) -> (B, M), true gradients.

    p = inf is the l_inf-distance neuron (the RBFI max kernel with u = 1); 1 <= p < inf its
    l_p-relaxation used in training (:func:`rbfi.ops.lp_distance`)."""
    return lp_distance(x, w, p, backend=backend)


def linf_dist_interval(
    lo: Tensor, hi: Tensor, w: Tensor, *, backend: str = "auto"
) -> tuple[Tensor, Tensor]:
    """The exact range of ||x - w||_inf over the box [lo, hi]: [max_i dist(w_i, [lo_i, hi_i]),
    max_i max(|lo_i - w_i|, |hi_i - w_i|)] (each term depends on x_i alone)."""
    return lp_distance_interval(lo, hi, w, backend=backend)


def mean_shift(y: Tensor, running_mean: Tensor, *, training: bool, momentum: float = 0.1) -> Tensor:
    """Mean-shift normalisation (batch normalisation without the scaling): y - mean, the mean
    over the batch (dim 0 of y (B, M)) in training, ``running_mean`` in eval. In training
    ``running_mean`` is updated in place: (1 - momentum) running_mean + momentum batch mean."""
    if not training:
        return y - running_mean
    mean = y.mean(dim=0)
    with torch.no_grad():
        running_mean.mul_(1.0 - momentum).add_(mean.detach(), alpha=momentum)
    return y - mean
