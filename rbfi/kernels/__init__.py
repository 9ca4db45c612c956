"""Fast implementations of z[b, j] = max_i (u[j, i] (x[b, i] - w[j, i]))^2 and its backward.

Every backend computes the same function as
:func:`rbfi.nn.functional.scaled_sqdist_max_reference` (the plain, materialising reference)
with the same gradients (eq. 10 or eq. 11 for the max).
"""

from __future__ import annotations

from torch import Tensor

from rbfi.nn.functional import PSEUDO_MAX_BETA, scaled_sqdist_max_reference

BACKENDS = ("auto", "reference")


def scaled_sqdist_max(
    x: Tensor,
    w: Tensor,
    u: Tensor,
    *,
    pseudogradient: bool = True,
    beta: float = PSEUDO_MAX_BETA,
    backend: str = "auto",
) -> Tensor:
    """z = max_i (u (x - w))^2 for x (B, N), w and u (M, N); returns (B, M)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return scaled_sqdist_max_reference(x, w, u, pseudogradient, beta)
