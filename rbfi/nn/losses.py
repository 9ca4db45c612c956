"""Training losses (and attack objectives) on class scores of shape (B, C)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

LOSSES = ("square", "cross_entropy", "margin")


def square_error(scores: Tensor, labels: Tensor, reduction: str = "mean") -> Tensor:
    """sum_c (scores_c - onehot(labels)_c)^2, averaged over the batch (the paper's loss)."""
    target = F.one_hot(labels, scores.shape[-1]).to(scores.dtype)
    per_example = (scores - target).square().sum(dim=-1)
    return _reduce(per_example, reduction)


def margin(scores: Tensor, labels: Tensor, reduction: str = "mean") -> Tensor:
    """CW margin: max_{c != y} scores_c - scores_y (positive iff misclassified)."""
    true = scores.gather(1, labels[:, None]).squeeze(1)
    others = scores.masked_fill(F.one_hot(labels, scores.shape[-1]).bool(), float("-inf"))
    return _reduce(others.amax(dim=1) - true, reduction)


def cross_entropy(scores: Tensor, labels: Tensor, reduction: str = "mean") -> Tensor:
    """Softmax cross-entropy on the scores."""
    return F.cross_entropy(scores, labels, reduction=reduction)


def _reduce(values: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    if reduction == "none":
        return values
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def get_loss(name: str):
    """The loss function called ``name`` (one of LOSSES): f(scores, labels, reduction)."""
    table = {"square": square_error, "cross_entropy": cross_entropy, "margin": margin}
    if name not in table:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
    return table[name]


__all__ = ["LOSSES", "cross_entropy", "get_loss", "margin", "square_error"]
