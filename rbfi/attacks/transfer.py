"""Transfer attack: adversarial examples crafted white-box on another model (a separately
trained ReLU net), then shown to the target."""

from __future__ import annotations

from torch import Tensor, nn

from rbfi.attacks.base import Attack
from rbfi.attacks.pgd import PGD


class Transfer(Attack):
    """x' = PGD_source(x, y): signed-gradient PGD on the ``source`` model's loss (default
    cross-entropy, ``steps`` steps, 1 random start, last iterate: the full run gives
    higher-confidence examples, which transfer better), evaluated on the target ``model``.
    The target is never differentiated (a black-box attack on it)."""

    name = "transfer"
    kind = "black-box"

    def __init__(
        self,
        model: nn.Module,
        eps: float,
        *,
        source: nn.Module,
        steps: int = 100,
        loss: str = "cross_entropy",
        seed: int = 0,
    ) -> None:
        super().__init__(model, eps, seed=seed)
        self.source = source
        self.inner = PGD(source, eps, steps=steps, loss=loss, early_stop=False, seed=seed)

    def settings(self) -> dict:
        inner = self.inner.settings()
        config = getattr(self.source, "config", None)
        source = getattr(config, "arch", type(self.source).__name__)
        return {**super().settings(), "source": source, "source_attack": inner}

    def passes(self) -> dict[str, int]:
        return {"forward": 1, "backward": 0, "source_backward": self.inner.steps}

    def perturb(self, x: Tensor, y: Tensor) -> Tensor:
        x_adv = self.inner(x, y)
        self.stats["source_success"] = int((self.inner.scores(x_adv).argmax(1) != y).sum())
        return x_adv
