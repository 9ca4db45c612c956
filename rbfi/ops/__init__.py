"""The RBFI layer's core, z[b, j] = max_i (u[j, i] (x[b, i] - w[j, i]))^2, and its interval
version, with their backward, on every backend.

- :func:`scaled_sqdist_max`: z and its gradients (eq. 11 pseudogradient or eq. 10 true).
- :func:`scaled_sqdist_max_interval`: the exact range [z_lo, z_hi] of z over a box
  lo <= x <= hi (for interval bound propagation, :mod:`rbfi.bounds`), and its gradients.
- :mod:`rbfi.ops.autograd`: :class:`PseudoExpNeg` (eq. 9) and :class:`PseudoMax` (eq. 11).
- :func:`lp_distance`: y = ||x - w||_p for 1 <= p <= inf (the l_inf-distance neuron and its
  l_p-relaxation, issue 26), true gradients; :func:`lp_distance_interval`: its exact range over
  a box at p = inf.
- :mod:`rbfi.ops.reference`: the plain materialising implementations, ground truth for tests.

Every fused backend computes what the reference computes, with the same gradients, without
ever holding the (B, M, N) tensor of scaled distances. Backends and the one fallback policy:
:mod:`rbfi.ops.dispatch`. Design and measurements: docs/kernels.md.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor

from rbfi.ops.autograd import (
    PSEUDO_EXP_ALPHA,
    PSEUDO_MAX_BETA,
    PseudoExpNeg,
    PseudoMax,
    exp_neg,
    max_last,
)
from rbfi.ops.dispatch import (
    BACKENDS,
    auto_backend,
    cpu_kernel_available,
    interval_ops,
    kernel_info,
    lp_ops,
    ops,
    resolve,
    triton_available,
    vector_width,
)
from rbfi.ops.fused import FusedLpDistance, FusedScaledSqdistMax, FusedScaledSqdistMaxInterval
from rbfi.ops.reference import (
    lp_distance_reference,
    scaled_sqdist_max_interval_reference,
    scaled_sqdist_max_reference,
)

__all__ = [
    "BACKENDS",
    "PSEUDO_EXP_ALPHA",
    "PSEUDO_MAX_BETA",
    "PseudoExpNeg",
    "PseudoMax",
    "auto_backend",
    "cpu_kernel_available",
    "exp_neg",
    "check_p",
    "kernel_info",
    "lp_distance",
    "lp_distance_interval",
    "max_last",
    "scaled_sqdist_max",
    "scaled_sqdist_max_interval",
    "triton_available",
    "vector_width",
]


def _validate(x: Tensor, w: Tensor, u: Tensor, what: str = "x") -> None:
    if x.dim() != 2 or w.dim() != 2 or u.shape != w.shape or x.shape[1] != w.shape[1]:
        raise ValueError(
            f"expected {what} (B, N), w and u (M, N); got {tuple(x.shape)}, {tuple(w.shape)}, "
            f"{tuple(u.shape)}"
        )
    if x.shape[1] == 0:
        raise ValueError("the max over an empty input dimension (N = 0) is undefined")
    if not (x.device == w.device == u.device) or not (x.dtype == w.dtype == u.dtype):
        raise ValueError(f"{what}, w and u must share device and dtype")


def scaled_sqdist_max(
    x: Tensor,
    w: Tensor,
    u: Tensor,
    *,
    pseudogradient: bool = True,
    beta: float = PSEUDO_MAX_BETA,
    backend: str = "auto",
) -> Tensor:
    """z = max_i (u (x - w))^2 for x (B, N), w and u (M, N); returns (B, M).

    Backward: eq. (11) ``g exp(beta (s - z))`` for every i when ``pseudogradient`` (beta >= 0
    for the fused backends), else eq. (10), the gradient at the first arg-max only.
    """
    pseudogradient, beta = bool(pseudogradient), float(beta)
    name = resolve(backend, (x, w, u), beta_ok=not (pseudogradient and beta < 0))
    if name == "reference":
        return scaled_sqdist_max_reference(x, w, u, pseudogradient, beta)
    _validate(x, w, u)
    return FusedScaledSqdistMax.apply(x, w, u, pseudogradient, beta, ops(name))


def scaled_sqdist_max_interval(
    lo: Tensor,
    hi: Tensor,
    w: Tensor,
    u: Tensor,
    *,
    pseudogradient: bool = True,
    beta: float = PSEUDO_MAX_BETA,
    backend: str = "auto",
) -> tuple[Tensor, Tensor]:
    """(z_lo, z_hi), the exact range of z = max_i (u (x - w))^2 over the box lo <= x <= hi.

    lo, hi: (B, N) with lo <= hi; w, u: (M, N). z_lo = max_i (u_i near_i)^2 and
    z_hi = max_i (u_i far_i)^2, near_i / far_i the offsets from w_i of the nearest / farthest
    point of [lo_i, hi_i] (:func:`rbfi.ops.reference.interval_offsets`). Gradients flow to lo,
    hi, w, u through eq. (11) (or eq. 10) for each max. With lo = hi = x both equal
    :func:`scaled_sqdist_max`.
    """
    pseudogradient, beta = bool(pseudogradient), float(beta)
    if lo.shape != hi.shape:
        raise ValueError(f"lo and hi must have one shape, got {tuple(lo.shape)}, {tuple(hi.shape)}")
    name = resolve(backend, (lo, hi, w, u), beta_ok=not (pseudogradient and beta < 0))
    if name == "reference":
        return scaled_sqdist_max_interval_reference(lo, hi, w, u, pseudogradient, beta)
    _validate(lo, w, u, "lo")
    _validate(hi, w, u, "hi")
    return FusedScaledSqdistMaxInterval.apply(
        lo, hi, w, u, pseudogradient, beta, interval_ops(name)
    )


# --- the l_p distance (l_inf-distance nets, issue 26) -----------------------------------------


def check_p(p: float) -> float:
    """p as a float, ValueError unless it is a number >= 1 or inf."""
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise ValueError(f"p must be a number >= 1 or inf, got {p!r}")
    value = float(p)
    if not value >= 1.0:  # also NaN
        raise ValueError(f"p must be a number >= 1 or inf, got {p!r}")
    return value


def _sqrt_zero_safe(z: Tensor) -> Tensor:
    """sqrt(z) for z >= 0 with gradient 0 (the subgradient of |x - w| at 0) where z = 0, instead
    of sqrt's infinite slope."""
    positive = z > 0
    return torch.where(positive, torch.where(positive, z, 1.0).sqrt(), 0.0)


