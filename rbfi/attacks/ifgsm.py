"""I-FGSM (paper, eq. 13): signed steps of eps / steps from the clean input."""

from __future__ import annotations

from torch import nn

from rbfi.attacks.pgd import PGD


class IFGSM(PGD):
    """Iterative FGSM (paper, eq. 13; Kurakin et al. 2017): from x_0 = x, ``steps`` = 10 steps

        x_{k+1} = clamp_[0,1](x_k + (eps / steps) sign(grad_x J(x_k, y))).

    steps * (eps / steps) = eps, so the iterates cannot leave B_eps(x); each step still goes
    through the correct projection (which, besides the clamp to [0, 1], only removes rounding).
    No random start, no restarts. The paper scores the last iterate (``early_stop=False``);
    the default any-iterate criterion can only find more adversarial examples.
    """

    name = "ifgsm"

    def __init__(
        self,
        model: nn.Module,
        eps: float,
        *,
        steps: int = 10,
        early_stop: bool = True,
        loss: str = "training",
        gradient: str = "true",
        seed: int = 0,
    ) -> None:
        super().__init__(
            model,
            eps,
            steps=steps,
            alpha=max(float(eps), 1e-12) / int(steps),
            restarts=1,
            random_start=False,
            early_stop=early_stop,
            loss=loss,
            gradient=gradient,
            seed=seed,
        )
        self.alpha_rule = "eps / steps"
