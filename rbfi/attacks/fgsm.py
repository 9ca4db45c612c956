"""FGSM (paper, eq. 12): one signed-gradient step of size eps."""

from __future__ import annotations

from torch import Tensor

from rbfi.attacks.base import Attack


class FGSM(Attack):
    """x' = clamp_[0,1](x + eps sign(grad_x J(x, y)))   (eq. 12; Goodfellow et al. 2015).

    J is the chosen loss (default: the model's training loss, as in the paper). An example
    whose gradient is exactly zero is not moved (sign(0) = 0).
    """

    name = "fgsm"

    def perturb(self, x: Tensor, y: Tensor) -> Tensor:
        grad, _ = self.loss_and_gradient(x, y)
        return (x + self.eps * grad.sign()).clamp(0.0, 1.0)

    def passes(self) -> dict[str, int]:
        return {"forward": 0, "backward": 1}
