"""The paper's PGD (Sec. 5, 6.2): AdaDelta steps, random restarts, any-step success."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rbfi.attacks.base import project
from rbfi.attacks.pgd import PGD


class PaperPGD(PGD):
    """The paper's PGD (Sec. 5): projected gradient ascent with AdaDelta choosing the steps.

    Start uniform on B_eps(x) ∩ [0,1]^n; the perturbation delta = x_k - x is the parameter of
    ``torch.optim.Adadelta(lr=1.0, rho=0.9, eps=1e-6, maximize=True)`` ascending J summed over
    the batch; after every optimiser step delta is projected (P as in :class:`PGD`). 100 steps,
    20 restarts; an example is broken if any step of any restart misclassifies it (the first
    such point is returned). lr = 1 and the summed loss reproduce the author's code (Adadelta
    lr 1 on 100 x the batch-mean loss, batch 100). AdaDelta's first steps are about
    sqrt(1e-6 / 0.1) ~ 3e-3 per pixel and grow as it accumulates (roughly 1e-3 sqrt(k) at step
    k, ~0.6 in total after 100 steps) while the gradient is well above 1e-3; for much smaller
    gradients (RBFI's true gradient far from the unit centres) the steps shrink in proportion.
    """

    name = "pgd_paper"

    def __init__(
        self,
        model: nn.Module,
        eps: float,
        *,
        steps: int = 100,
        restarts: int = 20,
        lr: float = 1.0,
        early_stop: bool = True,
        projection: str = "correct",
        loss: str = "training",
        gradient: str = "true",
        seed: int = 0,
    ) -> None:
        super().__init__(
            model,
            eps,
            steps=steps,
            restarts=restarts,
            random_start=True,
            early_stop=early_stop,
            projection=projection,
            loss=loss,
            gradient=gradient,
            seed=seed,
        )
        if not float(lr) > 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        self.lr = float(lr)

    def settings(self) -> dict:
        out = super().settings()
        out.pop("alpha")
        return {**out, "optimizer": "Adadelta", "lr": self.lr}

    def begin(self, x: Tensor, x_start: Tensor) -> None:
        self._delta = nn.Parameter(x_start - x)
        self._optimizer = torch.optim.Adadelta([self._delta], lr=self.lr, maximize=True)

    def step(self, x_k: Tensor, x: Tensor, grad: Tensor, active: Tensor) -> Tensor:
        # inactive (already broken) rows get a zero gradient, hence a zero AdaDelta update
        self._delta.grad = torch.zeros_like(self._delta)
        self._delta.grad[active] = grad
        self._optimizer.step()
        with torch.no_grad():
            x_next = project(x[active] + self._delta[active], x[active], self.eps, self.projection)
            self._delta[active] = x_next - x[active]
        return x_next
