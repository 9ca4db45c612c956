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

The functions here that materialise the (batch, out, in) tensor ``s`` are the *reference*
implementation: plain, slow, and the ground truth the fused kernels in :mod:`rbfi.kernels`
are tested against.
"""

from __future__ import annotations

import torch
from torch import Tensor

PSEUDO_EXP_ALPHA = 0.5
PSEUDO_MAX_BETA = 1.0


class PseudoExpNeg(torch.autograd.Function):
    """y = exp(-z) with the pseudoderivative of eq. (9): dy/dz := -(1 + z)^-alpha."""

    @staticmethod
    def forward(ctx, z: Tensor, alpha: float = PSEUDO_EXP_ALPHA) -> Tensor:
        ctx.save_for_backward(z)
        ctx.alpha = alpha
        return torch.exp(-z)

    @staticmethod
    def backward(ctx, grad_y: Tensor):
        (z,) = ctx.saved_tensors
        return -grad_y * torch.pow(1.0 + z, -ctx.alpha), None


class PseudoMax(torch.autograd.Function):
    """m = max over the last dimension, with the pseudogradient of eq. (11).

    Backward: dm/ds_i := exp(beta (s_i - m)) for every i (not normalised; 1 at the arg-max).
    """

    @staticmethod
    def forward(ctx, s: Tensor, beta: float = PSEUDO_MAX_BETA) -> Tensor:
        m = s.amax(dim=-1)
        ctx.save_for_backward(s, m)
        ctx.beta = beta
        return m

    @staticmethod
    def backward(ctx, grad_m: Tensor):
        s, m = ctx.saved_tensors
        return grad_m.unsqueeze(-1) * torch.exp(ctx.beta * (s - m.unsqueeze(-1))), None


def exp_neg(z: Tensor, pseudogradient: bool = True, alpha: float = PSEUDO_EXP_ALPHA) -> Tensor:
    """exp(-z); its backward is eq. (9) when ``pseudogradient`` else the true -exp(-z)."""
    if pseudogradient:
        return PseudoExpNeg.apply(z, alpha)
    return torch.exp(-z)


def max_last(s: Tensor, pseudogradient: bool = True, beta: float = PSEUDO_MAX_BETA) -> Tensor:
    """max over the last dimension; backward is eq. (11) or the arg-max subgradient (eq. 10)."""
    if pseudogradient:
        return PseudoMax.apply(s, beta)
    return s.max(dim=-1).values  # torch routes the gradient to the single returned arg-max


def scaled_sq_distances(x: Tensor, w: Tensor, u: Tensor) -> Tensor:
    """s[b, j, i] = (u[j, i] (x[b, i] - w[j, i]))^2, materialised: shape (B, M, N)."""
    return (u * (x.unsqueeze(1) - w)).square()


def scaled_sqdist_max_reference(
    x: Tensor, w: Tensor, u: Tensor, pseudogradient: bool = True, beta: float = PSEUDO_MAX_BETA
) -> Tensor:
    """z[b, j] = max_i (u[j, i] (x[b, i] - w[j, i]))^2 (the square of the weighted inf-norm).

    Reference implementation: materialises the (B, M, N) tensor. Backward through
    :class:`PseudoMax` (eq. 11) or the true arg-max subgradient (eq. 10).
    """
    return max_last(scaled_sq_distances(x, w, u), pseudogradient, beta)


def scaled_sqdist_sum(x: Tensor, w: Tensor, u: Tensor) -> Tensor:
    """z[b, j] = sum_i (u[j, i] (x[b, i] - w[j, i]))^2 (RBF, p = 2), by the matrix expansion

    z = x^2 (u^2)^T - 2 x (u^2 w)^T + sum_i u^2 w^2, clamped at 0 against rounding.
    Never materialises (B, M, N); gradients are the true ones, through autograd.
    """
    u2 = u.square()
    z = x.square() @ u2.T - 2.0 * (x @ (u2 * w).T) + (u2 * w.square()).sum(dim=1)
    return z.clamp_min(0.0)


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

    ``backend`` picks the implementation of z for norm="inf": "reference" materialises
    (B, M, N); "auto" uses the fastest available kernel of :mod:`rbfi.kernels`.
    """
    if norm == "inf":
        if backend == "reference":
            z = scaled_sqdist_max_reference(x, w, u, pseudogradient)
        else:
            from rbfi.kernels import scaled_sqdist_max

            z = scaled_sqdist_max(x, w, u, pseudogradient=pseudogradient, backend=backend)
    elif norm == "l2":
        z = scaled_sqdist_sum(x, w, u)
    else:
        raise ValueError(f"norm must be 'inf' or 'l2', got {norm!r}")
    y = exp_neg(z, pseudogradient)
    return torch.where(is_or, 1.0 - y, y)
