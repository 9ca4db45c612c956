"""The Square attack (Andriushchenko et al. 2020), from ``pyautoattack``."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rbfi.attacks._package import PACKAGE, ImageInput, as_images, isolated, package
from rbfi.attacks.base import Attack


class Square(Attack):
    """Square attack (Andriushchenko et al. 2020), gradient-free random search on the margin
    loss with square-shaped l_inf updates, from ``pyautoattack`` (``n_queries`` model
    evaluations per example at most, p_init 0.8, 1 restart). Stops per example at success."""

    name = "square"
    kind = "black-box"

    def __init__(
        self, model: nn.Module, eps: float, *, queries: int = 5000, p_init: float = 0.8, seed=0
    ) -> None:
        super().__init__(model, eps, seed=seed)
        if int(queries) < 1:
            raise ValueError(f"queries must be >= 1, got {queries}")
        self.queries, self.p_init = int(queries), float(p_init)

    def settings(self) -> dict:
        return {
            **super().settings(),
            "package": f"{PACKAGE} {package().__version__}",
            "queries": self.queries,
            "p_init": self.p_init,
            "loss": "margin",
        }

    def reported_loss(self) -> str:
        return "margin"

    def passes(self) -> dict[str, int]:
        return {"forward": self.queries + 2, "backward": 0}

    def perturb(self, x: Tensor, y: Tensor) -> Tensor:
        package()
        from pyautoattack.square import SquareAttack

        square = SquareAttack(
            ImageInput(self.model),
            norm="Linf",
            n_queries=self.queries,
            eps=self.eps,
            p_init=self.p_init,
            n_restarts=1,
            seed=self.derived_seed(x.device),
            verbose=False,
            loss="margin",
            resc_schedule=True,
            device=x.device,
        )
        with isolated(x.device) as messages, torch.no_grad():
            x_adv = square.perturb(as_images(x, self.model), y)
        self.stats["package_warnings"] = messages
        return x_adv.reshape(x.shape)
