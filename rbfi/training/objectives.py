"""What a training step minimises. Each objective maps a batch to (loss, clean scores).

- :class:`Standard`: the paper's training: the loss of the outputs on clean inputs (Sec. 6).
- :class:`Adversarial`: adversarial examples made by the project's own attacks (Sec. 6.4):
  "fgsm" (eq. 12), "ifgsm" (eq. 13) and "pgd" (the paper's AdaDelta PGD from a random start,
  its last iterate) feed both x and x' (a batch of 2B); "madry" trains on x' only, made by
  sign PGD from a random start (Madry et al. 2018); eps may ramp up from 0.
- :class:`Trades`: the clean loss + beta KL(f(x) || f(x')) (Zhang et al. 2019).
- :class:`Certified`: interval bound propagation (IBP, Gowal et al. 2018): a mix of the clean
  loss and a loss of the worst-case margins over the eps-ball, eps ramped up from 0.
- :class:`Regularised` wraps any of them: + lambda x the sensitivity bound (eq. 7 / 8,
  Sec. 6.7).

The loop (:mod:`rbfi.training.loop`) calls ``objective(model, x, y, step)`` with the global
step index (0-based); schedules (eps ramps) and the attacks' seeds derive from it, so a resumed
run sees exactly what an uninterrupted one would.
"""

from __future__ import annotations

import zlib

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rbfi.attacks import FGSM, IFGSM, PGD, Attack, PaperPGD, attack_mode, project
from rbfi.bounds import input_box, interval_bounds, margin_bounds, network_sensitivity
from rbfi.models import predict
from rbfi.nn import pseudogradient_mode
from rbfi.nn.losses import get_loss, square_error
from rbfi.training.config import TrainConfig

MONITOR_EPS = (0.1, 0.2, 0.3)  # certified accuracy on the test set after every epoch
CLEAN_CE_SCALE = 10.0  # logits of the extra clean cross-entropy: 10 x the scores in [0, 1]
MONITOR_IMAGES = 500  # adversarial training: clean and PGD accuracy on these first test images
MONITOR_PGD_STEPS = 20


class Objective:
    """Base: ``__call__(model, x, y, step) -> (loss, scores on the clean x)``."""

    name = "standard"

    def __init__(self, config: TrainConfig, total_steps: int) -> None:
        self.config = config
        self.total_steps = max(int(total_steps), 1)
        self.loss_fn = get_loss(config.loss)

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, step: int):
        raise NotImplementedError

    def describe(self) -> str:
        return self.name

    def epoch_metrics(self, model: nn.Module, x: Tensor, y: Tensor, step: int) -> dict:
        """Extra numbers for ``metrics.jsonl`` after an epoch (on the test set)."""
        return {}


class Standard(Objective):
    """L(f(x), y): the configured loss on clean inputs (Sec. 6)."""

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, step: int):
        scores = model(x)
        return self.loss_fn(scores, y), scores