def _validate_pair(x: Tensor, w: Tensor, what: str = "x") -> None:
    if x.dim() != 2 or w.dim() != 2 or x.shape[1] != w.shape[1]:
        raise ValueError(
            f"expected {what} (B, N) and w (M, N); got {tuple(x.shape)}, {tuple(w.shape)}"
        )
    if x.shape[1] == 0:
        raise ValueError("the distance over an empty input dimension (N = 0) is undefined")
    if x.device != w.device or x.dtype != w.dtype:
        raise ValueError(f"{what} and w must share device and dtype")


def lp_distance(x: Tensor, w: Tensor, p: float = math.inf, *, backend: str = "auto") -> Tensor:
    """y[b, j] = ||x[b] - w[j]||_p for x (B, N), w (M, N), 1 <= p <= inf; returns (B, M).

    p = inf runs on the RBFI max kernel with u = 1, y = sqrt(max_i (x_i - w_i)^2), with true
    gradients (the max's subgradient, eq. 10: sign(d) at the first arg-max; 0 where x = w).
    Finite p runs on the fused l_p kernel, y = m (sum_i (|d_i| / m)^p)^(1/p) with m the row
    maximum (stable for any p), backward dy/dx_i = sign(d_i) (|d_i| / y)^(p - 1).
    """
    p = check_p(p)
    if math.isinf(p):
        _validate_pair(x, w)
        z = scaled_sqdist_max(x, w, torch.ones_like(w), pseudogradient=False, backend=backend)
        return _sqrt_zero_safe(z)
    name = resolve(backend, (x, w))
    if name == "reference":
        return lp_distance_reference(x, w, p)
    _validate_pair(x, w)
    return FusedLpDistance.apply(x, w, p, lp_ops(name))


def lp_distance_interval(
    lo: Tensor, hi: Tensor, w: Tensor, *, backend: str = "auto"
) -> tuple[Tensor, Tensor]:
    """The exact range [y_lo, y_hi] of y = ||x - w||_inf over the box lo <= x <= hi:
    y_lo = max_i dist(w_i, [lo_i, hi_i]), y_hi = max_i max(|lo_i - w_i|, |hi_i - w_i|) (the
    interval kernel with u = 1; true gradients)."""
    if lo.shape != hi.shape:
        raise ValueError(f"lo and hi must have one shape, got {tuple(lo.shape)}, {tuple(hi.shape)}")
    _validate_pair(lo, w, "lo")
    z_lo, z_hi = scaled_sqdist_max_interval(
        lo, hi, w, torch.ones_like(w), pseudogradient=False, backend=backend
    )
    return _sqrt_zero_safe(z_lo), _sqrt_zero_safe(z_hi)
