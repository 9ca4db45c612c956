"""The materialising reference: plain, slow, the ground truth every fused kernel is tested
against. It holds the (B, M, N) tensor of scaled squared distances

    s[b, j, i] = (u[j, i] (x[b, i] - w[j, i]))^2,     z[b, j] = max_i s[b, j, i]

and backpropagates through :class:`~rbfi.ops.autograd.PseudoMax` (eq. 11) or the true arg-max
subgradient (eq. 10). :func:`lp_distance_reference` does the same for the l_p distance
||x - w||_p of l_inf-distance nets.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from rbfi.ops.autograd import PSEUDO_MAX_BETA, max_last


def scaled_sq_distances(x: Tensor, w: Tensor, u: Tensor) -> Tensor:
    """s[b, j, i] = (u[j, i] (x[b, i] - w[j, i]))^2, materialised: shape (B, M, N)."""
    return (u * (x.unsqueeze(1) - w)).square()


def scaled_sqdist_max_reference(
    x: Tensor, w: Tensor, u: Tensor, pseudogradient: bool = True, beta: float = PSEUDO_MAX_BETA
) -> Tensor:
    """z[b, j] = max_i (u[j, i] (x[b, i] - w[j, i]))^2 (the square of the weighted inf-norm)."""
    return max_last(scaled_sq_distances(x, w, u), pseudogradient, beta)


# --- the interval version ---------------------------------------------------------------------


def near_far(d_lo: Tensor, d_hi: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The one definition of the interval offsets, used by every torch backend. From the
    offsets d_lo = lo - w and d_hi = hi - w of the two ends of [lo, hi] from w (any one shape):

    near = clamp(w, lo, hi) - w = max(d_lo, 0) + min(d_hi, 0)  (0 when w lies in the interval),
    far  = d_hi if d_lo + d_hi >= 0 else d_lo  (the end farther from w; hi on a tie),

    and ``far_is_hi`` (d_lo + d_hi >= 0). The near end is hi exactly where near < 0.
    """
    near = d_lo.clamp_min(0.0) + d_hi.clamp_max(0.0)
    far_is_hi = d_lo + d_hi >= 0
    return near, torch.where(far_is_hi, d_hi, d_lo), far_is_hi


def interval_offsets(lo: Tensor, hi: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
    """For every (b, j, i): the offsets (near, far) from w[j, i] of the nearest and the farthest
    point of [lo[b, i], hi[b, i]] (:func:`near_far`), materialised as (B, M, N) tensors."""
    near, far, _ = near_far(lo.unsqueeze(1) - w, hi.unsqueeze(1) - w)
    return near, far


def scaled_sqdist_max_interval_reference(
    lo: Tensor,
    hi: Tensor,
    w: Tensor,
    u: Tensor,
    pseudogradient: bool = True,
    beta: float = PSEUDO_MAX_BETA,
) -> tuple[Tensor, Tensor]:
    """The exact range [z_lo, z_hi] of z = max_i (u (x - w))^2 over the box lo <= x <= hi.

    Each s_i depends on x_i alone, so over a box the smallest z takes every s_i at its minimum
    (x_i nearest to w_i) and the largest every s_i at its maximum (x_i farthest from w_i):
    z_lo = max_i (u_i near_i)^2, z_hi = max_i (u_i far_i)^2 (see :func:`interval_offsets`).
    Backward through eq. (11) or eq. (10) for each max, and through the offsets to lo, hi, w.
    """
    near, far = interval_offsets(lo, hi, w)
    z_lo = max_last((u * near).square(), pseudogradient, beta)
    z_hi = max_last((u * far).square(), pseudogradient, beta)
    return z_lo, z_hi


# --- the l_p distance (l_inf-distance nets, issue 26) -----------------------------------------


def lp_distance_reference(x: Tensor, w: Tensor, p: float) -> Tensor:
    """y[b, j] = ||x[b] - w[j]||_p for 1 <= p <= inf, materialised (B, M, N); autograd's
    gradients (at p = inf the max's subgradient: the first arg-max only).

    For finite p the distances are divided by their row maximum m (held constant: the norm is
    homogeneous, so y = m ||d / m||_p has the same value and gradient) before the power, which
    keeps sum_i (|d_i| / m)^p in [1, N] for any p.
    """
    d = (x.unsqueeze(1) - w).abs()
    if math.isinf(p):
        return d.max(dim=-1).values
    m = d.detach().amax(dim=-1, keepdim=True).clamp_min(torch.finfo(d.dtype).tiny)
    return m.squeeze(-1) * (d / m).pow(p).sum(dim=-1).pow(1.0 / p)