class Adversarial(Objective):
    """Training on adversarial examples x' within eps_t of x (Sec. 6.4; Madry et al. 2018).

    eps_t = adv_eps x min(1, t / (adv_eps_ramp x T)) at step t of T (linear warm-up from 0,
    the usual cure for adversarial training stuck at chance; no ramp when adv_eps_ramp = 0).
    While eps_t = 0 the step trains on the clean batch (no attack is run).
    "madry": x' = sign PGD from a uniform random start in the eps_t-ball, adv_steps steps of
    adv_alpha (default 2.5 eps_t / steps), loss L(f(x'), y) only.
    """

    def __init__(self, config: TrainConfig, total_steps: int) -> None:
        super().__init__(config, total_steps)
        self.mode = config.adversarial
        ramp = f", eps ramp over {config.adv_eps_ramp:g} of the steps"
        ramp = ramp if config.adv_eps_ramp else ""
        self.name = f"adversarial {self.mode}, eps {config.adv_eps:g}{ramp}"

    def eps_at(self, step: int) -> float:
        """eps_t = adv_eps x min(1, t / (ramp x T))."""
        c = self.config
        if c.adv_eps_ramp == 0:
            return c.adv_eps
        return c.adv_eps * min(1.0, step / (c.adv_eps_ramp * self.total_steps))

    def attack(self, model: nn.Module, step: int, eps: float | None = None) -> Attack:
        c = self.config
        eps = self.eps_at(step) if eps is None else eps
        seed = zlib.crc32(f"{c.seed}/adversarial/{step}".encode())
        common = {"loss": "training", "gradient": c.adv_gradient, "seed": seed}
        if self.mode == "fgsm":
            return FGSM(model, eps, **common)
        if self.mode == "ifgsm":
            return IFGSM(model, eps, steps=c.adv_steps, early_stop=False, **common)
        if self.mode == "pgd":  # the paper's: 100 AdaDelta steps from a random start, last point
            return PaperPGD(model, eps, steps=c.adv_steps, restarts=1, early_stop=False, **common)
        return PGD(
            model,
            eps,
            steps=c.adv_steps,
            alpha=c.adv_alpha,
            restarts=1,
            early_stop=False,
            **common,
        )

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, step: int):
        if self.eps_at(step) == 0:
            scores = model(x)
            return self.loss_fn(scores, y), scores
        x_adv = self.attack(model, step)(x, y)
        if self.mode == "madry":
            with torch.no_grad():
                scores = model(x)
            return self.loss_fn(model(x_adv), y), scores
        both = model(torch.cat([x, x_adv]))
        return self.loss_fn(both, torch.cat([y, y])), both[: len(x)].detach()

    def epoch_metrics(self, model: nn.Module, x: Tensor, y: Tensor, step: int) -> dict:
        """The learning curve: eps_t, and clean and PGD-20 accuracy at the target adv_eps on
        the first MONITOR_IMAGES test images (the same images every epoch)."""
        x, y = x[:MONITOR_IMAGES], y[:MONITOR_IMAGES]
        c = self.config
        pgd = PGD(model, c.adv_eps, steps=MONITOR_PGD_STEPS, gradient=c.adv_gradient, seed=c.seed)
        x_adv = pgd(x, y)
        with torch.no_grad():
            clean = (predict(model, x) == y).float().mean().item()
            robust = (predict(model, x_adv) == y).float().mean().item()
        return {
            "train_eps": self.eps_at(step),
            "monitor_images": len(x),
            "monitor_clean_accuracy": clean,
            f"monitor_pgd{MONITOR_PGD_STEPS}_{c.adv_eps:g}": robust,
        }


class Trades(Adversarial):
    """TRADES (Zhang et al. 2019): L(f(x), y) + beta KL(softmax f(x) || softmax f(x')),
    with L the configured loss (cross-entropy for ReLU nets, as in TRADES), and

        x'_0 = clip01(x + 0.001 N(0, I)),  x'_{k+1} = P(x'_k + alpha sign grad KL(p(x) || p(x'_k)))

    (p(x) held fixed, P the projection onto the eps_t-ball and [0, 1]), adv_steps steps,
    alpha default 2.5 eps_t / steps; eps_t ramps as in :class:`Adversarial`.
    """

    def __init__(self, config: TrainConfig, total_steps: int) -> None:
        super().__init__(config, total_steps)
        self.name = self.name.replace("adversarial trades", f"TRADES beta {config.trades_beta:g}")

    def adversarial_points(self, model: nn.Module, x: Tensor, eps: float, step: int) -> Tensor:
        """x' maximising KL(p(x) || p(x')) over the eps-ball ∩ [0, 1]^n by sign ascent."""
        c = self.config
        generator = torch.Generator(device=x.device)
        generator.manual_seed(zlib.crc32(f"{c.seed}/trades/{step}".encode()))
        alpha = c.adv_alpha if c.adv_alpha is not None else 2.5 * eps / c.adv_steps
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x_adv = project(x + 0.001 * noise, x, eps)
        with attack_mode(model), pseudogradient_mode(model, c.adv_gradient == "pseudo"):
            with torch.no_grad():
                p_clean = F.softmax(model(x), dim=1)
            for _ in range(c.adv_steps):
                x_adv.requires_grad_(True)
                with torch.enable_grad():
                    kl = kl_divergence(p_clean, model(x_adv), reduction="sum")
                    (grad,) = torch.autograd.grad(kl, x_adv)
                x_adv = project(x_adv.detach() + alpha * grad.sign(), x, eps)
        return x_adv.detach()

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, step: int):
        eps = self.eps_at(step)
        x_adv = self.adversarial_points(model, x, eps, step) if eps > 0 else x
        scores = model(x)
        loss = self.loss_fn(scores, y)
        if eps > 0 and self.config.trades_beta > 0:
            kl = kl_divergence(F.softmax(scores, dim=1), model(x_adv), reduction="mean")
            loss = loss + self.config.trades_beta * kl
        return loss, scores.detach()


