"""Signed-step PGD (Madry et al. 2018), the base of I-FGSM and of the paper's AdaDelta PGD."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rbfi.attacks.base import PROJECTIONS, Attack, project, random_start


class PGD(Attack):
    """Projected gradient ascent with signed steps (Madry et al. 2018), l_inf:

        x_0     uniform on B_eps(x) ∩ [0,1]^n   (x itself when ``random_start=False``)
        x_{k+1} = P(x_k + alpha sign(grad_x J(x_k, y))),   k < steps

    P is :func:`~rbfi.attacks.base.project` ("correct", or the author's "legacy_one_sided").
    ``alpha`` defaults to 2.5 eps / steps (Madry et al.: enough to cross the ball from any
    start). With ``restarts`` > 1, an example not yet broken is attacked again from a new
    random start.

    Success: with ``early_stop=True`` (default) an example is broken as soon as any iterate
    x_0..x_steps of any restart is misclassified; it is frozen there (no more passes spent on
    it) and that first misclassified point is returned. With ``early_stop=False`` every
    example runs all steps and the last iterate of its last restart is returned (last-step
    success); ``stats["success_any"]`` still records any-step success per example.
    """

    name = "pgd"

    def __init__(
        self,
        model: nn.Module,
        eps: float,
        *,
        steps: int = 100,
        alpha: float | None = None,
        restarts: int = 1,
        random_start: bool = True,
        early_stop: bool = True,
        projection: str = "correct",
        loss: str = "training",
        gradient: str = "true",
        seed: int = 0,
    ) -> None:
        super().__init__(model, eps, loss=loss, gradient=gradient, seed=seed)
        if int(steps) < 1 or int(restarts) < 1:
            raise ValueError(f"steps and restarts must be >= 1, got {steps}, {restarts}")
        if projection not in PROJECTIONS:
            raise ValueError(f"projection must be one of {PROJECTIONS}, got {projection!r}")
        if alpha is not None and not float(alpha) > 0:
            raise ValueError(f"alpha must be > 0, got {alpha}")
        self.steps, self.restarts = int(steps), int(restarts)
        self.alpha = 2.5 * self.eps / self.steps if alpha is None else float(alpha)
        self.alpha_rule = "2.5 eps / steps" if alpha is None else None  # for the records
        self.random_start = random_start
        self.early_stop = early_stop
        self.projection = projection

    def settings(self) -> dict:
        return {
            **super().settings(),
            "steps": self.steps,
            "alpha": self.alpha_rule or self.alpha,
            "restarts": self.restarts,
            "random_start": self.random_start,
            "early_stop": self.early_stop,
            "projection": self.projection,
        }

    def passes(self) -> dict[str, int]:
        return {"forward": self.restarts, "backward": self.steps * self.restarts}

    def perturb(self, x: Tensor, y: Tensor) -> Tensor:
        x_adv = x.clone()
        broken = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        success_any = broken.clone()
        per_restart = []
        for _ in range(self.restarts):
            todo = (~broken).nonzero().squeeze(1)
            if todo.numel() == 0:
                break
            x_last, hit_any, hit_last = self.run(x[todo], y[todo])
            x_adv[todo] = x_last
            hit = hit_any if self.early_stop else hit_last
            broken[todo[hit]] = True
            success_any[todo[hit_any]] = True
            per_restart.append(int(hit.sum()))
        self.stats.update(restart_successes=per_restart, success_any=success_any)
        return x_adv

    def run(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One restart: (final points, any-step success, last-step success)."""
        if self.random_start:
            x_k = random_start(x, self.eps, self.generator(x.device), self.projection)
        else:
            x_k = x.clone()
        self.begin(x, x_k)
        hit = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        wrong_now = hit.clone()
        active = torch.arange(len(x), device=x.device)
        for step in range(self.steps + 1):
            if step < self.steps:
                grad, scores = self.loss_and_gradient(x_k[active], y[active])
            else:
                grad, scores = None, self.scores(x_k[active])
            wrong = scores.argmax(dim=1) != y[active]
            wrong_now[active] = wrong
            hit[active[wrong]] = True
            if self.early_stop:  # freeze broken examples at their first misclassified point
                active = active[~wrong]
                grad = grad[~wrong] if grad is not None else None
            if grad is None or active.numel() == 0:
                break
            x_k[active] = self.step(x_k, x, grad, active)
        return x_k, hit, wrong_now

    def begin(self, x: Tensor, x_start: Tensor) -> None:
        """Called at the start of every restart (state for :meth:`step`)."""

    def step(self, x_k: Tensor, x: Tensor, grad: Tensor, active: Tensor) -> Tensor:
        """The next iterate of the ``active`` examples (grad is theirs)."""
        moved = x_k[active] + self.alpha * grad.sign()
        return project(moved, x[active], self.eps, self.projection)
