"""The two pieces of RBFI math with a custom backward (de Alfaro 2018, eq. 9-11).

- :class:`PseudoExpNeg`: y = exp(-z); backward dy/dz := -(1 + z)^-alpha (eq. 9, alpha = 1/2).
- :class:`PseudoMax`: m = max_i s_i; backward dm/ds_i := exp(beta (s_i - m)) for every i
  (eq. 11, beta = 1; not normalised, 1 at the arg-max).

:func:`exp_neg` and :func:`max_last` pick these or the true derivatives (``-exp(-z)``, and the
max's subgradient: 1 at the arg-max, eq. 10).
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
        return torch.neg(z).exp_()  # exp(-z), one buffer (conv layers: B x positions x units)

    @staticmethod
    def backward(ctx, grad_y: Tensor):
        (z,) = ctx.saved_tensors
        # -grad_y (1 + z)^-alpha, the same bits, computed in one buffer
        return torch.add(z, 1.0).pow_(-ctx.alpha).mul_(grad_y).neg_(), None


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
    return torch.neg(z).exp_()


def max_last(s: Tensor, pseudogradient: bool = True, beta: float = PSEUDO_MAX_BETA) -> Tensor:
    """max over the last dimension; backward is eq. (11) or the arg-max subgradient (eq. 10)."""
    if pseudogradient:
        return PseudoMax.apply(s, beta)
    return s.max(dim=-1).values  # torch routes the gradient to the single returned arg-max