def kl_divergence(p: Tensor, scores: Tensor, reduction: str = "mean") -> Tensor:
    """KL(p || softmax(scores)) = sum_c p_c (log p_c - log q_c) per example (0 log 0 = 0);
    summed ("sum") or averaged ("mean") over the batch."""
    per_example = (torch.xlogy(p, p) - p * F.log_softmax(scores, dim=1)).sum(dim=1)
    return per_example.sum() if reduction == "sum" else per_example.mean()


class Certified(Objective):
    """(1 - w_t) L(f(x), y) + w_t L_worst(eps_t): the clean loss mixed with a loss of the
    worst-case margins m_c (lower bounds, over the eps_t-ball, of s_y - s_c;
    :func:`rbfi.bounds.margin_bounds`).

    Schedule, in fractions of all training steps: ``certified_warmup`` clean (eps 0, w 0), then
    over ``certified_ramp`` eps and w grow linearly to ``certified_eps`` and
    ``certified_weight``, then stay there.

    Worst-case losses: "cross_entropy" = CE of the logits -scale m (the margin against the
    true class itself is 0); "hinge" = sum_{c != y} max(0, scale - m_c); "clipped_hinge" =
    max (or mean) over c != y of clip((theta - m_c) / width, 0, 1), theta =
    ``certified_margin``, width = ``certified_hinge_width`` (the l_inf-dist nets' loss, Zhang
    et al. 2022, written on RBFI's certified margins: margins below theta - width are given up,
    loss 1 and no gradient); "square" = the paper's square error on the worst-case scores (the
    true class at its lower bound, the others at their upper bounds). For RBFI nets the
    gradient flows through the bounds with the pseudogradients of eq. (9), (11) or the true
    ones (``certified_gradient``).

    ``certified_ce`` > 0 adds lambda_t CE(10 s(x), y), a cross-entropy of the clean scores
    whose weight decays geometrically from ``certified_ce`` at the first step to
    ``certified_ce_end`` at the last (l_inf-dist v2: 0.05 -> 0.0002).
    """

    def __init__(self, config: TrainConfig, total_steps: int) -> None:
        super().__init__(config, total_steps)
        self.name = (
            f"certified, eps {config.certified_eps:g}, {config.certified_loss} loss, "
            f"weight {config.certified_weight:g}"
        )

    def schedule(self, step: int) -> tuple[float, float]:
        """(eps, weight of the worst-case loss) at ``step``."""
        c = self.config
        progress = step / self.total_steps
        if progress < c.certified_warmup:
            ramp = 0.0
        elif c.certified_ramp == 0:
            ramp = 1.0
        else:
            ramp = min(1.0, (progress - c.certified_warmup) / c.certified_ramp)
        return c.certified_eps * ramp, c.certified_weight * ramp

    def ce_weight(self, step: int) -> float:
        """lambda_t = start (end / start)^(t / (T - 1)): the extra clean cross-entropy's weight."""
        c = self.config
        if c.certified_ce <= 0:
            return 0.0
        progress = min(1.0, step / max(self.total_steps - 1, 1))
        return c.certified_ce * (c.certified_ce_end / c.certified_ce) ** progress

    def worst_case_loss(self, model: nn.Module, x: Tensor, y: Tensor, eps: float) -> Tensor:
        c = self.config
        if c.certified_loss == "square":
            lo, hi = interval_bounds(model, *input_box(x, eps))
            worst = hi.scatter(1, y[:, None], lo.gather(1, y[:, None]))
            return square_error(worst, y)
        margins = margin_bounds(model, x, y, eps)
        if c.certified_loss == "cross_entropy":
            return F.cross_entropy(-c.certified_scale * margins, y)
        if c.certified_loss == "clipped_hinge":
            return clipped_hinge(
                margins, y, c.certified_margin, c.certified_hinge_width, c.certified_reduce
            )
        shortfall = F.relu(c.certified_scale - margins).scatter(1, y[:, None], 0.0)
        return shortfall.sum(dim=1).mean()

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, step: int):
        eps, weight = self.schedule(step)
        scores = model(x)
        loss = self.loss_fn(scores, y)
        if weight > 0:
            with pseudogradient_mode(model, self.config.certified_gradient == "pseudo"):
                worst = self.worst_case_loss(model, x, y, eps)
            loss = (1 - weight) * loss + weight * worst
        ce_weight = self.ce_weight(step)
        if ce_weight > 0:
            loss = loss + ce_weight * F.cross_entropy(CLEAN_CE_SCALE * scores, y)
        return loss, scores

    def epoch_metrics(self, model: nn.Module, x: Tensor, y: Tensor, step: int) -> dict:
        from rbfi.bounds import certify

        eps, weight = self.schedule(step)
        out = {"train_eps": eps, "certified_weight": weight}
        if self.config.certified_ce > 0:
            out["certified_ce_weight"] = self.ce_weight(step)
        for test_eps in sorted({*MONITOR_EPS, self.config.certified_eps}):
            out[f"test_certified_{test_eps:g}"] = certify(model, x, y, test_eps).accuracy
        return out


