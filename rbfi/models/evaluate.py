"""The one accuracy helper: predictions, accuracy and mean loss of a classifier on a dataset."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rbfi.nn.losses import get_loss


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, batch_size: int = 1000) -> Tensor:
    """The predicted class of every row of ``x`` (int64, on x's device), batch by batch.
    The model's training flag is left as it was."""
    if len(x) == 0:
        return torch.empty(0, dtype=torch.int64, device=x.device)
    return torch.cat(
        [model(x[i : i + batch_size]).argmax(dim=1) for i in range(0, len(x), batch_size)]
    )


@torch.no_grad()
def evaluate(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    loss_name: str | None = None,
    batch_size: int = 1000,
) -> dict[str, float]:
    """{"loss", "accuracy"} of ``model`` on (x, y), in eval mode (restored afterwards).

    ``loss_name`` defaults to the model's own training loss (``model.loss``).
    """
    was_training = model.training
    model.eval()
    loss_fn = get_loss(loss_name or getattr(model, "loss", "cross_entropy"))
    total_loss, correct = 0.0, 0
    try:
        for start in range(0, len(x), batch_size):
            scores = model(x[start : start + batch_size])
            labels = y[start : start + batch_size]
            total_loss += loss_fn(scores, labels, reduction="sum").item()
            correct += (scores.argmax(dim=1) == labels).sum().item()
    finally:
        model.train(was_training)
    n = max(len(x), 1)
    return {"loss": total_loss / n, "accuracy": correct / n}
