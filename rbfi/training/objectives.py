"""What a training step minimises. Each objective maps a batch to (loss, clean scores).

- :class:`Standard`: the paper's training: the loss of the model's outputs on clean inputs.

The loop (:mod:`rbfi.training.loop`) calls ``objective(model, x, y, progress)``, ``progress``
being the fraction of training done (0 at the first step, approaching 1 at the last), which
schedules (eps ramps) read.
"""

from __future__ import annotations

from torch import Tensor, nn

from rbfi.nn.losses import get_loss
from rbfi.training.config import TrainConfig


class Objective:
    """Base: ``__call__(model, x, y, progress) -> (loss, scores on the clean x)``."""

    name = "objective"

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.loss_fn = get_loss(config.loss)

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, progress: float):
        raise NotImplementedError

    def describe(self) -> str:
        return self.name


class Standard(Objective):
    """L(f(x), y): the configured loss on clean inputs (Sec. 6)."""

    name = "standard"

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, progress: float):
        scores = model(x)
        return self.loss_fn(scores, y), scores


def make_objective(config: TrainConfig) -> Objective:
    """The objective ``config`` asks for."""
    return Standard(config)
