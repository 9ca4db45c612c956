"""What every attack shares: the threat model, losses, gradient modes, projection, seeding.

Threat model: l_inf, pixels in [0, 1]. An adversarial example x' for x is valid when
||x' - x||_inf <= eps and every x'_i lies in [0, 1]; every attack returns valid points only
(checked on the way out, up to float rounding of ``ROUNDING`` which is then clamped away).

An attack is built with the model and its settings and called as ``attack(x, y) -> x_adv``
(the torchattacks convention). x: (B, ...) floats in [0, 1]; y: (B,) int64 labels.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from rbfi.nn import pseudogradient_mode
from rbfi.nn.losses import get_loss

LOSSES = ("training", "cross_entropy", "margin", "square")
GRADIENTS = ("true", "pseudo")
PROJECTIONS = ("correct", "legacy_one_sided")
ROUNDING = 1e-6  # float32 rounding allowed at the boundary of the threat model


@contextmanager
def attack_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode and frozen parameters (no weight gradients are computed) while attacking;
    the training flag and every parameter's ``requires_grad`` are restored on exit."""
    was_training = model.training
    params = list(model.parameters())
    saved = [p.requires_grad for p in params]
    try:
        model.eval()
        for p in params:
            p.requires_grad_(False)
        yield
    finally:
        for p, value in zip(params, saved):
            p.requires_grad_(value)
        model.train(was_training)


def project(x_adv: Tensor, x: Tensor, eps: float, mode: str = "correct") -> Tensor:
    """Project ``x_adv`` back into the threat model around ``x``.

    "correct": onto B_eps(x) ∩ [0,1]^n, i.e. x'_i = clamp(x_adv_i, max(x_i - eps, 0),
    min(x_i + eps, 1)); the perturbation delta = x' - x ranges over [-min(x, eps), min(1-x, eps)].

    "legacy_one_sided": what the author's PGD code (test_pgd.py, 2018) does. With
    delta = x_adv - x it computes delta <- max(delta, min(x, eps)), then
    delta <- min(delta, min(1 - x, eps)), and returns clamp01(x + delta). The lower bound has
    the wrong sign (+min(x, eps) instead of -min(x, eps)), so pixels can only get brighter and
    every pixel with x > 0 is forced up by at least min(x, eps); where min(x, eps) >
    min(1 - x, eps) (bright pixels, x > 1/2 and x > 1 - eps) the second clip wins and
    delta = min(1 - x, eps): such pixels are pushed to min(x + eps, 1). The result is always
    inside B_eps(x) ∩ [0,1]^n, but covers only a small part of it.
    """
    if mode == "correct":
        return torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0.0, 1.0)
    if mode == "legacy_one_sided":
        lower = x.clamp(0.0, eps)  # the author's bug: should be -min(x, eps)
        upper = (1.0 - x).clamp(0.0, eps)
        delta = torch.min(torch.max(x_adv - x, lower), upper)
        return (x + delta).clamp(0.0, 1.0)
    raise ValueError(f"projection must be one of {PROJECTIONS}, got {mode!r}")


def random_start(x: Tensor, eps: float, generator: torch.Generator, mode: str = "correct"):
    """A random point of the feasible set.

    "correct": uniform on the box B_eps(x) ∩ [0,1]^n (the paper's PGD start).
    "legacy_one_sided": the author's code: delta ~ U[-eps, eps]^n, then the legacy clip.
    """
    u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    if mode == "correct":
        low, high = (x - eps).clamp_min(0.0), (x + eps).clamp_max(1.0)
        return low + (high - low) * u
    return project(x + eps * (2.0 * u - 1.0), x, eps, mode)


