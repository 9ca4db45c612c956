"""Uniform noise (paper, Sec. 6.2): a convex combination of the image and random pixels."""

from __future__ import annotations

import torch
from torch import Tensor

from rbfi.attacks.base import Attack


class UniformNoise(Attack):
    """x' = (1 - eps) x + eps z,  z ~ Uniform([0, 1]^n).

    Valid for every eps in [0, 1]: x' - x = eps (z - x) and |z_i - x_i| <= 1, so
    ||x' - x||_inf <= eps; x' is a convex combination of points of [0, 1]^n, so it stays there.
    Gradient-free; one random draw per call (the attack's seeded generator).
    """

    name = "noise"
    kind = "black-box"

    def perturb(self, x: Tensor, y: Tensor) -> Tensor:
        z = torch.rand(x.shape, generator=self.generator(x.device), device=x.device, dtype=x.dtype)
        return (1.0 - self.eps) * x + self.eps * z
