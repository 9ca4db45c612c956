"""Training of l_inf-distance nets (Zhang et al. 2021, 2022; docs/linf-dist.md): the l_p-relaxation
with p annealed to inf and the clipped hinge + cross-entropy loss of v2.

With T steps and the annealing window [a T, b T] (``linf_p_anneal`` = (a, b)), the ratio
r_t = clip((t - a T) / ((b - a) T), 0, 1) drives both schedules:

    p_t = p_start (p_end / p_start)^r_t,   p_t = inf once r_t = 1 when p_end >= 100,
    lambda_t = ce (ce_end / ce)^r_t.

The loss of a batch, with s the 1-Lipschitz scores (-distances of the output layer, in the
standardised input's units), theta = 2 eps / std (``linf_eps``, the hinge threshold: the clean
margin that certifies eps) and logits = scale s:

    h_c = clip((s_c - s_y + theta) / theta, 0, 1)           (c != y)
    loss = mix max_c h_c + (1 - mix) mean_c h_c + lambda_t CE(logits, y),

averaged over the batch (v2: mix = 1, theta = 2 eps_train; h_c = 0 exactly when the margin
against c certifies eps, 1 when c wins). ``linf_hinge_clip`` False drops the clip at 1 (v1's
hinge max(0, s_c - s_y + theta), divided by theta; v1 used mix 0.75 and no cross-entropy).
The images are shifted by up to ``linf_shift`` pixels (edges repeated) first, as the papers'
RandomCrop(28, padding=1, edge).
"""

from __future__ import annotations

import math
import zlib

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rbfi.bounds import certify
from rbfi.models import predict
from rbfi.nn import linf_layers, set_p
from rbfi.training.config import TrainConfig
from rbfi.training.objectives import MONITOR_EPS, Objective

P_INF_FROM = 100.0  # v2's code: p_end >= 100 means inf once the annealing is over


def anneal_ratio(step: int, total_steps: int, window: tuple[float, float]) -> float:
    """r_t = clip((t - a T) / ((b - a) T), 0, 1); a step function at a T when a = b."""
    start, end = window[0] * total_steps, window[1] * total_steps
    if end <= start:
        return 1.0 if step >= start else 0.0
    return min(1.0, max(0.0, (step - start) / (end - start)))


def p_at(ratio: float, p_start: float, p_end: float) -> float:
    """p_start (p_end / p_start)^ratio, inf at ratio 1 when p_end >= 100."""
    if ratio >= 1.0 and p_end >= P_INF_FROM:
        return math.inf
    return p_start * (p_end / p_start) ** ratio


def clipped_hinge_v2(
    scores: Tensor, y: Tensor, theta: float, mix: float = 1.0, clip: bool = True
) -> Tensor:
    """mean over the batch of mix max_c h_c + (1 - mix) mean_c h_c over c != y, with
    h_c = clip((s_c - s_y + theta) / theta, 0, 1) (v2), or without the upper clip
    max(0, (s_c - s_y + theta) / theta) (v1's hinge, divided by theta)."""
    true = scores.gather(1, y[:, None])
    h = ((scores - true + theta) / theta).clamp(0.0, 1.0 if clip else None)
    others = torch.ones_like(h, dtype=torch.bool).scatter(1, y[:, None], False)
    worst = h.masked_fill(~others, float("-inf")).amax(dim=1)
    mean = (h * others).sum(dim=1) / (h.shape[1] - 1)
    return (mix * worst + (1.0 - mix) * mean).mean()


def shift_images(x: Tensor, max_shift: int, generator: torch.Generator) -> Tensor:
    """Shift each (B, side^2) image by (dy, dx), each uniform in [-max_shift, max_shift],
    repeating the edge pixels (a random crop of the edge-padded image)."""
    if max_shift == 0:
        return x
    side = math.isqrt(x.shape[1])
    if side * side != x.shape[1]:
        raise ValueError(f"--linf-shift needs square images, got {x.shape[1]} inputs")
    k = 2 * max_shift + 1
    padded = F.pad(x.reshape(-1, 1, side, side), (max_shift,) * 4, mode="replicate")
    offsets = torch.randint(0, k, (2, x.shape[0]), generator=generator).to(x.device)
    rows = offsets[0][:, None] + torch.arange(side, device=x.device)  # (B, side)
    cols = offsets[1][:, None] + torch.arange(side, device=x.device)
    batch = torch.arange(x.shape[0], device=x.device)[:, None, None]
    out = padded[:, 0][batch, rows[:, :, None], cols[:, None, :]]
    return out.reshape(x.shape[0], -1)


class LinfDistObjective(Objective):
    """The v2 recipe (module docstring): p annealed to inf, clipped hinge on the 1-Lipschitz
    scores plus a decaying cross-entropy of the logits, shifted images."""

    def __init__(self, config: TrainConfig, total_steps: int) -> None:
        super().__init__(config, total_steps)
        c = config
        self.theta = 2.0 * c.linf_eps / c.model.linf_std
        self.name = (
            f"l_inf-dist: {'clipped ' if c.linf_hinge_clip else ''}hinge (2 eps, eps "
            f"{c.linf_eps:g}, max weight "
            f"{c.linf_hinge_mix:g}) + CE {c.linf_ce:g} -> {c.linf_ce_end:g}, p {c.linf_p_start:g}"
            f" -> {c.linf_p_end:g} over {c.linf_p_anneal[0]:.3g}-{c.linf_p_anneal[1]:.3g} of "
            f"the steps, shifts {c.linf_shift}"
        )

    def schedule(self, step: int) -> tuple[float, float]:
        """(p, cross-entropy weight) at ``step``."""
        c = self.config
        ratio = anneal_ratio(step, self.total_steps, c.linf_p_anneal)
        ce = c.linf_ce * (c.linf_ce_end / c.linf_ce) ** ratio if c.linf_ce > 0 else 0.0
        return p_at(ratio, c.linf_p_start, c.linf_p_end), ce

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, step: int):
        c = self.config
        p, ce = self.schedule(step)
        set_p(model, p)
        if c.linf_shift:
            generator = torch.Generator().manual_seed(zlib.crc32(f"{c.seed}/shift/{step}".encode()))
            x = shift_images(x, c.linf_shift, generator)
        scores = model.distance_scores(x)
        logits = model.body[-1].scale * scores
        loss = clipped_hinge_v2(scores, y, self.theta, c.linf_hinge_mix, c.linf_hinge_clip)
        if ce > 0:
            loss = loss + ce * F.cross_entropy(logits, y)
        return loss, logits.detach()

    def epoch_metrics(self, model: nn.Module, x: Tensor, y: Tensor, step: int) -> dict:
        """p and the cross-entropy weight of the next step; at p = inf (the net itself): clean
        accuracy and the certified accuracy (better of margin and interval certificates) at
        0.1, 0.2, 0.3 and the training eps, on the test set."""
        p, ce = self.schedule(step)
        layers = list(linf_layers(model))
        saved = [layer.p for layer in layers]
        out = {"p": p if math.isfinite(p) else "inf", "ce_weight": ce}
        try:
            set_p(model, math.inf)
            out["test_accuracy_p_inf"] = (predict(model.eval(), x) == y).float().mean().item()
            for eps in sorted({*MONITOR_EPS, self.config.linf_eps}):
                out[f"test_certified_{eps:g}"] = certify(model, x, y, eps).accuracy
        finally:
            for layer, value in zip(layers, saved):
                layer.p = value
        return out


__all__ = ["LinfDistObjective", "anneal_ratio", "clipped_hinge_v2", "p_at", "shift_images"]