class Attack:
    """Base class: settings, input checks, loss and input gradient, seeding, validity check.

    Subclasses implement :meth:`perturb` (x, y already checked, model in eval mode with frozen
    parameters and the chosen gradient mode; every eps in [0, 1], 0 included, reaches it) and
    declare what they are:

      name: the attack's short name;
      kind: "white-box" (uses the attacked model's gradients) or "black-box" (only its outputs,
            or another model's gradients);
      in_gradient_ensemble: whether it counts among "the gradient attacks together" of the
            black-box masking check (False for AutoAttack, which contains Square);
      :meth:`reported_loss`: the loss it ascends, as the reports show it.

    Settings shared by gradient attacks:
      loss: "training" (the model's own ``model.loss``; cross-entropy for a module without
            one), "cross_entropy" (softmax CE on the scores), "margin" (the CW loss
            max_{c != y} s_c - s_y) or "square"; the attack ascends the sum over the batch.
      gradient: "true" (real derivatives) or "pseudo" (RBFI pseudogradients, BPDA-style).
      seed: seeds the attack's own torch.Generator (random starts, noise); the generator
            advances from call to call, so a fixed sequence of calls is reproducible.

    After each call, ``stats`` holds diagnostics of that call (e.g. ``zero_gradient``, the
    number of examples whose input gradient at the start point is exactly zero).
    """

    name = "attack"
    kind = "white-box"
    in_gradient_ensemble = True

    @property
    def uses_gradient(self) -> bool:
        return self.kind == "white-box"

    def __init__(
        self,
        model: nn.Module,
        eps: float,
        *,
        loss: str = "training",
        gradient: str = "true",
        seed: int = 0,
    ) -> None:
        eps = float(eps)
        if not (math.isfinite(eps) and 0.0 <= eps <= 1.0):
            raise ValueError(f"eps must be a number in [0, 1] (l_inf, pixels in [0, 1]), got {eps}")
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        if gradient not in GRADIENTS:
            raise ValueError(f"gradient must be one of {GRADIENTS}, got {gradient!r}")
        self.model = model
        self.eps = eps
        self.loss = loss
        self.gradient = gradient
        self.seed = int(seed)
        resolved = getattr(model, "loss", "cross_entropy") if loss == "training" else loss
        self.loss_fn = get_loss(resolved)
        self._generator: torch.Generator | None = None
        self.stats: dict = {}

    # --- what subclasses implement -----------------------------------------------------

    def perturb(self, x: Tensor, y: Tensor) -> Tensor:
        raise NotImplementedError

    def passes(self) -> dict[str, int]:
        """Upper bound on model passes per attacked example: {"forward", "backward"} (a
        backward pass includes its forward). Early stopping usually needs far fewer."""
        return {"forward": 0, "backward": 0}

    def reported_loss(self) -> str:
        """The loss the attack ascends, as reports show it ("-" for attacks without one)."""
        return self.loss if self.uses_gradient else "-"

    def reported_gradient(self) -> str:
        """ "true", "pseudo", or "-" for attacks that do not use the model's gradients."""
        return self.gradient if self.uses_gradient else "-"

    def settings(self) -> dict:
        """The attack's settings, JSON-serialisable (recorded with every result)."""
        out = {"attack": type(self).__name__, "eps": self.eps, "seed": self.seed}
        if self.uses_gradient:
            out.update(loss=self.loss, gradient=self.gradient)
        return out

    # --- the call ------------------------------------------------------------------------

    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        x, y = self.check_inputs(x, y)
        self.stats = {}
        if len(x) == 0:
            return x.clone()
        # pseudogradients (eq. 9, 11) through every RBFI layer: a BPDA-style adaptive attack
        with attack_mode(self.model), pseudogradient_mode(self.model, self.gradient == "pseudo"):
            x_adv = self.perturb(x, y).detach().reshape(x.shape).to(x.dtype)
        return self.check_output(x_adv, x)

    def check_inputs(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        if not torch.is_tensor(x) or not x.is_floating_point() or x.dim() < 2:
            raise ValueError("x must be a floating-point tensor of shape (batch, ...)")
        if not torch.is_tensor(y) or y.dtype != torch.int64 or tuple(y.shape) != (len(x),):
            raise ValueError(f"y must be an int64 tensor of shape ({len(x)},)")
        if x.numel() and not (torch.isfinite(x).all() and x.min() >= 0.0 and x.max() <= 1.0):
            raise ValueError("x must hold finite pixel values in [0, 1]")
        return x.detach(), y.detach().to(x.device)

    def check_output(self, x_adv: Tensor, x: Tensor) -> Tensor:
        """Refuse points outside the threat model (beyond rounding); clamp the rounding away."""
        if not torch.isfinite(x_adv).all():
            raise RuntimeError(f"{self.name}: non-finite adversarial example")
        distance = (x_adv - x).abs().amax().item() if x.numel() else 0.0
        low, high = (x_adv.min().item(), x_adv.max().item()) if x.numel() else (0.0, 1.0)
        if distance > self.eps + ROUNDING or low < -ROUNDING or high > 1.0 + ROUNDING:
            raise RuntimeError(
                f"{self.name}: adversarial example outside the threat model "
                f"(distance {distance:.6g} for eps {self.eps}, range [{low:.6g}, {high:.6g}])"
            )
        return project(x_adv, x, self.eps)

    # --- helpers for subclasses ----------------------------------------------------------

    def generator(self, device: torch.device) -> torch.Generator:
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device).manual_seed(self.seed)
        return self._generator

    def derived_seed(self, device: torch.device) -> int:
        """A fresh integer seed drawn from the attack's generator (for package attacks)."""
        return int(torch.randint(2**31 - 1, (1,), generator=self.generator(device), device=device))

    @torch.no_grad()
    def scores(self, x: Tensor) -> Tensor:
        return self.model(x)

    def loss_and_gradient(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """(grad_x of sum_b J(x_b, y_b), scores at x). The first call of an attack call
        records ``stats["zero_gradient"]``: examples whose input gradient is exactly 0."""
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            scores = self.model(x)
            loss = self.loss_fn(scores, y, reduction="sum")
            (grad,) = torch.autograd.grad(loss, x, allow_unused=True)
        grad = torch.zeros_like(x) if grad is None else grad
        if "zero_gradient" not in self.stats:
            l1 = grad.detach().flatten(1).abs().sum(dim=1)
            self.stats["zero_gradient"] = int((l1 == 0).sum())
            self.stats["gradient_l1_median"] = float(l1.median()) if len(l1) else 0.0
        return grad.detach(), scores.detach()
