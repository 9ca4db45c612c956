"""Per-example certificates: an example is *certified* at eps when no input in the l_inf ball
of radius eps around it (intersected with [0, 1]^n) can change its class.

The certified margin of example (x, y) is a lower bound, valid over the whole ball, of
s_y - max_{c != y} s_c for the class scores s. It comes from interval bound propagation
(:mod:`rbfi.bounds.interval`): s_y >= lo_y and s_c <= hi_c, so margin >= lo_y - max_c hi_c.
For a net whose last layer is ``nn.Linear`` (the ReLU baseline) the difference
s_y - s_c = (W_y - W_c) h + b_y - b_c is bounded directly over the box of h, which is tighter
(Gowal et al. 2018, "elision"). margin > 0 proves the prediction constant and correct on the
ball; at eps = 0 the margin is the plain score margin.

Floating point: the bounds are computed in the model's dtype and do not account for rounding
(about 1e-7 of the scores in float32); the margins are recorded so that near-zero ones can be
seen.

Nets whose logits are L-Lipschitz with respect to the l_inf norm (l_inf-distance nets at p = inf
in eval mode, ``model.lipschitz_constant()``) have a second certificate, the margin certificate
of Zhang et al. (2021): s_y(x') - s_c(x') >= s_y(x) - s_c(x) - 2 L eps for every x' of the ball,
so the clean margin minus 2 L eps is another lower bound of the same quantity. For them
:func:`certify` reports both and, per example, the larger (certified if either certifies).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rbfi.bounds.interval import input_box, interval_bounds
from rbfi.models.nets import Classifier


def _split_last_linear(model: nn.Module) -> tuple[nn.Module, nn.Linear] | None:
    """(everything before the final nn.Linear, that Linear) for Classifier nets ending in one."""
    if isinstance(model, Classifier) and len(model.body) and isinstance(model.body[-1], nn.Linear):
        return nn.Sequential(*list(model.body)[:-1]), model.body[-1]
    return None


def margin_bounds(model: nn.Module, x: Tensor, y: Tensor, eps: float) -> Tensor:
    """(B, C): lower bounds over the eps-ball of s_y - s_c for every class c (0 for c = y).

    Differentiable (certified training minimises a loss of ``-margin_bounds``)."""
    lo, hi = input_box(x, eps)
    split = _split_last_linear(model)
    if split is None:
        s_lo, s_hi = interval_bounds(model, lo, hi)
        true_lo = s_lo.gather(1, y[:, None])
        margins = true_lo - s_hi
    else:
        body, last = split
        h_lo, h_hi = interval_bounds(body, model.flatten_input(lo), model.flatten_input(hi))
        mid, rad = (h_hi + h_lo) / 2, (h_hi - h_lo) / 2
        w_diff = last.weight[y].unsqueeze(1) - last.weight.unsqueeze(0)  # (B, C, H)
        b_diff = last.bias[y].unsqueeze(1) - last.bias.unsqueeze(0)  # (B, C)
        margins = (
            torch.einsum("bch,bh->bc", w_diff, mid)
            + b_diff
            - torch.einsum("bch,bh->bc", w_diff.abs(), rad)
        )
    return margins.scatter(1, y[:, None], 0.0)


def lipschitz_constant(model: nn.Module) -> float | None:
    """L such that every logit of ``model`` is L-Lipschitz in the l_inf norm of its input, as
    the model states it (``model.lipschitz_constant()``), or None (no margin certificate)."""
    fn = getattr(model, "lipschitz_constant", None)
    return fn() if callable(fn) else None


def clean_margins(scores: Tensor, y: Tensor) -> Tensor:
    """(B,) s_y - max_{c != y} s_c of the scores (B, C)."""
    true = scores.gather(1, y[:, None]).squeeze(1)
    return true - scores.scatter(1, y[:, None], float("-inf")).amax(dim=1)


@dataclass
class Certificate:
    """Certificates of a batch at one eps. ``margins`` is the best lower bound available per
    example; for nets with a margin certificate ``by_method`` holds each method's bounds
    ("interval", "margin")."""

    eps: float
    margins: Tensor  # (B,) lower bound of s_y - max_{c != y} s_c over the ball
    certified: Tensor  # (B,) bool: margins > 0
    predictions: Tensor  # (B,) the clean predictions
    by_method: dict[str, Tensor] | None = None  # method -> (B,) its lower bounds

    @property
    def accuracy(self) -> float:
        return self.certified.float().mean().item() if len(self.certified) else float("nan")

    def method_accuracy(self, method: str) -> float:
        """The certified accuracy of one method's bounds alone."""
        flags = self.by_method[method] > 0
        return flags.float().mean().item() if len(flags) else float("nan")


@torch.no_grad()
def certify(
    model: nn.Module, x: Tensor, y: Tensor, eps: float, batch_size: int = 1000
) -> Certificate:
    """Certified flags and worst-case margins of every example of (x, y) at ``eps``.

    x: (B, ...) floats in [0, 1]; y: (B,) int64. The model is put in eval mode for the call
    and given its mode back.
    """
    eps = float(eps)
    if not (0.0 <= eps <= 1.0):
        raise ValueError(f"eps must be in [0, 1], got {eps}")
    was_training = model.training
    model.eval()
    interval, lipschitz, predictions = [], [], []
    try:
        lip = lipschitz_constant(model)
        for start in range(0, len(x), batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            bounds = margin_bounds(model, xb, yb, eps)
            others = bounds.scatter(1, yb[:, None], float("inf"))
            interval.append(others.amin(dim=1))
            scores = model(xb)
            predictions.append(scores.argmax(dim=1))
            if lip is not None:
                lipschitz.append(clean_margins(scores, yb) - 2.0 * eps * lip)
    finally:
        model.train(was_training)
    if not interval:
        empty = torch.empty(0, device=x.device)
        return Certificate(eps, empty, empty.bool(), empty.long())
    margin, by_method = torch.cat(interval), None
    if lipschitz:
        by_method = {"interval": margin, "margin": torch.cat(lipschitz)}
        margin = torch.maximum(by_method["interval"], by_method["margin"])
    return Certificate(eps, margin, margin > 0, torch.cat(predictions), by_method)