def clipped_hinge(
    margins: Tensor, y: Tensor, theta: float, width: float, reduce: str = "max"
) -> Tensor:
    """mean over the batch of reduce_{c != y} clip((theta - m_c) / width, 0, 1).

    ``margins``: (B, C) lower bounds of s_y - s_c (any value in the column of y, ignored)."""
    per_class = ((theta - margins) / width).clamp(0.0, 1.0)
    if reduce == "max":
        return per_class.scatter(1, y[:, None], float("-inf")).amax(dim=1).mean()
    if reduce == "mean":
        others = per_class.scatter(1, y[:, None], 0.0)
        return (others.sum(dim=1) / (margins.shape[1] - 1)).mean()
    raise ValueError(f"reduce must be 'max' or 'mean', got {reduce!r}")


class Regularised(Objective):
    """The wrapped objective's loss + lambda x :func:`rbfi.bounds.network_sensitivity`, the
    sensitivity bound of eq. (7) (ReLU, sigmoid) or (8) (RBFI, RBF) (Sec. 6.7)."""

    def __init__(self, inner: Objective, reg_lambda: float) -> None:
        super().__init__(inner.config, inner.total_steps)
        self.inner, self.reg_lambda = inner, reg_lambda
        self.name = f"{inner.describe()} + {reg_lambda:g} x sensitivity bound"

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, step: int):
        loss, scores = self.inner(model, x, y, step)
        return loss + self.reg_lambda * network_sensitivity(model), scores

    def epoch_metrics(self, model: nn.Module, x: Tensor, y: Tensor, step: int) -> dict:
        with torch.no_grad():
            bound = network_sensitivity(model).item()
        return {**self.inner.epoch_metrics(model, x, y, step), "sensitivity_bound": bound}


def make_objective(config: TrainConfig, total_steps: int) -> Objective:
    """The objective ``config`` asks for."""
    if config.certified_eps is not None:
        objective: Objective = Certified(config, total_steps)
    elif config.adversarial == "trades":
        objective = Trades(config, total_steps)
    elif config.adversarial != "none":
        objective = Adversarial(config, total_steps)
    else:
        objective = Standard(config, total_steps)
    if config.reg_lambda > 0:
        objective = Regularised(objective, config.reg_lambda)
    return objective


__all__ = [
    "Adversarial",
    "Certified",
    "Objective",
    "Regularised",
    "Standard",
    "Trades",
    "clipped_hinge",
    "kl_divergence",
    "make_objective",
]
