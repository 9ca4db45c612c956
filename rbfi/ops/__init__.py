"""The RBFI layer's core, z[b, j] = max_i (u[j, i] (x[b, i] - w[j, i]))^2, and its interval
version, with their backward, on every backend.

- :func:`scaled_sqdist_max`: z and its gradients (eq. 11 pseudogradient or eq. 10 true).
- :func:`scaled_sqdist_max_interval`: the exact range [z_lo, z_hi] of z over a box
  lo <= x <= hi (for interval bound propagation, :mod:`rbfi.bounds`), and its gradients.
- :mod:`rbfi.ops.autograd`: :class:`PseudoExpNeg` (eq. 9) and :class:`PseudoMax` (eq. 11).
- :mod:`rbfi.ops.reference`: the plain materialising implementations, ground truth for tests.

Every fused backend computes what the reference computes, with the same gradients, without
ever holding the (B, M, N) tensor of scaled distances. Backends and the one fallback policy:
:mod:`rbfi.ops.dispatch`. Design and measurements: docs/kernels.md.
"""

from __future__ import annotations

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
    ops,
    resolve,
    triton_available,
    vector_width,
)
from rbfi.ops.fused import FusedScaledSqdistMax, FusedScaledSqdistMaxInterval
from rbfi.ops.reference import (
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
    "kernel_info",
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
