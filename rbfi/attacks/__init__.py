"""Adversarial attacks, l_inf threat model, pixels in [0, 1] (paper, Sec. 5 and 6.2).

Every attack is built with the model and its settings and called as ``attack(x, y) -> x_adv``
(torchattacks convention); it works on any ``nn.Module`` classifier returning (B, C) scores::

    from rbfi.attacks import PGD
    x_adv = PGD(model, eps=0.3, loss="margin", gradient="pseudo", restarts=5)(x, y)

Attacks: :class:`FGSM` (eq. 12), :class:`IFGSM` (eq. 13), :class:`UniformNoise`,
:class:`PaperPGD` (AdaDelta steps, any-step success, optional author's one-sided projection),
:class:`PGD` (signed steps, restarts), :class:`Square` and :class:`AutoAttack` (from
pyautoattack), :class:`Transfer`. Suites and the evaluation: :mod:`rbfi.attacks.suites`,
:mod:`rbfi.experiments.robustness`; the protocol: docs/evaluation.md.
"""

from rbfi.attacks.base import (
    GRADIENTS,
    LOSSES,
    PROJECTIONS,
    Attack,
    attack_mode,
    gradient_mode,
    project,
    random_start,
)
from rbfi.attacks.external import AutoAttack, ImageInput, Square
from rbfi.attacks.fgsm import FGSM
from rbfi.attacks.noise import UniformNoise
from rbfi.attacks.pgd import IFGSM, PGD, PaperPGD
from rbfi.attacks.transfer import Transfer

__all__ = [
    "FGSM",
    "GRADIENTS",
    "IFGSM",
    "LOSSES",
    "PGD",
    "PROJECTIONS",
    "Attack",
    "AutoAttack",
    "ImageInput",
    "PaperPGD",
    "Square",
    "Transfer",
    "UniformNoise",
    "attack_mode",
    "gradient_mode",
    "project",
    "random_start",
]
